package tpm

import (
	"crypto"
	"testing"

	"github.com/enigm/enigm/internal/testkit"
)

// Benchmarks against the in-process simulator (Microsoft reference TPM):
// they measure the backend's command sequences and host-side cost, not a
// hardware TPM's speed. See docs/perf.md.

func BenchmarkProvision(b *testing.B) {
	be := newSim(b, Options{})
	for b.Loop() {
		st, err := be.Provision(ctx, secret)
		if err != nil {
			b.Fatal(err)
		}
		testkit.NoErr(b, be.Destroy(ctx, st))
	}
}

func benchOpen(b *testing.B, opts Options) {
	be := newSim(b, opts)
	st := mustProvision(b, be)
	for b.Loop() {
		s, err := be.Open(ctx, st, secret)
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}

// Open is the unlock: read and check the store key, unseal the check object.
func BenchmarkOpen(b *testing.B)    { benchOpen(b, Options{}) }
func BenchmarkOpenPCR(b *testing.B) { benchOpen(b, Options{PCRs: []int{0, 7}}) }

// benchSession opens a session on a freshly provisioned simulator backend;
// it is closed when the benchmark ends.
func benchSession(b *testing.B) *session {
	_, _, s := simStore(b, Options{})
	return s
}

func BenchmarkSeal(b *testing.B) {
	s := benchSession(b)
	for b.Loop() {
		if _, err := s.Seal(ctx, "enigm/v1/kek/identity", key32); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnseal(b *testing.B) {
	s := benchSession(b)
	sealed := mustSeal(b, s, "enigm/v1/kek/identity", key32)
	for b.Loop() {
		if _, err := s.Unseal(ctx, "enigm/v1/kek/identity", sealed); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBindingSign(b *testing.B) {
	s := benchSession(b)
	_, key := testkit.BindingKey(b, s)
	digest := sha256Sum([]byte("bind"))
	for b.Loop() {
		if _, err := key.Sign(nil, digest, crypto.SHA256); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAttest(b *testing.B) {
	s := benchSession(b)
	blob, _ := testkit.BindingKey(b, s)
	n := sha256Sum([]byte("nonce"))
	for b.Loop() {
		if _, err := s.Attest(ctx, blob, n); err != nil {
			b.Fatal(err)
		}
	}
}
