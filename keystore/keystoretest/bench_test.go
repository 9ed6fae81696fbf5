package keystoretest

import (
	"bytes"
	"testing"
	"time"

	"github.com/enigm/enigm/backend/platform/simulated"
	"github.com/enigm/enigm/backend/soft"
	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/keystore"
)

// Benchmarks (issue 5, speed). Results, the machine and the command are in
// docs/perf.md, section "Platform backends and cross-backend comparison".

var benchMsg = bytes.Repeat([]byte{7}, 256)

// strongBoxBenchDelay is the StrongBox profile's per-operation delay in
// the benchmarks: a realistic figure for a discrete secure element.
const strongBoxBenchDelay = 25 * time.Millisecond

// benchIdentity returns a loaded identity key of alg in an unlocked store
// over e.
func benchIdentity(b *testing.B, e *env, alg keystore.Algorithm) *keystore.IdentityKey {
	s := initStore(b, e)
	info := s.generate(b, keystore.ClassIdentity, alg)
	k, err := s.Identity(info.ID)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := k.Sign(appPurpose("bench"), benchMsg); err != nil { // unwrap once
		b.Fatal(err)
	}
	return k
}

// BenchmarkSign compares, in one run, a signature with a keystore-wrapped
// identity key (policy decided, audit entry written, no backend call)
// with a P-256 signature made by a PKCS#11 token per operation
// (bench_cgo_test.go adds the token cases).
func BenchmarkSign(b *testing.B) {
	for _, m := range benchSignMakers() {
		for _, alg := range []keystore.Algorithm{keystore.AlgEd25519} {
			b.Run("keystore-"+alg.String()+"/"+m.name, func(b *testing.B) {
				k := benchIdentity(b, m.new(b), alg)
				for b.Loop() {
					if _, err := k.Sign(appPurpose("bench"), benchMsg); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
	benchTokenSign(b)
}

func benchSignMakers() []maker {
	return []maker{
		softMaker,
		hsmMaker(),
	}
}

// BenchmarkUnlock is keystore.Unlock (backend Open, four wrapping keys
// unsealed, audit entries made durable) then Lock, per backend. The soft
// backend and the platform backends stretch the secret with Argon2id at
// RFC 9106's second recommended parameters (t=3, 64 MiB, p=4); the
// platform rows also show a minimal KDF (an app-generated high-entropy
// secret), which isolates the hardware's cost.
func BenchmarkUnlock(b *testing.B) {
	rfc := soft.Recommended()
	ms := []maker{
		{"soft-rfc9106", func(t testing.TB) *env {
			be, _ := soft.New(soft.Options{})
			return newEnv("soft", be, nil)
		}},
		tpmMaker(),
		hsmMaker(),
		{"secure-enclave-sim/kdf-rfc9106", func(t testing.TB) *env {
			return platformEnv(t, "se", simulated.SecureEnclave(), rfc)
		}},
		{"secure-enclave-sim/kdf-min", func(t testing.TB) *env {
			return platformEnv(t, "se", simulated.SecureEnclave(), testkit.FastKDF)
		}},
		{"strongbox-sim-25ms/kdf-rfc9106", func(t testing.TB) *env {
			return platformEnv(t, "sb", simulated.StrongBox(strongBoxBenchDelay), rfc)
		}},
		{"strongbox-sim-25ms/kdf-min", func(t testing.TB) *env {
			return platformEnv(t, "sb", simulated.StrongBox(strongBoxBenchDelay), testkit.FastKDF)
		}},
	}
	for _, m := range ms {
		b.Run(m.name, func(b *testing.B) {
			e := m.new(b)
			s := initStore(b, e)
			s.reopen(b)
			calls := e.cb.calls.Load()
			for b.Loop() {
				testkit.NoErr(b, s.Unlock(bg, s.e.secret))
				testkit.NoErr(b, s.Lock())
			}
			b.ReportMetric(float64(e.cb.calls.Load()-calls)/float64(b.N), "backend-calls/op")
		})
	}
}
