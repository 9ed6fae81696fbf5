//go:build cgo

package pkcs11

import (
	"bytes"
	"errors"
	"testing"

	p11 "github.com/miekg/pkcs11"

	"github.com/enigm/enigm/backend"
)

// faultyStoreScheme is faultyStore with a forced scheme.
func faultyStoreScheme(t *testing.T, scheme string) (*faulty, *Backend, []byte, *session) {
	t.Helper()
	f := &faulty{}
	b := newTestBackendOpts(t, Options{TokenLabel: newToken(t), Scheme: scheme}, func(tok token) token { f.token = tok; return f })
	st, s := openNewStore(t, b)
	return f, b, st, s.(*session)
}

// A token answering wrongly under AES-CBC-HMAC: every answer is caught.
func TestFaultyCBCHMAC(t *testing.T) {
	f, _, _, s := faultyStoreScheme(t, SchemeAESCBCHMAC)
	secret, sealed := sealSecret(t, s)
	for _, tc := range []struct {
		desc      string
		decrypt   func(call int, pt []byte) []byte
		wantFault bool
	}{
		{"outer plaintext one byte short", atCall(0, func(pt []byte) []byte { return pt[:len(pt)-1] }), true},
		{"inner plaintext one block long", atCall(1, func(pt []byte) []byte { return append(pt, make([]byte, 16)...) }), true},
		{"inner plaintext with a flipped secret byte", atCall(1, func(pt []byte) []byte { pt[0] ^= 1; return pt }), true},
		{"outer plaintext with a flipped inner IV byte", atCall(0, func(pt []byte) []byte { pt[0] ^= 1; return pt }), true},
	} {
		f.calls = 0
		f.decrypt = tc.decrypt
		got, err := s.Unseal(bg, "enigm/v1/kek/identity", sealed)
		if err == nil {
			t.Fatalf("%s: unsealed %x", tc.desc, got)
		}
		wantFault(t, tc.desc, err, backend.ErrSealedData)
		if tc.wantFault {
			wantFault(t, tc.desc, err, ErrTokenFault)
		}
	}
	f.decrypt = nil
	// The HMAC the token computes: a wrong tag makes the data not open, a
	// wrong length is the token's fault.
	f.sign = func(tag []byte) []byte { tag[5] ^= 1; return tag }
	if _, err := s.Unseal(bg, "enigm/v1/kek/identity", sealed); !errors.Is(err, backend.ErrSealedData) {
		t.Fatalf("wrong HMAC: err = %v, want ErrSealedData", err)
	}
	f.sign = func(tag []byte) []byte { return tag[:31] }
	if _, err := s.Seal(bg, "enigm/v1/kek/identity", secret); !errors.Is(err, ErrTokenFault) {
		t.Fatalf("short HMAC at Seal: err = %v, want ErrTokenFault", err)
	}
	f.sign = nil
	f.encrypt = func(ct []byte) []byte { return ct[:len(ct)-16] }
	if _, err := s.Seal(bg, "enigm/v1/kek/identity", secret); !errors.Is(err, ErrTokenFault) {
		t.Fatalf("short ciphertext at Seal: err = %v, want ErrTokenFault", err)
	}
	f.encrypt = nil
	if got, err := s.Unseal(bg, "enigm/v1/kek/identity", sealed); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("an honest token again: %v", err)
	}
}

