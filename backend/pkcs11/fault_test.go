//go:build cgo

package pkcs11

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"testing"

	p11 "github.com/miekg/pkcs11"

	"github.com/enigm/enigm/backend"
)

// faulty is a token double: it forwards to SoftHSM2 and lets a test rewrite
// answers, to simulate a misbehaving token. Hooks are set before the calls
// they affect, from the test goroutine.
type faulty struct {
	token
	sign    func(sig []byte) []byte
	encrypt func(ct []byte) []byte
	decrypt func(call int, pt []byte) []byte // call counts from 0
	login   func() error
	absent  bool // the token was removed: no slots, CKR_TOKEN_NOT_PRESENT
	attrs   func(a []*p11.Attribute)
	signErr error
	calls   int
}

func (f *faulty) Sign(sh p11.SessionHandle, m []byte) ([]byte, error) {
	sig, err := f.token.Sign(sh, m)
	if err == nil && f.signErr != nil {
		return nil, f.signErr
	}
	if err == nil && f.sign != nil {
		sig = f.sign(sig)
	}
	return sig, err
}

func (f *faulty) Encrypt(sh p11.SessionHandle, m []byte) ([]byte, error) {
	ct, err := f.token.Encrypt(sh, m)
	if err == nil && f.encrypt != nil {
		ct = f.encrypt(ct)
	}
	return ct, err
}

func (f *faulty) Decrypt(sh p11.SessionHandle, c []byte) ([]byte, error) {
	pt, err := f.token.Decrypt(sh, c)
	if err == nil && f.decrypt != nil {
		pt = f.decrypt(f.calls, pt)
		f.calls++
	}
	return pt, err
}

func (f *faulty) Login(sh p11.SessionHandle, u uint, pin string) error {
	if f.login != nil {
		return f.login()
	}
	return f.token.Login(sh, u, pin)
}

func (f *faulty) GetSlotList(present bool) ([]uint, error) {
	if f.absent {
		return nil, nil
	}
	return f.token.GetSlotList(present)
}

func (f *faulty) GetTokenInfo(slot uint) (p11.TokenInfo, error) {
	if f.absent {
		return p11.TokenInfo{}, p11.Error(p11.CKR_TOKEN_NOT_PRESENT)
	}
	return f.token.GetTokenInfo(slot)
}

func (f *faulty) GetAttributeValue(sh p11.SessionHandle, o p11.ObjectHandle, a []*p11.Attribute) ([]*p11.Attribute, error) {
	got, err := f.token.GetAttributeValue(sh, o, a)
	if err == nil && f.attrs != nil {
		f.attrs(got)
	}
	return got, err
}

// faultyStore provisions and opens a store through a faulty token.
func faultyStore(t *testing.T) (*faulty, *Backend, []byte, *session) {
	t.Helper()
	return faultyStoreScheme(t, "") // the scheme a full token gets: aes-gcm
}

// sealSecret seals 32 bytes under the identity label while the token is
// still honest: the secret, and what the fault tests then try to unseal.
func sealSecret(t *testing.T, s *session) (secret, sealed []byte) {
	t.Helper()
	secret = bytes.Repeat([]byte{0x42}, 32)
	sealed, err := s.Seal(bg, "enigm/v1/kek/identity", secret)
	if err != nil {
		t.Fatal(err)
	}
	return secret, sealed
}

// atCall rewrites the plaintext of the n-th decryption (0: outer layer,
// 1: inner layer).
func atCall(n int, rewrite func([]byte) []byte) func(int, []byte) []byte {
	return func(call int, pt []byte) []byte {
		if call == n {
			return rewrite(pt)
		}
		return pt
	}
}

func wantFault(t *testing.T, what string, err error, sentinels ...error) {
	t.Helper()
	for _, s := range sentinels {
		if !errors.Is(err, s) {
			t.Errorf("%s: err = %v, want %v", what, err, s)
		}
	}
}

