//go:build cgo

package pkcs11

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	p11 "github.com/miekg/pkcs11"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/backendtest"
	"github.com/enigm/enigm/backend/pkcs11/pkcs11test"
	"github.com/enigm/enigm/internal/testenv"
)

func haveOf(ms ...mechanism) map[uint]bool {
	h := map[uint]bool{}
	for _, m := range ms {
		h[m.id] = true
	}
	return h
}

// Provision says at once everything a token lacks, per scheme, and which
// scheme would work.
func TestSchemeSelection(t *testing.T) {
	full := haveOf(mAESKeyGen, mAESGCM, mAESCBCPad, mGenericGen, mSHA256HMAC, mECKeyPairGen, mECDSA, mECDH)
	piv := haveOf(mECKeyPairGen, mECDSA, mECDH)
	ock := haveOf(mAESKeyGen, mAESCBCPad, mGenericGen, mSHA256HMAC)
	for _, tc := range []struct {
		desc    string
		have    map[uint]bool
		want    string
		first   uint8
		wantErr []string // all in the message
	}{
		{"full token", full, "", schemeGCM2, nil},
		{"no GCM", haveOf(mAESKeyGen, mAESCBCPad, mGenericGen, mSHA256HMAC, mECKeyPairGen, mECDSA), "", schemeCBCHMAC, nil},
		{"PIV-like", piv, "", schemeECDH, nil},
		{"forced cbc on a full token", full, SchemeAESCBCHMAC, schemeCBCHMAC, nil},
		{"nothing", haveOf(mECDSA), "", 0, []string{
			"aes-gcm lacks CKM_AES_KEY_GEN, CKM_AES_GCM",
			"aes-cbc-hmac lacks CKM_AES_KEY_GEN, CKM_AES_CBC_PAD, CKM_GENERIC_SECRET_KEY_GEN, CKM_SHA256_HMAC",
			"p256-ecdh lacks CKM_EC_KEY_PAIR_GEN, CKM_ECDH1_DERIVE"}},
		{"forced gcm on PIV", piv, SchemeAESGCM, 0, []string{"lacks CKM_AES_KEY_GEN, CKM_AES_GCM", "schemes it can host: p256-ecdh"}},
		{"forced ecdh on openCryptoki", ock, SchemeP256ECDH, 0, []string{"lacks CKM_EC_KEY_PAIR_GEN, CKM_ECDH1_DERIVE", "schemes it can host: aes-cbc-hmac"}},
		{"unknown scheme", full, "rot13", 0, []string{"unknown protection scheme", "aes-gcm, aes-cbc-hmac, p256-ecdh"}},
	} {
		got, err := candidates("tok", tc.have, tc.want)
		if tc.wantErr != nil {
			if err == nil {
				t.Errorf("%s: chose %v", tc.desc, names(got))
				continue
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%s: %q does not say %q", tc.desc, err, w)
				}
			}
			if tc.want != "rot13" && !errors.Is(err, ErrMechanisms) {
				t.Errorf("%s: err = %v, want ErrMechanisms", tc.desc, err)
			}
			continue
		}
		if err != nil || got[0].id != tc.first {
			t.Errorf("%s: %v, %v; want scheme %d first", tc.desc, names(got), err, tc.first)
		}
	}
	// Provision on the EC-only token, forced to GCM: the same message.
	setupEC.Need(t)
	b := setupEC.backend(t, Options{Scheme: SchemeAESGCM}, nil)
	if _, err := b.Provision(bg, pin); !errors.Is(err, ErrMechanisms) || !strings.Contains(err.Error(), "schemes it can host: p256-ecdh") {
		t.Fatalf("forced aes-gcm on the EC-only token: %v", err)
	}
}

// tokenInfo rewrites C_GetTokenInfo and counts C_Login.
type tokenInfo struct {
	token
	info   func(*p11.TokenInfo)
	logins int
}

func (f *tokenInfo) GetTokenInfo(s uint) (p11.TokenInfo, error) {
	ti, err := f.token.GetTokenInfo(s)
	if err == nil && f.info != nil {
		f.info(&ti)
	}
	return ti, err
}