// A token computing wrong ECDH secrets under P-256 ECDH: caught when a
// key is created (checked against software), and at Unseal.
func TestFaultyECDH(t *testing.T) {
	f, b, st, s := faultyStoreScheme(t, SchemeP256ECDH)
	secret, sealed := sealSecret(t, s)
	flip := func(a []*p11.Attribute) {
		for _, x := range a {
			if x.Type == p11.CKA_VALUE && len(x.Value) == 32 {
				x.Value[0] ^= 1
			}
		}
	}
	f.attrs = flip
	if _, err := s.Unseal(bg, "enigm/v1/kek/identity", sealed); !errors.Is(err, backend.ErrSealedData) {
		t.Fatalf("wrong ECDH secret: err = %v, want ErrSealedData", err)
	}
	if _, err := s.Seal(bg, "enigm/v1/kek/session", secret); !errors.Is(err, ErrTokenFault) {
		t.Fatalf("a new label key with a wrong ECDH: err = %v, want ErrTokenFault", err)
	}
	f.attrs = func(a []*p11.Attribute) {
		for _, x := range a {
			if x.Type == p11.CKA_VALUE {
				x.Value = x.Value[:31]
			}
		}
	}
	if _, err := s.Unseal(bg, "enigm/v1/kek/identity", sealed); !errors.Is(err, ErrTokenFault) {
		t.Fatalf("short ECDH secret: err = %v, want ErrTokenFault", err)
	}
	f.attrs = nil
	if got, err := s.Unseal(bg, "enigm/v1/kek/identity", sealed); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("an honest token again: %v", err)
	}
	// The failed key pair was removed: the destroy pair and the identity
	// pair remain, and the derived secrets (session objects) are gone.
	inspect(t, b, st, func(c *conn) {
		if n := len(storeObjects(t, c)); n != 4 {
			t.Fatalf("%d store objects, want 4 (two key pairs)", n)
		}
		all, err := c.find([]*p11.Attribute{p11.NewAttribute(p11.CKA_TOKEN, false)})
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 0 {
			t.Fatalf("%d session objects left: derived ECDH secrets were not destroyed", len(all))
		}
	})
}

// picky rejects, like tpm2-pkcs11, any template with an explicit false
// usage flag (CKR_GENERAL_ERROR), and counts the templates it saw.
type picky struct {
	token
	rejected int
}

func hasFalseUsage(a []*p11.Attribute) bool {
	for _, x := range a {
		switch x.Type {
		case p11.CKA_ENCRYPT, p11.CKA_DECRYPT, p11.CKA_WRAP, p11.CKA_UNWRAP, p11.CKA_SIGN, p11.CKA_VERIFY, p11.CKA_DERIVE, p11.CKA_SIGN_RECOVER:
			if len(x.Value) == 1 && x.Value[0] == 0 {
				return true
			}
		}
	}
	return false
}

func (p *picky) GenerateKey(sh p11.SessionHandle, m []*p11.Mechanism, a []*p11.Attribute) (p11.ObjectHandle, error) {
	if hasFalseUsage(a) {
		p.rejected++
		return 0, p11.Error(p11.CKR_GENERAL_ERROR)
	}
	return p.token.GenerateKey(sh, m, a)
}

func (p *picky) GenerateKeyPair(sh p11.SessionHandle, m []*p11.Mechanism, pub, priv []*p11.Attribute) (p11.ObjectHandle, p11.ObjectHandle, error) {
	if hasFalseUsage(pub) || hasFalseUsage(priv) {
		p.rejected++
		return 0, 0, p11.Error(p11.CKR_GENERAL_ERROR)
	}
	return p.token.GenerateKeyPair(sh, m, pub, priv)
}

// A token that rejects explicit false usage flags gets the minimal
// template, on every scheme, and the keys still pass the read-back.
func TestMinimalTemplates(t *testing.T) {
	for _, sc := range schemes {
		t.Run(sc.name, func(t *testing.T) {
			p := &picky{}
			b := newTestBackendOpts(t, Options{TokenLabel: newToken(t), Scheme: sc.name}, func(tok token) token { p.token = tok; return p })
			_, s := openNewStore(t, b)
			sealed, err := s.Seal(bg, "l", []byte("x"))
			if err != nil {
				t.Fatal(err)
			}
			if got, err := s.Unseal(bg, "l", sealed); err != nil || string(got) != "x" {
				t.Fatalf("unseal: %q, %v", got, err)
			}
			if _, _, err := s.(backend.BindingKeys).CreateBindingKey(bg); err != nil {
				t.Fatal(err)
			}
			if p.rejected == 0 {
				t.Fatal("the strict template was never tried")
			}
		})
	}
}