func TestFaultySignature(t *testing.T) {
	f, _, _, s := faultyStore(t)
	_, key, err := s.CreateBindingKey(bg)
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("bind"))
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cases := []struct {
		desc string
		sign func([]byte) []byte
	}{
		{"bit flipped in s", func(sig []byte) []byte { sig[63] ^= 1; return sig }},
		{"bit flipped in r", func(sig []byte) []byte { sig[0] ^= 0x80; return sig }},
		{"r and s swapped", func(sig []byte) []byte { return append(sig[32:], sig[:32]...) }},
		{"all zero", func(sig []byte) []byte { return make([]byte, 64) }},
		{"too short", func(sig []byte) []byte { return sig[:63] }},
		{"too long", func(sig []byte) []byte { return append(sig, 0) }},
		{"empty", func([]byte) []byte { return nil }},
		{"DER instead of r||s", func(sig []byte) []byte {
			der, _ := ecdsa.SignASN1(rand.Reader, other, d[:])
			return der
		}},
		{"valid signature by another key", func([]byte) []byte {
			r, s, _ := ecdsa.Sign(rand.Reader, other, d[:])
			out := make([]byte, 64)
			r.FillBytes(out[:32])
			s.FillBytes(out[32:])
			return out
		}},
	}
	for _, tc := range cases {
		f.sign = tc.sign
		sig, err := key.Sign(nil, d[:], crypto.SHA256)
		if err == nil {
			t.Errorf("%s: returned signature %x", tc.desc, sig)
			continue
		}
		wantFault(t, tc.desc, err, ErrTokenFault)
	}
	f.sign = nil
	if _, err := key.Sign(nil, d[:], crypto.SHA256); err != nil {
		t.Fatalf("an honest token again: %v", err)
	}
}

// A key pair whose first signature fails is not handed out, and is removed.
func TestFaultyNewBindingKey(t *testing.T) {
	f, b, st, s := faultyStore(t)
	f.sign = func(sig []byte) []byte { sig[10] ^= 4; return sig }
	if _, _, err := s.CreateBindingKey(bg); !errors.Is(err, ErrTokenFault) {
		t.Fatalf("err = %v, want ErrTokenFault", err)
	}
	f.sign = nil
	f.attrs = func(a []*p11.Attribute) {
		for _, x := range a {
			if x.Type == p11.CKA_EC_POINT {
				x.Value = append([]byte{0x04, 0x41, 0x04}, make([]byte, 64)...) // not on the curve
			}
		}
	}
	if _, _, err := s.CreateBindingKey(bg); !errors.Is(err, ErrTokenFault) {
		t.Fatalf("point not on the curve: err = %v, want ErrTokenFault", err)
	}
	f.attrs = nil
	inspect(t, b, st, func(c *conn) {
		if n := len(storeObjects(t, c)); n != 1 {
			t.Fatalf("%d objects: failed key pairs were left on the token", n-1)
		}
	})
}

func TestFaultyDecrypt(t *testing.T) {
	f, _, _, s := faultyStore(t)
	secret, sealed := sealSecret(t, s)
	cases := []struct {
		desc      string
		decrypt   func(call int, pt []byte) []byte
		wantFault bool // detected as the token's fault (else as bad data)
	}{
		{"outer layer one byte long", atCall(0, func(pt []byte) []byte { return append(pt, 0) }), true},
		{"outer layer one byte short", atCall(0, func(pt []byte) []byte { return pt[:len(pt)-1] }), true},
		{"inner layer one byte long", atCall(1, func(pt []byte) []byte { return append(pt, 0) }), true},
		{"inner layer truncated", atCall(1, func(pt []byte) []byte { return pt[:16] }), true},
		{"inner layer bit flip", atCall(1, func(pt []byte) []byte { pt[3] ^= 1; return pt }), true},
		{"inner layer check value flipped", atCall(1, func(pt []byte) []byte { pt[len(pt)-1] ^= 1; return pt }), true},
		{"inner layer zeros", atCall(1, func(pt []byte) []byte { return make([]byte, len(pt)) }), true},
		{"outer layer bit flip", atCall(0, func(pt []byte) []byte { pt[20] ^= 1; return pt }), false},
		{"outer layer IV flip", atCall(0, func(pt []byte) []byte { pt[0] ^= 1; return pt }), false},
	}
	for _, tc := range cases {
		f.calls, f.decrypt = 0, tc.decrypt
		got, err := s.Unseal(bg, "enigm/v1/kek/identity", sealed)
		if err == nil {
			t.Errorf("%s: unsealed %x", tc.desc, got)
			continue
		}
		wantFault(t, tc.desc, err, backend.ErrSealedData)
		if tc.wantFault {
			wantFault(t, tc.desc, err, ErrTokenFault)
		}
	}
	f.decrypt = nil
	if got, err := s.Unseal(bg, "enigm/v1/kek/identity", sealed); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("an honest token again: %x, %v", got, err)
	}
}

