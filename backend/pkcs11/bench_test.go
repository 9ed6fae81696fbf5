//go:build cgo

package pkcs11

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"testing"

	p11 "github.com/miekg/pkcs11"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/backendtest"
)

// Benchmarks against SoftHSM2 (issue 5, speed). Results and the command
// are in docs/perf.md, section "PKCS#11 backend".

var classLabels = []string{"enigm/v1/kek/identity", "enigm/v1/kek/kem", "enigm/v1/kek/session"}

// benchStore provisions a store on a fresh token (a device's keystore owns
// its token; SoftHSM2's login cost grows with the objects on the token)
// with the keystore's layout: one sealed
// wrapping key per class and a binding key. The returned session is closed.
func benchStore(b *testing.B) (*Backend, []byte, map[string][]byte, []byte) {
	b.Helper()
	be := newTestBackend(b, newToken(b), nil)
	st, s := openNewStore(b, be)
	defer s.Close()
	sealed := sealClassKeys(b, s)
	blob, _, err := s.(backend.BindingKeys).CreateBindingKey(bg)
	if err != nil {
		b.Fatal(err)
	}
	return be, st, sealed, blob
}

// sealClassKeys seals a random 32-byte wrapping key for each class and
// returns the sealed blobs by label.
func sealClassKeys(b *testing.B, s backend.Session) map[string][]byte {
	b.Helper()
	sealed := map[string][]byte{}
	for _, l := range classLabels {
		k := make([]byte, 32)
		rand.Read(k)
		var err error
		if sealed[l], err = s.Seal(bg, l, k); err != nil {
			b.Fatal(err)
		}
	}
	return sealed
}

// benchSession opens the store st with the test PIN for the rest of the
// benchmark.
func benchSession(b *testing.B, be *Backend, st []byte) backend.Session {
	b.Helper()
	return backendtest.Open(b, be, st, pin)
}

// benchBindingKey opens a session of a fresh bench store and loads its
// binding key.
func benchBindingKey(b *testing.B) (backend.Session, crypto.Signer) {
	b.Helper()
	be, st, _, blob := benchStore(b)
	s := benchSession(b, be, st)
	key, err := s.(backend.BindingKeys).LoadBindingKey(bg, blob)
	if err != nil {
		b.Fatal(err)
	}
	return s, key
}