func (f *tokenInfo) Login(sh p11.SessionHandle, u uint, pin string) error {
	f.logins++
	return f.token.Login(sh, u, pin)
}

func (f *tokenInfo) GetInfo() (p11.Info, error) { return f.token.GetInfo() }

// A PIN outside the token's length range is refused before any login, so
// it cannot spend one of the token's tries (openCryptoki: 4 to 8 bytes,
// three tries, then only the SO can reset the PIN).
func TestPINLengthCheckedBeforeLogin(t *testing.T) {
	forEachSetup(t, func(t *testing.T, su *setup) {
		f := &tokenInfo{}
		b := su.backend(t, Options{}, func(tok token) token { f.token = tok; return f })
		st, err := b.Provision(bg, su.PIN())
		if err != nil {
			t.Fatal(err)
		}
		defer b.Destroy(bg, st)
		f.logins = 0
		long := bytes.Repeat([]byte("x"), 300)
		short := []byte("x")
		for _, p := range [][]byte{long, short} {
			_, err := b.Open(bg, st, p)
			if !errors.Is(err, backend.ErrBadSecret) || !strings.Contains(err.Error(), "no login was attempted") {
				t.Fatalf("%d-byte PIN: err = %v, want ErrBadSecret before login", len(p), err)
			}
			if _, err := b.Provision(bg, p); !errors.Is(err, backend.ErrBadSecret) {
				t.Fatalf("%d-byte PIN at Provision: err = %v", len(p), err)
			}
		}
		if f.logins != 0 {
			t.Fatalf("%d C_Login calls for out-of-range PINs, want 0", f.logins)
		}
	})
}

// A token that reports its PIN locked is not tried; after a wrong PIN the
// error says what the token reports about the tries left.
func TestLockoutExplained(t *testing.T) {
	f := &tokenInfo{}
	b := newTestBackend(t, newToken(t), func(tok token) token { f.token = tok; return f })
	st, err := b.Provision(bg, pin)
	if err != nil {
		t.Fatal(err)
	}
	f.logins = 0
	f.info = func(ti *p11.TokenInfo) { ti.Flags |= p11.CKF_USER_PIN_LOCKED }
	_, err = b.Open(bg, st, pin)
	if !errors.Is(err, backend.ErrLockedOut) || !strings.Contains(err.Error(), "security officer") || f.logins != 0 {
		t.Fatalf("locked PIN: err = %v after %d logins; want ErrLockedOut naming the SO reset, no login", err, f.logins)
	}
	wrong := []byte("correct horse battery stapl3")
	for flag, want := range map[uint]string{
		p11.CKF_USER_PIN_FINAL_TRY: "ONE try left",
		p11.CKF_USER_PIN_COUNT_LOW: "few tries left",
		0:                          "does not report how many tries are left",
	} {
		calls := 0
		f.info = func(ti *p11.TokenInfo) {
			// SoftHSM2 itself reports COUNT_LOW after a wrong PIN.
			ti.Flags &^= p11.CKF_USER_PIN_COUNT_LOW | p11.CKF_USER_PIN_FINAL_TRY
			if calls++; calls > 1 { // after the failed login
				ti.Flags |= flag
			}
		}
		_, err := b.Open(bg, st, wrong)
		if !errors.Is(err, backend.ErrBadSecret) || !isCKR(err, p11.CKR_PIN_INCORRECT) || !strings.Contains(err.Error(), want) {
			t.Fatalf("flag %#x: err = %v, want ErrBadSecret saying %q", flag, err, want)
		}
	}
	f.info = nil
	s, err := b.Open(bg, st, pin)
	if err != nil {
		t.Fatalf("the right PIN afterwards: %v", err)
	}
	s.Close()
}

// moduleInfo rewrites C_GetInfo.
type moduleInfo struct {
	token
	manufacturer string
}

func (f *moduleInfo) GetInfo() (p11.Info, error) {
	i, err := f.token.GetInfo()
	i.ManufacturerID = f.manufacturer
	return i, err
}

