//go:build cgo

package pkcs11

import (
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"

	p11 "github.com/miekg/pkcs11"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/keystore"
	"github.com/enigm/enigm/lifecycle"
	"github.com/enigm/enigm/policy"
	"github.com/enigm/enigm/posture"
)

// counting forwards every call to the token and counts it.
type counting struct {
	token
	n atomic.Int64
}

func (c *counting) GetSlotList(p bool) ([]uint, error) { c.n.Add(1); return c.token.GetSlotList(p) }
func (c *counting) GetTokenInfo(s uint) (p11.TokenInfo, error) {
	c.n.Add(1)
	return c.token.GetTokenInfo(s)
}
func (c *counting) GetMechanismList(s uint) ([]*p11.Mechanism, error) {
	c.n.Add(1)
	return c.token.GetMechanismList(s)
}
func (c *counting) OpenSession(s, f uint) (p11.SessionHandle, error) {
	c.n.Add(1)
	return c.token.OpenSession(s, f)
}
func (c *counting) CloseSession(sh p11.SessionHandle) error {
	c.n.Add(1)
	return c.token.CloseSession(sh)
}
func (c *counting) GetSessionInfo(sh p11.SessionHandle) (p11.SessionInfo, error) {
	c.n.Add(1)
	return c.token.GetSessionInfo(sh)
}
func (c *counting) Login(sh p11.SessionHandle, u uint, pin string) error {
	c.n.Add(1)
	return c.token.Login(sh, u, pin)
}
func (c *counting) Logout(sh p11.SessionHandle) error { c.n.Add(1); return c.token.Logout(sh) }
func (c *counting) FindObjectsInit(sh p11.SessionHandle, a []*p11.Attribute) error {
	c.n.Add(1)
	return c.token.FindObjectsInit(sh, a)
}
func (c *counting) FindObjects(sh p11.SessionHandle, max int) ([]p11.ObjectHandle, bool, error) {
	c.n.Add(1)
	return c.token.FindObjects(sh, max)
}
func (c *counting) FindObjectsFinal(sh p11.SessionHandle) error {
	c.n.Add(1)
	return c.token.FindObjectsFinal(sh)
}
func (c *counting) GenerateKey(sh p11.SessionHandle, m []*p11.Mechanism, a []*p11.Attribute) (p11.ObjectHandle, error) {
	c.n.Add(1)
	return c.token.GenerateKey(sh, m, a)
}
func (c *counting) GenerateKeyPair(sh p11.SessionHandle, m []*p11.Mechanism, pub, priv []*p11.Attribute) (p11.ObjectHandle, p11.ObjectHandle, error) {
	c.n.Add(1)
	return c.token.GenerateKeyPair(sh, m, pub, priv)
}
func (c *counting) GetAttributeValue(sh p11.SessionHandle, o p11.ObjectHandle, a []*p11.Attribute) ([]*p11.Attribute, error) {
	c.n.Add(1)
	return c.token.GetAttributeValue(sh, o, a)
}
func (c *counting) DestroyObject(sh p11.SessionHandle, o p11.ObjectHandle) error {
	c.n.Add(1)
	return c.token.DestroyObject(sh, o)
}
func (c *counting) EncryptInit(sh p11.SessionHandle, m []*p11.Mechanism, o p11.ObjectHandle) error {
	c.n.Add(1)
	return c.token.EncryptInit(sh, m, o)
}
func (c *counting) Encrypt(sh p11.SessionHandle, m []byte) ([]byte, error) {
	c.n.Add(1)
	return c.token.Encrypt(sh, m)
}
func (c *counting) DecryptInit(sh p11.SessionHandle, m []*p11.Mechanism, o p11.ObjectHandle) error {
	c.n.Add(1)
	return c.token.DecryptInit(sh, m, o)
}
func (c *counting) Decrypt(sh p11.SessionHandle, m []byte) ([]byte, error) {
	c.n.Add(1)
	return c.token.Decrypt(sh, m)
}
func (c *counting) SignInit(sh p11.SessionHandle, m []*p11.Mechanism, o p11.ObjectHandle) error {
	c.n.Add(1)
	return c.token.SignInit(sh, m, o)
}
func (c *counting) Sign(sh p11.SessionHandle, m []byte) ([]byte, error) {
	c.n.Add(1)
	return c.token.Sign(sh, m)
}
func (c *counting) DeriveKey(sh p11.SessionHandle, m []*p11.Mechanism, k p11.ObjectHandle, a []*p11.Attribute) (p11.ObjectHandle, error) {
	c.n.Add(1)
	return c.token.DeriveKey(sh, m, k, a)
}
func (c *counting) GetInfo() (p11.Info, error) { c.n.Add(1); return c.token.GetInfo() }