func TestFaultyEncrypt(t *testing.T) {
	f, _, _, s := faultyStore(t)
	for desc, enc := range map[string]func([]byte) []byte{
		"short": func(ct []byte) []byte { return ct[:len(ct)-1] },
		"long":  func(ct []byte) []byte { return append(ct, 1) },
		"empty": func([]byte) []byte { return nil },
	} {
		f.encrypt = enc
		if out, err := s.Seal(bg, "l", []byte("secret")); !errors.Is(err, ErrTokenFault) {
			t.Errorf("%s ciphertext: %x, %v; want ErrTokenFault", desc, out, err)
		}
	}
}

// A token that ignores the non-extractable template fails Provision, and the
// key it made is removed.
func TestTokenIgnoresTemplate(t *testing.T) {
	// CKA_PRIVATE: a token that makes every key private would leave Destroy
	// unable to reach the destroy key without the PIN.
	for _, attr := range []uint{p11.CKA_EXTRACTABLE, p11.CKA_NEVER_EXTRACTABLE, p11.CKA_SENSITIVE, p11.CKA_LOCAL, p11.CKA_PRIVATE} {
		f := &faulty{}
		label := newToken(t)
		b := newTestBackend(t, label, func(tok token) token { f.token = tok; return f })
		f.attrs = func(a []*p11.Attribute) {
			for _, x := range a {
				if x.Type == attr && len(x.Value) == 1 {
					x.Value = []byte{x.Value[0] ^ 1}
				}
			}
		}
		want := ErrTokenFault
		if attr == p11.CKA_PRIVATE {
			want = ErrNoPublicObjects // every scheme needs a key usable without the PIN
		}
		if _, err := b.Provision(bg, pin); !errors.Is(err, want) {
			t.Fatalf("attribute %#x lies: err = %v, want %v", attr, err, want)
		}
		// Nothing of the failed store is left: the token is empty.
		f.attrs = nil
		st, err := b.Provision(bg, pin)
		if err != nil {
			t.Fatal(err)
		}
		inspect(t, b, st, func(c *conn) {
			all, err := c.find(nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(all) != 1 {
				t.Fatalf("attribute %#x: %d objects on the token, want only the new store's destroy key", attr, len(all))
			}
		})
	}
}

func TestFaultyLoginAndDevice(t *testing.T) {
	f, b, st, s := faultyStore(t)
	s.Close()
	f.login = func() error { return p11.Error(p11.CKR_PIN_LOCKED) }
	if _, err := b.Open(bg, st, pin); !errors.Is(err, backend.ErrLockedOut) {
		t.Errorf("CKR_PIN_LOCKED: err = %v, want ErrLockedOut", err)
	}
	f.login = func() error { return p11.Error(p11.CKR_PIN_INCORRECT) }
	if _, err := b.Open(bg, st, pin); !errors.Is(err, backend.ErrBadSecret) {
		t.Errorf("CKR_PIN_INCORRECT: err = %v, want ErrBadSecret", err)
	}
	f.login = nil
	f.absent = true
	if _, err := b.Open(bg, st, pin); !errors.Is(err, backend.ErrUnavailable) {
		t.Errorf("no token: Open err = %v, want ErrUnavailable", err)
	}
	if err := b.Destroy(bg, st); !errors.Is(err, backend.ErrUnavailable) {
		t.Errorf("no token: Destroy err = %v, want ErrUnavailable", err)
	}
	if _, err := b.Provision(bg, pin); !errors.Is(err, backend.ErrUnavailable) {
		t.Errorf("no token: Provision err = %v, want ErrUnavailable", err)
	}
	f.absent = false
	s2, err := b.Open(bg, st, pin)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	_, key, err := s2.(*session).CreateBindingKey(bg)
	if err != nil {
		t.Fatal(err)
	}
	f.signErr = p11.Error(p11.CKR_DEVICE_REMOVED)
	d := sha256.Sum256(nil)
	if _, err := key.Sign(nil, d[:], crypto.SHA256); !errors.Is(err, backend.ErrUnavailable) {
		t.Errorf("device removed while signing: err = %v, want ErrUnavailable", err)
	}
}