// tpm2-pkcs11 is refused, with the TPM backend named as the route: by its
// manufacturer id (a token double on SoftHSM2), and on the real module
// over swtpm, where, with the name check bypassed, no scheme fits either
// (tpm2-pkcs11 1.9 has no CKM_AES_GCM, CKM_GENERIC_SECRET_KEY_GEN or
// CKM_ECDH1_DERIVE).
func TestTPM2PKCS11Refused(t *testing.T) {
	b := newTestBackend(t, newToken(t), func(tok token) token {
		return &moduleInfo{token: tok, manufacturer: "tpm2-software.github.io"}
	})
	_, err := b.Provision(bg, pin)
	if !errors.Is(err, ErrNoPublicObjects) || !strings.Contains(err.Error(), "TPM backend") {
		t.Fatalf("err = %v, want ErrNoPublicObjects naming the TPM backend", err)
	}
	t.Run("tpm2-pkcs11", func(t *testing.T) {
		if tpm2Module == "" {
			testenv.Missing(t, "tpm2-pkcs11 over swtpm", errTPM2)
		}
		m, err := loadModule(tpm2Module)
		if err != nil {
			t.Fatal(err)
		}
		tpmPIN := []byte("enigm-tpm-pin")
		label := pkcs11test.InitToken(t, m.ctx, tpmPIN)
		b, err := newBackend(Options{Module: tpm2Module, TokenLabel: label}, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = b.Provision(bg, tpmPIN)
		if !errors.Is(err, ErrNoPublicObjects) || !strings.Contains(err.Error(), "TPM backend") {
			t.Fatalf("tpm2-pkcs11: err = %v, want ErrNoPublicObjects naming the TPM backend", err)
		}
		b, err = newBackend(Options{Module: tpm2Module, TokenLabel: label}, func(tok token) token { return &moduleInfo{token: tok, manufacturer: "x"} })
		if err != nil {
			t.Fatal(err)
		}
		_, err = b.Provision(bg, tpmPIN)
		if !errors.Is(err, ErrMechanisms) {
			t.Fatalf("tpm2-pkcs11 under another name: err = %v, want ErrMechanisms", err)
		}
		t.Logf("tpm2-pkcs11 under another name: %v", err)
	})
}

// A token that makes every object private, whatever the module's name, is
// refused on every scheme (it could not destroy without the PIN).
func TestPrivateOnlyTokenRefused(t *testing.T) {
	f := &faulty{attrs: func(a []*p11.Attribute) {
		for _, x := range a {
			if x.Type == p11.CKA_PRIVATE && len(x.Value) == 1 {
				x.Value = []byte{1}
			}
		}
	}}
	b := newTestBackend(t, newToken(t), func(tok token) token { f.token = tok; return f })
	_, err := b.Provision(bg, pin)
	if !errors.Is(err, ErrNoPublicObjects) {
		t.Fatalf("err = %v, want ErrNoPublicObjects", err)
	}
	for _, sc := range schemes {
		if !strings.Contains(err.Error(), "scheme "+sc.name) {
			t.Errorf("the error does not say what happened with %s: %v", sc.name, err)
		}
	}
}

// privateOnly is a token that makes every key it generates private, as a
// PIV card does.
type privateOnly struct{ token }

func forcePrivate(a []*p11.Attribute) []*p11.Attribute {
	out := make([]*p11.Attribute, 0, len(a))
	for _, x := range a {
		if x.Type == p11.CKA_PRIVATE {
			x = p11.NewAttribute(p11.CKA_PRIVATE, true)
		}
		out = append(out, x)
	}
	return out
}

func (p privateOnly) GenerateKey(sh p11.SessionHandle, m []*p11.Mechanism, a []*p11.Attribute) (p11.ObjectHandle, error) {
	return p.token.GenerateKey(sh, m, forcePrivate(a))
}

func (p privateOnly) GenerateKeyPair(sh p11.SessionHandle, m []*p11.Mechanism, pub, priv []*p11.Attribute) (p11.ObjectHandle, p11.ObjectHandle, error) {
	return p.token.GenerateKeyPair(sh, m, forcePrivate(pub), forcePrivate(priv))
}

// On a token that keeps every key behind the PIN, Provision refuses unless
// Options.PINOnlyDestroy accepts it; then the backend does not claim the
// destroy gate, Destroy without the PIN leaves the keys (said in the
// docs), and Destroy while unlocked or Purge removes them.
func TestPINOnlyDestroy(t *testing.T) {
	label := newToken(t)
	wrap := func(tok token) token { return privateOnly{tok} }
	strict := newTestBackendOpts(t, Options{TokenLabel: label}, wrap)
	if _, err := strict.Provision(bg, pin); !errors.Is(err, ErrNoPublicObjects) {
		t.Fatalf("without PINOnlyDestroy: err = %v, want ErrNoPublicObjects", err)
	}
	if !strict.Capabilities().Enforces(backend.GateDestroy) {
		t.Fatal("a backend without PINOnlyDestroy does not claim the destroy gate")
	}
	b := newTestBackendOpts(t, Options{TokenLabel: label, PINOnlyDestroy: true}, wrap)
	if b.Capabilities().Enforces(backend.GateDestroy) {
		t.Fatal("PINOnlyDestroy still claims the destroy gate")
	}
	st, s := openNewStore(t, b)
	if ps := mustState(t, st); !ps.PINDestroy || ps.Scheme != schemeGCM2 {
		t.Fatalf("state %+v, want the GCM scheme with the destroy key behind the PIN", ps)
	}
	sealed := sealAll(t, s, "enigm/v1/kek/identity")
	s.Close()
	if err := b.Destroy(bg, st); err != nil {
		t.Fatalf("Destroy without the PIN: %v", err)
	}
	// What the docs say plainly: the keys are still there for the PIN.
	s, err := b.Open(bg, st, pin)
	if err != nil {
		t.Fatalf("after a locked Destroy the store still opens with the PIN (documented): %v", err)
	}
	if _, err := s.Unseal(bg, "enigm/v1/kek/identity", sealed["enigm/v1/kek/identity"]); err != nil {
		t.Fatalf("unseal: %v", err)
	}
	// Unlocked, Destroy removes everything.
	if err := b.Destroy(bg, st); err != nil {
		t.Fatal(err)
	}
	s.Close()
	inspect(t, b, st, func(c *conn) {
		if n := len(storeObjects(t, c)); n != 0 {
			t.Fatalf("%d objects left after Destroy while logged in", n)
		}
	})
	if _, err := b.Open(bg, st, pin); !errors.Is(err, backend.ErrDestroyed) {
		t.Fatalf("Open after Destroy: err = %v, want ErrDestroyed", err)
	}
	backendtest.RunSecret(t, pin, func(t *testing.T) backend.Backend {
		return newTestBackendOpts(t, Options{TokenLabel: label, PINOnlyDestroy: true}, wrap)
	})
}

func TestPINFits(t *testing.T) {
	for _, tc := range []struct {
		lo, hi uint
		n      int
		ok     bool
		msg    string
	}{
		{4, 8, 4, true, ""}, {4, 8, 8, true, ""}, {4, 8, 3, false, "4 to 8 bytes"}, {4, 8, 9, false, "4 to 8 bytes"},
		{4, 0, 300, true, ""}, {4, ^uint(0), 300, true, ""}, {4, ^uint(0), 3, false, "at least 4 bytes"},
		{^uint(0), ^uint(0), 1, true, ""},
	} {
		err := pinFits(p11.TokenInfo{Label: "t", MinPinLen: tc.lo, MaxPinLen: tc.hi}, bytes.Repeat([]byte("p"), tc.n))
		if tc.ok != (err == nil) || (err != nil && (!errors.Is(err, backend.ErrBadSecret) || !strings.Contains(err.Error(), tc.msg))) {
			t.Errorf("range %d..%d, %d bytes: %v", tc.lo, tc.hi, tc.n, err)
		}
	}
}