// After unlock, the keystore signs with its wrapped keys and opens
// messages with its KEM key without a single token call, on every scheme
// and token: the wrapping keys were unsealed once, at unlock.
func TestNoTokenCallsAfterUnlock(t *testing.T) {
	forEachSetup(t, func(t *testing.T, su *setup) {
		cnt := &counting{}
		b := su.backend(t, Options{}, func(tok token) token { cnt.token = tok; return cnt })
		opts := keystore.Options{
			Backend: func(string) (backend.Backend, error) { return b, nil },
			Posture: posture.Static(policy.Posture{Level: policy.PostureTrusted}),
		}
		home := filepath.Join(t.TempDir(), "home")
		s, err := keystore.Init(bg, home, b, su.PIN(), keystore.InitOptions{Options: opts})
		if err != nil {
			t.Fatalf("keystore.Init on %s: %v", su.Name, err)
		}
		ready := func(s *keystore.Store) {
			s.SetAppAuthorized(true)
			if err := s.SetAssociation(policy.Associated, []byte("account")); err != nil && !errors.Is(err, keystore.ErrDeviceRevoked) {
				t.Fatal(err)
			}
		}
		ready(s)
		gen := func(c keystore.Class, alg keystore.Algorithm) keystore.KeyInfo {
			k, err := s.Generate(c, keystore.GenerateOptions{Cause: lifecycle.AccountSetup, Activate: true, Algorithm: alg})
			if err != nil {
				t.Fatal(err)
			}
			return k
		}
		hyb, ed, kemInfo := gen(keystore.ClassIdentity, keystore.AlgHybrid), gen(keystore.ClassIdentity, keystore.AlgEd25519), gen(keystore.ClassKEM, 0)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s, err = keystore.Open(home, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ready(s)
		unlockFrom := cnt.n.Load()
		if err := s.Unlock(bg, su.PIN()); err != nil {
			t.Fatal(err)
		}
		purpose, err := keystore.AppPurpose("p")
		if err != nil {
			t.Fatal(err)
		}
		kh, _ := s.Identity(hyb.ID)
		ke, _ := s.Identity(ed.ID)
		kem, _ := s.KEM(kemInfo.ID)
		ct, err := keystore.SealData(kemInfo.Public, nil, []byte("m"))
		if err != nil {
			t.Fatal(err)
		}
		use := func() {
			if _, err := kh.Sign(purpose, []byte("m")); err != nil {
				t.Fatal(err)
			}
			if _, err := ke.Sign(purpose, []byte("m")); err != nil {
				t.Fatal(err)
			}
			if _, err := kem.OpenData(nil, ct); err != nil {
				t.Fatal(err)
			}
		}
		use() // the first use unwraps the records
		before := cnt.n.Load()
		if before == unlockFrom {
			t.Fatal("the counter saw no token call at unlock: it is not wired")
		}
		for range 20 {
			use()
		}
		if n := cnt.n.Load() - before; n != 0 {
			t.Fatalf("%d token calls for 40 signatures and 20 decryptions after unlock (scheme %s), want 0", n, schemeByID(su.scheme).name)
		}
		t.Logf("%s: %d token calls at unlock and first use, 0 for 40 signatures and 20 decryptions", schemeByID(su.scheme).name, before-unlockFrom)
	})
}

// publicObjects counts the token objects visible without login on the
// token with this label.
func publicObjects(t *testing.T, b *Backend, label string) int {
	t.Helper()
	ts, err := b.tokensPresent()
	if err != nil {
		t.Fatal(err)
	}
	for _, ti := range ts {
		if ti.label != label {
			continue
		}
		c, err := b.dialSlot(ti.slot, &state{Serial: ti.serial, Label: ti.label})
		if err != nil {
			t.Fatal(err)
		}
		defer c.close()
		hs, err := c.find([]*p11.Attribute{p11.NewAttribute(p11.CKA_TOKEN, true), p11.NewAttribute(p11.CKA_PRIVATE, false)})
		if err != nil {
			t.Fatal(err)
		}
		return len(hs)
	}
	t.Fatalf("no token %q", label)
	return 0
}

// A keystore revoked while locked destroys its token protection through
// the backend on every setup: the store's public destroy key (a key pair
// under p256-ecdh) is gone from the token, and the store does not unlock.
func TestKeystoreRevokeLockedSetups(t *testing.T) {
	forEachSetup(t, func(t *testing.T, su *setup) {
		label := su.Token(t)
		b := su.backend(t, Options{TokenLabel: label}, nil)
		opts := keystore.Options{
			Backend: func(string) (backend.Backend, error) { return b, nil },
			Posture: posture.Static(policy.Posture{Level: policy.PostureTrusted}),
		}
		before := publicObjects(t, b, label)
		s, err := keystore.Init(bg, filepath.Join(t.TempDir(), "home"), b, su.PIN(), keystore.InitOptions{Options: opts})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		destroyObjects := 1
		if su.scheme == schemeECDH {
			destroyObjects = 2
		}
		if n := publicObjects(t, b, label) - before; n != destroyObjects {
			t.Fatalf("the store added %d public objects, want %d (its destroy key)", n, destroyObjects)
		}
		if err := s.Lock(); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeDevice(bg, "test"); err != nil {
			t.Fatalf("RevokeDevice while locked: %v", err)
		}
		if n := publicObjects(t, b, label); n != before {
			t.Fatalf("%d public objects after revocation, want %d: the destroy key survived", n, before)
		}
		if err := s.Unlock(bg, su.PIN()); err == nil {
			t.Fatal("a revoked store unlocked")
		}
	})
}
