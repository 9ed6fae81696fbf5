// Package agebench compares sealing a message to N devices with package
// envelope against filippo.io/age (its MLKEM768-X25519 hybrid recipient)
// plus one hybrid signature over age's output. It is a module of its own so
// that age never enters the main module's dependencies or any binary.
//
// BenchmarkSealSend and TestWireBytesPerRecipient (send_test.go) measure
// the send request itself: the message form through client.Send against
// the per-device JSON request of before.
//
//	cd bench/age && go test -run '^$' -bench . -count 6
package agebench

import (
	"bytes"
	"context"
	"crypto/hpke"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/enigm/enigm/api"
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

func newSender(b testing.TB, n int) *sender {
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
	var out []envelope.Sealed
	err := s.withKey(func(sk *keystore.SessionKey) (err error) {
		out, err = envelope.Seal(sk, s.from, s.message(), s.to)
		return err
	})
	return out, err
}

// sealMessage is sealEnigm returning the message form too (for its bytes;
// not timed).
func (s *sender) sealMessage() (*envelope.Outgoing, error) {
	var out *envelope.Outgoing
	err := s.withKey(func(sk *keystore.SessionKey) (err error) {
		out, err = envelope.SealMessage(sk, s.from, s.message(), s.to)
		return err
	})
	return out, err
}

func (s *sender) message() envelope.Message {
	return envelope.Message{Kind: envelope.KindMessage, Conversation: chain.AccountID{2}, Body: s.body, SentAt: time.Now()}
}

// withKey runs f with a fresh memory-only session key, destroyed after.
func (s *sender) withKey(f func(*keystore.SessionKey) error) error {
	info, err := s.ks.Generate(keystore.ClassSession, keystore.GenerateOptions{Cause: lifecycle.MessagingSetup, Activate: true, TTL: 5 * time.Minute})
	if err != nil {
		return err
	}
	sk, err := s.ks.Session(info.ID)
	if err != nil {
		return err
	}
	defer sk.Destroy()
	return f(sk)
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

// sizes returns the bytes of the message form (every shared part once and
// one entry per device: what the relay takes since the message form went
// on the wire), of the N envelopes (what the relay takes from older
// clients, one ciphertext per device) and of their JSON send request
// (ciphertexts in base64, hex ids).
func sizes(b testing.TB, o *envelope.Outgoing) (message, relayed, request int) {
	var envs []api.OutgoingEnvelope
	for _, s := range o.Envelopes {
		relayed += len(s.Bytes)
		envs = append(envs, api.OutgoingEnvelope{AccountID: hex.EncodeToString(s.To.Account[:]), DeviceID: hex.EncodeToString(s.To.Device[:]),
			Ciphertext: s.Bytes})
	}
	req, err := json.Marshal(api.SendRequest{Kind: api.KindMessage, Envelopes: envs})
	if err != nil {
		b.Fatal(err)
	}
	return len(o.Message), relayed, len(req)
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
			if len(sealed) != n {
				b.Fatalf("%d envelopes", len(sealed))
			}
			o, err := s.sealMessage()
			if err != nil {
				b.Fatal(err)
			}
			message, relayed, request := sizes(b, o)
			iters := float64(b.N)
			b.ReportMetric(float64(te.Nanoseconds())/iters, "enigm-ns/op")
			b.ReportMetric(float64(ta.Nanoseconds())/iters, "age+sig-ns/op")
			b.ReportMetric(float64(te)/float64(ta), "enigm/age")
			b.ReportMetric(float64(message), "enigm-msg-B")
			b.ReportMetric(float64(relayed), "enigm-relayed-B")
			b.ReportMetric(float64(request), "enigm-request-B")
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

// ageStanzas returns the sizes of the recipient stanzas of an age header
// ("-> type args\n" and the body lines up to the next stanza or the MAC
// line), read from the encrypted file itself.
func ageStanzas(t testing.TB, file []byte) []int {
	hdr, _, ok := bytes.Cut(file, []byte("\n--- "))
	if !ok || !bytes.HasPrefix(hdr, []byte("age-encryption.org/v1\n")) {
		t.Fatal("not an age file")
	}
	var out []int
	for _, st := range bytes.Split(hdr, []byte("\n-> "))[1:] {
		out = append(out, len("-> ")+len(st)+1) // the newline before the next stanza or the MAC line
	}
	return out
}

// TestBytesPerRecipient pins what one more device costs on each side
// (deterministic sizes, not timing): age's recipient stanza, and the
// envelope's entry in the message form, which must stay within 1.2x of
// age's. It logs the breakdown docs/perf.md gives.
func TestBytesPerRecipient(t *testing.T) {
	one, two := newSender(t, 1), newSender(t, 2)
	o1, err := one.sealMessage()
	if err != nil {
		t.Fatal(err)
	}
	o2, err := two.sealMessage()
	if err != nil {
		t.Fatal(err)
	}
	a1, err := one.sealAge()
	if err != nil {
		t.Fatal(err)
	}
	a2, err := two.sealAge()
	if err != nil {
		t.Fatal(err)
	}
	st := ageStanzas(t, a2)
	if len(st) != 2 || st[0] != st[1] {
		t.Fatalf("age stanzas %v", st)
	}
	ageExtra, enigmExtra := len(a2)-len(a1), len(o2.Message)-len(o1.Message)
	if ageExtra != st[0] {
		t.Fatalf("age grew %d bytes for one more recipient, its stanza is %d", ageExtra, st[0])
	}
	_, r1, _ := sizes(t, o1)
	_, r2, _ := sizes(t, o2)
	t.Logf("one more recipient: age %d bytes (stanza: \"-> mlkem768x25519 \" 18, base64 of the 1,120-byte encapsulation 1,494, newline, base64 of the 32-byte wrapped file key 43, newline)", ageExtra)
	t.Logf("one more recipient: enigm message form %d bytes (entry %d + its bstr length 3), %.2fx age's; per-device envelopes %d (one envelope of %d at N=1 and 32 more digest bytes in each)",
		enigmExtra, len(o2.Message)-len(o1.Message)-3, float64(enigmExtra)/float64(ageExtra), r2-r1, r1)
	if float64(enigmExtra) > 1.2*float64(ageExtra) {
		t.Fatalf("the message form grows %d bytes per recipient, more than 1.2x age's %d", enigmExtra, ageExtra)
	}
}
