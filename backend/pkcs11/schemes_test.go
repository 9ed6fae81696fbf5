//go:build cgo

package pkcs11

import (
	"bytes"
	"errors"
	"testing"

	p11 "github.com/miekg/pkcs11"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/backendtest"
)

// The conformance suite on every token setup, with the scheme Provision
// chooses there (with the setup's PIN: openCryptoki takes 4 to 8 bytes).
func TestConformanceSetups(t *testing.T) {
	forEachSetup(t, func(t *testing.T, su *setup) {
		label := su.Token(t)
		b := su.backend(t, Options{TokenLabel: label}, nil)
		if got := b.Capabilities().Holds(backend.AlgP256); got != su.EC {
			t.Fatalf("capabilities hold P-256 = %v, want %v", got, su.EC)
		}
		if got := b.Capabilities().Holds(backend.AlgAES256); got != (su.scheme != schemeECDH) {
			t.Fatalf("capabilities hold AES-256 = %v on a %s token", got, schemeByID(su.scheme).name)
		}
		st, err := b.Provision(bg, su.PIN())
		if err != nil {
			t.Fatal(err)
		}
		if s := mustState(t, st); s.Scheme != su.scheme {
			t.Fatalf("Provision chose scheme %d, want %d (%s)", s.Scheme, su.scheme, schemeByID(su.scheme).name)
		}
		if err := b.Destroy(bg, st); err != nil {
			t.Fatal(err)
		}
		backendtest.RunSecret(t, su.PIN(), func(t *testing.T) backend.Backend {
			return su.backend(t, Options{TokenLabel: label}, nil)
		})
	})
}

// Every scheme on SoftHSM2 with every mechanism, forced through
// Options.Scheme.
func TestConformanceForcedSchemes(t *testing.T) {
	for _, sc := range schemes {
		t.Run(sc.name, func(t *testing.T) {
			label := newToken(t)
			b := newTestBackendOpts(t, Options{TokenLabel: label, Scheme: sc.name}, nil)
			st, err := b.Provision(bg, pin)
			if err != nil {
				t.Fatal(err)
			}
			if s := mustState(t, st); s.Scheme != sc.id {
				t.Fatalf("Provision chose scheme %d, want %d", s.Scheme, sc.id)
			}
			backendtest.RunSecret(t, pin, func(t *testing.T) backend.Backend {
				return newTestBackendOpts(t, Options{TokenLabel: label, Scheme: sc.name}, nil)
			})
		})
	}
}

// Destroy without the PIN on every setup and scheme: only private objects
// are left; an attacker with the PIN and copies of the state and sealed
// data who plants a new destroy key under the old name gets a session but
// unseals nothing; Purge removes the rest.
func TestDestroyLockedSetups(t *testing.T) {
	forEachSetup(t, func(t *testing.T, su *setup) {
		b := su.backend(t, Options{}, nil)
		st, s := openNewStorePIN(t, b, su.PIN())
		labels := []string{"enigm/v1/kek/identity", "enigm/v1/kek/kem"}
		sealed := sealAll(t, s, labels...)
		perLabel := 1 // the wrapping key
		switch su.scheme {
		case schemeCBCHMAC:
			perLabel = 2 // + the MAC key
		case schemeECDH:
			perLabel = 2 // a key pair
		}
		want := perLabel * len(labels)
		if bk, ok := s.(backend.BindingKeys); ok {
			if _, _, err := bk.CreateBindingKey(bg); err != nil {
				t.Fatal(err)
			}
			want += 2
		} else if su.EC {
			t.Fatal("the session offers no binding keys on a token with ECDSA")
		}
		s.Close()
		stCopy := bytes.Clone(st)
		if err := b.Destroy(bg, st); err != nil {
			t.Fatalf("Destroy without the PIN: %v", err)
		}
		if _, err := b.Open(bg, stCopy, su.PIN()); !errors.Is(err, backend.ErrDestroyed) {
			t.Fatalf("Open after Destroy: err = %v, want ErrDestroyed", err)
		}
		inspectPIN(t, b, st, su.PIN(), func(c *conn) {
			hs := storeObjects(t, c)
			if len(hs) != want {
				t.Fatalf("%d objects left, want the %d private ones", len(hs), want)
			}
			for _, h := range hs {
				if !boolAttr(t, c, h, p11.CKA_PRIVATE) {
					t.Fatal("an object visible without the PIN survived Destroy")
				}
			}
			if err := c.createDestroyKey(); err != nil { // the attacker's new destroy key
				t.Fatal(err)
			}
		})
		s, err := b.Open(bg, stCopy, su.PIN())
		if err != nil {
			t.Fatalf("Open with the planted destroy key: %v", err)
		}
		for l, blob := range sealed {
			if got, err := s.Unseal(bg, l, blob); !errors.Is(err, backend.ErrSealedData) {
				t.Fatalf("Unseal after Destroy with a planted destroy key: %q, %v; want ErrSealedData", got, err)
			}
		}
		s.Close()
		if err := b.Purge(bg, st, su.PIN()); err != nil {
			t.Fatalf("Purge: %v", err)
		}
		inspectPIN(t, b, st, su.PIN(), func(c *conn) {
			if n := len(storeObjects(t, c)); n != 0 {
				t.Fatalf("%d objects left after Purge", n)
			}
		})
	})
}

// Every secret and private key of a store, on every setup and scheme, is
// sensitive, never extractable, generated on the token, and its value
// cannot be read.
func TestKeyAttributesSetups(t *testing.T) {
	forEachSetup(t, func(t *testing.T, su *setup) {
		b := su.backend(t, Options{}, nil)
		st, s := openNewStorePIN(t, b, su.PIN())
		defer b.Purge(bg, st, su.PIN())
		sealAll(t, s, "enigm/v1/kek/identity")
		if bk, ok := s.(backend.BindingKeys); ok {
			if _, _, err := bk.CreateBindingKey(bg); err != nil {
				t.Fatal(err)
			}
		}
		s.Close()
		inspectPIN(t, b, st, su.PIN(), func(c *conn) {
			checked := 0
			for _, h := range storeObjects(t, c) {
				got, err := c.b.tok.GetAttributeValue(c.sh, h, []*p11.Attribute{p11.NewAttribute(p11.CKA_CLASS, nil)})
				if err != nil {
					t.Fatal(err)
				}
				if cls, _ := ulong(got[0].Value); cls == p11.CKO_PUBLIC_KEY {
					continue
				}
				checked++
				for attr, want := range map[uint]bool{
					p11.CKA_TOKEN: true, p11.CKA_SENSITIVE: true, p11.CKA_EXTRACTABLE: false,
					p11.CKA_NEVER_EXTRACTABLE: true, p11.CKA_ALWAYS_SENSITIVE: true, p11.CKA_LOCAL: true,
				} {
					if boolAttr(t, c, h, attr) != want {
						t.Errorf("object %d: attribute %#x is not %v", h, attr, want)
					}
				}
				if _, err := c.b.tok.GetAttributeValue(c.sh, h, []*p11.Attribute{p11.NewAttribute(p11.CKA_VALUE, nil)}); err == nil {
					t.Errorf("object %d: CKA_VALUE could be read", h)
				}
			}
			if checked < 2 {
				t.Fatalf("only %d keys checked", checked)
			}
		})
	})
}