// BenchmarkSignP256Token: one binding-key signature per operation: C_SignInit
// + C_Sign on the token, r||s to DER, verification against the public key.
func BenchmarkSignP256Token(b *testing.B) {
	_, key := benchBindingKey(b)
	d := sha256.Sum256([]byte("enigm benchmark message"))
	for b.Loop() {
		if _, err := key.Sign(nil, d[:], crypto.SHA256); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSignP256TokenRaw is C_SignInit + C_Sign alone: a P-256
// signature through PKCS#11 as a plain client would make it, without the
// DER conversion and the verification the binding key adds.
func BenchmarkSignP256TokenRaw(b *testing.B) {
	s, key := benchBindingKey(b)
	c := s.(*session).c
	priv := key.(*signer).priv
	mech := []*p11.Mechanism{p11.NewMechanism(p11.CKM_ECDSA, nil)}
	d := sha256.Sum256([]byte("enigm benchmark message"))
	for b.Loop() {
		if err := c.b.tok.SignInit(c.sh, mech, priv); err != nil {
			b.Fatal(err)
		}
		if sig, err := c.b.tok.Sign(c.sh, d[:]); err != nil || len(sig) != 64 {
			b.Fatal(err)
		}
	}
}

// BenchmarkSignP256Software is the same signature with crypto/ecdsa in
// process (no token), for scale.
func BenchmarkSignP256Software(b *testing.B) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	d := sha256.Sum256([]byte("enigm benchmark message"))
	for b.Loop() {
		if _, err := k.Sign(rand.Reader, d[:], crypto.SHA256); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpen: C_Login with the PIN, find and check the destroy key,
// then Close (C_Logout).
func BenchmarkOpen(b *testing.B) {
	be, st, _, _ := benchStore(b)
	for b.Loop() {
		s, err := be.Open(bg, st, pin)
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}

// BenchmarkUnlock is what the keystore does at unlock: Open, unseal each
// class's wrapping key once, load the binding key; then Close.
func BenchmarkUnlock(b *testing.B) {
	be, st, sealed, blob := benchStore(b)
	for b.Loop() {
		unlockOnce(b, be, st, pin, sealed, blob)
	}
}

// unlockOnce opens the store, unseals each class's wrapping key, loads the
// binding key (when blob is set) and closes the session.
func unlockOnce(b *testing.B, be *Backend, st, pin []byte, sealed map[string][]byte, blob []byte) {
	s, err := be.Open(bg, st, pin)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for _, l := range classLabels {
		k, err := s.Unseal(bg, l, sealed[l])
		if err != nil {
			b.Fatal(err)
		}
		clear(k)
	}
	if blob != nil {
		if _, err := s.(backend.BindingKeys).LoadBindingKey(bg, blob); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSeal32 and BenchmarkUnseal32: one 32-byte wrapping key, two
// AES-256-GCM operations on the token each (wrapping keys cached).
func BenchmarkSeal32(b *testing.B) {
	be, st, _, _ := benchStore(b)
	s := benchSession(b, be, st)
	k := make([]byte, 32)
	for b.Loop() {
		if _, err := s.Seal(bg, classLabels[0], k); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnseal32(b *testing.B) {
	be, st, sealed, _ := benchStore(b)
	s := benchSession(b, be, st)
	for b.Loop() {
		k, err := s.Unseal(bg, classLabels[0], sealed[classLabels[0]])
		if err != nil {
			b.Fatal(err)
		}
		clear(k)
	}
}

// BenchmarkSchemes: unlock (as BenchmarkUnlock) and the seal and unseal of
// one 32-byte wrapping key, per scheme and token setup, in one run; the
// baseline for the ratios in docs/perf.md is softhsm2-full/aes-gcm.
func BenchmarkSchemes(b *testing.B) {
	type run struct {
		su     *setup
		scheme string
	}
	var runs []run
	for _, sc := range schemes {
		runs = append(runs, run{setupFull, sc.name})
	}
	runs = append(runs, run{setupNoGCM, SchemeAESCBCHMAC}, run{setupEC, SchemeP256ECDH}, run{setupAdopted, SchemeP256ECDH}, run{setupOCK, SchemeAESCBCHMAC})
	for _, r := range runs {
		b.Run(r.su.Name+"/"+r.scheme, func(b *testing.B) {
			r.su.Need(b)
			cnt := &counting{} // token calls per operation, reported as token-calls/op
			be := r.su.backend(b, Options{Scheme: r.scheme, AdoptKeyID: r.su.AdoptID}, func(tok token) token { cnt.token = tok; return cnt })
			calls := func(b *testing.B, from int64) {
				b.ReportMetric(float64(cnt.n.Load()-from)/float64(b.N), "token-calls/op")
			}
			st, err := be.Provision(bg, r.su.PIN())
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { be.Purge(bg, st, r.su.PIN()) })
			s, err := be.Open(bg, st, r.su.PIN())
			if err != nil {
				b.Fatal(err)
			}
			sealed := sealClassKeys(b, s)
			var blob []byte
			if bk, ok := s.(backend.BindingKeys); ok {
				if blob, _, err = bk.CreateBindingKey(bg); err != nil {
					b.Fatal(err)
				}
			}
			b.Run("Unlock", func(b *testing.B) {
				s.Close()
				from := cnt.n.Load()
				for b.Loop() {
					unlockOnce(b, be, st, r.su.PIN(), sealed, blob)
				}
				calls(b, from)
			})
			s, err = be.Open(bg, st, r.su.PIN())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			k := make([]byte, 32)
			if _, err := s.Seal(bg, classLabels[0], k); err != nil { // loads the label's keys once
				b.Fatal(err)
			}
			b.Run("Seal32", func(b *testing.B) {
				from := cnt.n.Load()
				for b.Loop() {
					if _, err := s.Seal(bg, classLabels[0], k); err != nil {
						b.Fatal(err)
					}
				}
				calls(b, from)
			})
			b.Run("Unseal32", func(b *testing.B) {
				from := cnt.n.Load()
				for b.Loop() {
					k, err := s.Unseal(bg, classLabels[0], sealed[classLabels[0]])
					if err != nil {
						b.Fatal(err)
					}
					clear(k)
				}
				calls(b, from)
			})
		})
	}
}
