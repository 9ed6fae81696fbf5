// Package agebench compares sealing a message to N devices with package
// envelope against filippo.io/age (its MLKEM768-X25519 hybrid recipient)
// plus one hybrid signature over age's output. It is a module of its own so
// that age never enters the main module's dependencies or any binary.
//
//	cd bench/age && go test -run '^$' -bench . -count 6
package agebench

import (
	"bytes"
	"context"
	"crypto/hpke"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/fxamacker/cbor/v2"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/envelope"
	"github.com/enigm/enigm/hybrid"
	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/keystore"
	"github.com/enigm/enigm/lifecycle"
	"github.com/enigm/enigm/policy"
)

const bodySize = 1 << 10

type sender struct {
	ks   *keystore.Store
	from envelope.From
	to   []envelope.Recipient
	ageR []age.Recipient
	sig  *hybrid.PrivateKey // the baseline's signer: the raw hybrid key
	body []byte
}

func newSender(b *testing.B, n int) *sender {
	be, _ := testkit.SoftBackend("soft")
	ks := testkit.Must(keystore.Init(context.Background(), filepath.Join(b.TempDir(), "h"), be, []byte("pw"),
		keystore.InitOptions{Options: keystore.Options{Backend: testkit.SoftBackend}}))
	b.Cleanup(func() { ks.Close() })
	ks.SetAppAuthorized(true)
	ks.SetAssociation(policy.Associated, nil)
	idInfo := testkit.Must(ks.Generate(keystore.ClassIdentity, keystore.GenerateOptions{Cause: lifecycle.AccountSetup, Activate: true}))
	s := &sender{ks: ks, body: bytes.Repeat([]byte{'m'}, bodySize),
		from: envelope.From{Account: chain.AccountID{1}, Device: chain.DeviceID(ks.DeviceID()), Identity: testkit.Must(ks.Identity(idInfo.ID))},
		sig:  testkit.Must(hybrid.NewPrivateKey(bytes.Repeat([]byte{7}, hybrid.SeedSize)))}
	for i := range n {
		k := testkit.Must(hpke.MLKEM768X25519().GenerateKey())
		s.to = append(s.to, envelope.Recipient{Account: chain.AccountID{2}, Device: chain.DeviceID{byte(i)}, KEM: k.PublicKey().Bytes(),
			Head: chain.Head{Seq: 3, Hash: chain.Hash{9}}})
		id := testkit.Must(age.GenerateHybridIdentity())
		s.ageR = append(s.ageR, id.Recipient())
	}
	return s
}

// sealEnigm is what device.Send does: a fresh memory-only session key, Seal
// to every device, the key destroyed.
func (s *sender) sealEnigm() ([]envelope.Sealed, error) {
	info, err := s.ks.Generate(keystore.ClassSession, keystore.GenerateOptions{Cause: lifecycle.MessagingSetup, Activate: true, TTL: 5 * time.Minute})
	if err != nil {
		return nil, err
	}
	sk, err := s.ks.Session(info.ID)
	if err != nil {
		return nil, err
	}
	defer sk.Destroy()
	return envelope.Seal(sk, s.from, envelope.Message{Kind: envelope.KindMessage, Conversation: chain.AccountID{2}, Body: s.body, SentAt: time.Now()}, s.to)
}

// sealAge is the baseline: age to every device, then one hybrid signature
// over age's whole output.
func (s *sender) sealAge() ([]byte, error) {
	var out bytes.Buffer
	w, err := age.Encrypt(&out, s.ageR...)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(s.body); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	sig, err := s.sig.Sign("enigm/v1/bench", out.Bytes())
	if err != nil {
		return nil, err
	}
	return append(out.Bytes(), sig.Bytes()...), nil
}

// sizes returns the bytes of the N envelopes (what today's per-device relay
// carries) and of the message with its shared parts counted once (header,
// body, signature, digests, and each device's recipient part and sealed
// key: what a relay that fans one message out would carry). The envelope
// is read as a generic CBOR map (keys as in package envelope's format).
func sizes(b *testing.B, sealed []envelope.Sealed) (relayed, message int) {
	const header, recipient, sealedKey, body, sig, digests = 1, 2, 3, 4, 5, 7
	for i, s := range sealed {
		relayed += len(s.Bytes)
		var m map[uint64]any
		if err := cbor.Unmarshal(s.Bytes, &m); err != nil {
			b.Fatal(err)
		}
		field := func(k uint64) int {
			v, ok := m[k].([]byte)
			if !ok {
				b.Fatalf("envelope field %d is %T", k, m[k])
			}
			return len(v)
		}
		if i == 0 {
			message += field(header) + field(body) + field(sig) + field(digests)
		}
		message += field(recipient) + field(sealedKey)
	}
	return relayed, message
}

// BenchmarkSealN alternates the two within each iteration (the order
// flips every iteration), so both see the same machine load, and reports
// each one's time, their ratio and the bytes.
func BenchmarkSealN(b *testing.B) {
	for _, n := range []int{1, 5, 20} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			s := newSender(b, n)
			var te, ta time.Duration
			var sealed []envelope.Sealed
			var ageOut []byte
			var err error
			for i := 0; b.Loop(); i++ {
				for k := range 2 {
					t0 := time.Now()
					if (i+k)%2 == 0 {
						sealed, err = s.sealEnigm()
						te += time.Since(t0)
					} else {
						ageOut, err = s.sealAge()
						ta += time.Since(t0)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			}
			relayed, message := sizes(b, sealed)
			iters := float64(b.N)
			b.ReportMetric(float64(te.Nanoseconds())/iters, "enigm-ns/op")
			b.ReportMetric(float64(ta.Nanoseconds())/iters, "age+sig-ns/op")
			b.ReportMetric(float64(te)/float64(ta), "enigm/age")
			b.ReportMetric(float64(message), "enigm-msg-B")
			b.ReportMetric(float64(relayed), "enigm-relayed-B")
			b.ReportMetric(float64(len(ageOut)), "age+sig-B")
		})
	}
}

// TestAgeBaselineOpens checks that the baseline does what it claims: every
// device's age identity opens the output (without the signature) to the
// body, so the benchmark does not time a broken encryption.
func TestAgeBaselineOpens(t *testing.T) {
	var out bytes.Buffer
	ids := []*age.HybridIdentity{testkit.Must(age.GenerateHybridIdentity()), testkit.Must(age.GenerateHybridIdentity())}
	w := testkit.Must(age.Encrypt(&out, ids[0].Recipient(), ids[1].Recipient()))
	w.Write([]byte("body"))
	w.Close()
	for _, id := range ids {
		r, err := age.Decrypt(bytes.NewReader(out.Bytes()), id)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := io.ReadAll(r); string(got) != "body" {
			t.Fatalf("opened %q", got)
		}
	}
}
