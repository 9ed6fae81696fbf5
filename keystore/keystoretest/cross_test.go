package keystoretest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/platform/bridge"
	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/keystore"
	"github.com/enigm/enigm/lifecycle"
	"github.com/enigm/enigm/policy"
	"github.com/enigm/enigm/posture"
)

// store is a keystore over an env's counting backend.
type store struct {
	*keystore.Store
	home string
	e    *env
}

func (e *env) options() keystore.Options {
	return keystore.Options{
		Backend: func(string) (backend.Backend, error) { return e.cb, nil },
		Clock:   e.now,
		Posture: posture.Static(policy.Posture{Level: policy.PostureTrusted}),
	}
}

// initStore creates an unlocked, app-authorized, associated store.
func initStore(t testing.TB, e *env) *store {
	t.Helper()
	home := filepath.Join(t.TempDir(), "home")
	s, err := keystore.Init(bg, home, e.cb, e.secret, keystore.InitOptions{Options: e.options()})
	if err != nil {
		t.Fatalf("%s: Init: %v", e.name, err)
	}
	st := &store{Store: s, home: home, e: e}
	t.Cleanup(func() { st.Close() })
	st.ready(t)
	return st
}

func (s *store) ready(t testing.TB) {
	t.Helper()
	s.SetAppAuthorized(true)
	if err := s.SetAssociation(policy.Associated, []byte("account")); err != nil && !errors.Is(err, keystore.ErrDeviceRevoked) {
		t.Fatal(err)
	}
}

// reopen closes the store and opens it again, locked.
func (s *store) reopen(t testing.TB) {
	t.Helper()
	testkit.NoErr(t, s.Close())
	ks, err := keystore.Open(s.home, s.e.options())
	if err != nil {
		t.Fatal(err)
	}
	s.Store = ks
	s.ready(t)
}

func (s *store) generate(t testing.TB, c keystore.Class, alg keystore.Algorithm) keystore.KeyInfo {
	t.Helper()
	k, err := s.Generate(c, keystore.GenerateOptions{Cause: lifecycle.AccountSetup, Activate: true, Algorithm: alg})
	if err != nil {
		t.Fatalf("Generate %v/%v: %v", c, alg, err)
	}
	return k
}

func (s *store) sign(t testing.TB, id keystore.KeyID) ([]byte, error) {
	t.Helper()
	k, err := s.Identity(id)
	if err != nil {
		t.Fatal(err)
	}
	return k.Sign(appPurpose("cross"), []byte("message"))
}

func deniedWith(err error, code string) bool {
	var d *keystore.DeniedError
	if !errors.As(err, &d) {
		return false
	}
	for _, c := range d.Codes() {
		if c == code {
			return true
		}
	}
	return false
}

// Generation: every class on every backend; the binding key in hardware
// exactly when the backend holds P-256 keys; the protection level recorded
// is the backend's.
func TestGenerateAndUse(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		s := initStore(t, e)
		caps := e.raw.Capabilities()
		if tok := e.token; tok != nil && caps.Holds(backend.AlgP256) != tok.ec {
			t.Fatalf("the backend reports resident P-256 keys = %v, but the %s token offers EC = %v", caps.Holds(backend.AlgP256), tok.setup, tok.ec)
		}
		st, err := s.Status()
		if err != nil {
			t.Fatal(err)
		}
		if st.Protection != caps.Level || st.Locked {
			t.Fatalf("status %+v, backend level %v", st, caps.Level)
		}
		for _, alg := range []keystore.Algorithm{keystore.AlgHybrid, keystore.AlgEd25519} {
			info := s.generate(t, keystore.ClassIdentity, alg)
			sig, err := s.sign(t, info.ID)
			if err != nil {
				t.Fatal(err)
			}
			if err := keystore.Verify(alg, info.Public, appPurpose("cross"), []byte("message"), sig); err != nil {
				t.Fatalf("%v signature: %v", alg, err)
			}
			if info.Resident {
				t.Fatalf("%v key reported resident in hardware", alg)
			}
		}
		kemInfo := s.generate(t, keystore.ClassKEM, 0)
		ct, err := keystore.SealData(kemInfo.Public, []byte("info"), []byte("hello"))
		if err != nil {
			t.Fatal(err)
		}
		kem, _ := s.KEM(kemInfo.ID)
		if pt, err := kem.OpenData([]byte("info"), ct); err != nil || string(pt) != "hello" {
			t.Fatalf("KEM open: %q, %v", pt, err)
		}
		sessInfo := s.generate(t, keystore.ClassSession, 0)
		sk, _ := s.Session(sessInfo.ID)
		box, err := sk.Seal([]byte("call"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if pt, err := sk.Open(box, nil); err != nil || string(pt) != "call" {
			t.Fatalf("session key: %q, %v", pt, err)
		}

		bk, err := s.Binding()
		if !caps.Holds(backend.AlgP256) {
			// Said by capability: without resident P-256 keys there is
			// no binding key (and no attestation of one).
			if !errors.Is(err, keystore.ErrNotFound) {
				t.Fatalf("binding key on a backend that reports no resident P-256 keys: %v", err)
			}
			t.Logf("%s reports no resident P-256 keys: no binding key, as required", e.name)
			return
		}
		if err != nil {
			t.Fatalf("no binding key although the backend reports resident P-256 keys: %v", err)
		}
		info, _ := s.Info(bk.ID())
		if !info.Resident || info.Algorithm != keystore.AlgP256 {
			t.Fatalf("binding key info %+v", info)
		}
		d := sha256.Sum256([]byte("bind"))
		sig, err := bk.Sign(appPurpose("bind"), d[:])
		if err != nil {
			t.Fatal(err)
		}
		pub, _ := bk.Public()
		if keystore.VerifyBinding(pub, appPurpose("bind"), d[:], sig) != nil || ecdsa.VerifyASN1(pub, d[:], sig) {
			t.Fatal("binding signature does not verify")
		}
	})
}

// Wrap/unwrap integrity: a changed byte in a stored record makes that key
// fail with an error naming it; the other keys keep working.
func TestRecordIntegrity(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		s := initStore(t, e)
		bad := s.generate(t, keystore.ClassIdentity, keystore.AlgEd25519)
		good := s.generate(t, keystore.ClassIdentity, keystore.AlgHybrid)
		testkit.NoErr(t, s.Close())
		db, err := bolt.Open(filepath.Join(s.home, keystore.DBFile), 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte("keys"))
			rec := bytes.Clone(b.Get(bad.ID[:]))
			rec[len(rec)-1] ^= 0x01 // the GCM tag
			return b.Put(bad.ID[:], rec)
		})
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
		s.reopen(t)
		testkit.NoErr(t, s.Unlock(bg, s.e.secret))
		_, err = s.sign(t, bad.ID)
		if !errors.Is(err, keystore.ErrCorrupt) || !bytes.Contains([]byte(err.Error()), []byte(bad.ID.String())) {
			t.Fatalf("tampered record: err = %v, want ErrCorrupt naming %s", err, bad.ID)
		}
		if _, err := s.sign(t, good.ID); err != nil {
			t.Fatalf("untouched key: %v", err)
		}
	})
}

// Lock and unlock: locked means denied; a wrong secret unlocks nothing and
// loses nothing.
func TestLockUnlock(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		s := initStore(t, e)
		id := s.generate(t, keystore.ClassIdentity, keystore.AlgEd25519)
		testkit.NoErr(t, s.Lock())
		if _, err := s.sign(t, id.ID); !deniedWith(err, "locked") {
			t.Fatalf("locked: err = %v", err)
		}
		if err := s.Unlock(bg, s.e.wrong); !errors.Is(err, keystore.ErrBadPassphrase) {
			t.Fatalf("wrong secret: err = %v", err)
		}
		if _, err := s.sign(t, id.ID); !deniedWith(err, "locked") {
			t.Fatalf("after a wrong secret: err = %v", err)
		}
		s.reopen(t)
		testkit.NoErr(t, s.Unlock(bg, s.e.secret))
		if _, err := s.sign(t, id.ID); err != nil {
			t.Fatal(err)
		}
	})
}

// gateChecks prove, for each gate a backend reports, that the hardware
// enforces it: the keystore's Go-side policy is bypassed by going to the
// backend (or its session) directly.
var gateChecks = map[backend.Gate]func(t *testing.T, s *store){
	backend.GateUnlockSecret: func(t *testing.T, s *store) {
		sess, err := s.e.raw.Open(bg, s.e.cb.state(t), s.e.wrong)
		if err == nil {
			k := make([]byte, 32)
			sealed, serr := s.e.cb.session(t).Seal(bg, "enigm/test/gate", k)
			if serr != nil {
				t.Fatal(serr)
			}
			_, err = sess.Unseal(bg, "enigm/test/gate", sealed)
			sess.Close()
		}
		if !errors.Is(err, backend.ErrBadSecret) && !errors.Is(err, backend.ErrLockedOut) {
			t.Fatalf("backend opened with a wrong secret: err = %v", err)
		}
	},
	backend.GateNonExportable: func(t *testing.T, s *store) {
		checked := false
		// On a token, every key the store made, whatever the scheme.
		if tok := s.e.token; tok != nil {
			if n := tok.keys(t); n == 0 {
				t.Fatalf("no secret or private key on the %s token: the store's keys are not on it", tok.setup)
			}
			checked = true
		}
		// The binding key, where the backend reports resident P-256 keys.
		if !s.e.raw.Capabilities().Holds(backend.AlgP256) {
			t.Logf("%s reports no resident P-256 keys: no binding key to check", s.e.name)
		} else {
			bk, ok := s.e.cb.session(t).(backend.BindingKeys)
			if !ok {
				t.Fatal("the backend reports resident P-256 keys but its session has no binding keys")
			}
			k, err := bk.LoadBindingKey(bg, s.e.cb.binding(t))
			if err != nil {
				t.Fatal(err)
			}
			if _, soft := k.(*ecdsa.PrivateKey); soft {
				t.Fatal("the binding key is an in-memory private key")
			}
			if s.e.dev != nil && s.e.dev.KeyCount() < 2 {
				t.Fatalf("the simulated hardware holds %d keys; the binding key is not in it", s.e.dev.KeyCount())
			}
			checked = true
		}
		if !checked {
			t.Fatal("non-exportability is reported but nothing here can check it: no token to inspect and no resident P-256 key")
		}
	},
	backend.GateDestroy: func(t *testing.T, s *store) {
		// Destroy needs no secret; afterwards neither the state nor a
		// sealed blob opens, even through a session opened before.
		sess := s.e.cb.session(t)
		sealed, err := sess.Seal(bg, "enigm/test/gate", make([]byte, 32))
		if err != nil {
			t.Fatal(err)
		}
		testkit.NoErr(t, s.e.raw.Destroy(bg, s.e.cb.state(t)))
		if _, err := sess.Unseal(bg, "enigm/test/gate", sealed); err == nil {
			t.Fatal("the open session unsealed after Destroy")
		}
		again, err := s.e.raw.Open(bg, s.e.cb.state(t), s.e.secret)
		if err == nil {
			_, err = again.Unseal(bg, "enigm/test/gate", sealed)
			again.Close()
		}
		if err == nil {
			t.Fatal("the state opened and unsealed after Destroy")
		}
	},
	backend.GateDeviceUnlocked: func(t *testing.T, s *store) {
		id := s.generate(t, keystore.ClassIdentity, keystore.AlgEd25519)
		sess := s.e.cb.session(t)
		sealed, err := sess.Seal(bg, "enigm/test/gate", make([]byte, 32))
		if err != nil {
			t.Fatal(err)
		}
		s.e.dev.Lock() // the app does not tell the keystore
		// The session the unlocked keystore holds refuses.
		if _, err := sess.Unseal(bg, "enigm/test/gate", sealed); testkit.GateOf(err) != backend.GateDeviceUnlocked {
			t.Fatalf("Unseal through the open session while the device is locked: err = %v", err)
		}
		if _, err := s.e.raw.Open(bg, s.e.cb.state(t), s.e.secret); testkit.GateOf(err) != backend.GateDeviceUnlocked {
			t.Fatalf("Open while the device is locked: err = %v", err)
		}
		// The hardware refuses the binding key, and the keystore follows.
		bk, err := s.Binding()
		if err != nil {
			t.Fatal(err)
		}
		d := sha256.Sum256([]byte("x"))
		if _, err = bk.Sign(appPurpose("bind"), d[:]); testkit.GateOf(err) != backend.GateDeviceUnlocked {
			t.Fatalf("binding key while the device is locked: err = %v", err)
		}
		if _, err := s.sign(t, id.ID); !deniedWith(err, "locked") {
			t.Fatalf("wrapped key after the hardware refused: err = %v", err)
		}
		if err := s.Unlock(bg, s.e.secret); testkit.GateOf(err) != backend.GateDeviceUnlocked {
			t.Fatalf("Unlock while the device is locked: err = %v", err)
		}
		s.e.dev.Unlock()
		testkit.NoErr(t, s.Unlock(bg, s.e.secret))
		if _, err := s.sign(t, id.ID); err != nil {
			t.Fatal(err)
		}
	},
	backend.GateUserPresence: func(t *testing.T, s *store) {
		s.e.dev.Advance(authWindow + 1)
		if _, err := s.e.raw.Open(bg, s.e.cb.state(t), s.e.secret); testkit.GateOf(err) != backend.GateUserPresence {
			t.Fatalf("Open after the authentication window: err = %v", err)
		}
		s.Lock()
		if err := s.Unlock(bg, s.e.secret); testkit.GateOf(err) != backend.GateUserPresence {
			t.Fatalf("Unlock after the authentication window: err = %v", err)
		}
		s.e.dev.Authenticate(bridge.AuthBiometric)
		testkit.NoErr(t, s.Unlock(bg, s.e.secret))
	},
}

// Every gate a backend reports as enforced in hardware is enforced, with
// the Go-side policy out of the way.
func TestHardwareGatesEnforced(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		gates := e.raw.Capabilities().HardwareGates
		if e.raw.Capabilities().Level != backend.LevelSoftware && len(gates) == 0 {
			t.Fatal("a hardware backend reports no gates")
		}
		for _, g := range gates {
			check, ok := gateChecks[g]
			if !ok {
				t.Errorf("gate %s is reported but no test checks it", g)
				continue
			}
			t.Run(string(g), func(t *testing.T) { check(t, initStore(t, e)) })
		}
	})
}

func copyHome(t *testing.T, from string) string {
	t.Helper()
	to := filepath.Join(t.TempDir(), "copy")
	testkit.NoErr(t, os.Mkdir(to, 0o700))
	for _, name := range []string{keystore.DBFile, keystore.AuditFile} {
		src, err := os.Open(filepath.Join(from, name))
		if err != nil {
			t.Fatal(err)
		}
		dst, err := os.OpenFile(filepath.Join(to, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.Copy(dst, src)
		src.Close()
		if cerr := dst.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return to
}

// Destruction on revocation: after RevokeDevice, a copy of the store made
// before opens nothing on backends that report the destroy gate; on the
// software backend (no such gate) the copy still opens with the
// passphrase, as its design note says.
func TestRevocationDestroys(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		s := initStore(t, e)
		id := s.generate(t, keystore.ClassIdentity, keystore.AlgHybrid)
		if _, err := s.sign(t, id.ID); err != nil {
			t.Fatal(err)
		}
		s.Close()
		backup := copyHome(t, s.home)
		s.reopen(t)
		testkit.NoErr(t, s.RevokeDevice(bg, "test"))
		if _, err := s.sign(t, id.ID); !deniedWith(err, "revoked") {
			t.Fatalf("after revocation: %v", err)
		}
		if err := s.Unlock(bg, s.e.secret); !errors.Is(err, keystore.ErrDeviceRevoked) {
			t.Fatalf("unlock after revocation: %v", err)
		}
		if e.dev != nil && e.dev.KeyCount() != 0 {
			t.Fatalf("%d hardware keys survive revocation", e.dev.KeyCount())
		}
		old, err := keystore.Open(backup, e.options())
		if err != nil {
			t.Fatal(err)
		}
		defer old.Close()
		err = old.Unlock(bg, e.secret)
		if e.raw.Capabilities().Enforces(backend.GateDestroy) {
			if err == nil {
				t.Fatal("a copy of the store made before revocation unlocks")
			}
			return
		}
		if err != nil {
			t.Fatalf("software backend: the copy does not open (%v); the docs say it does", err)
		}
		// And it signs, offline, with the revoked device's identity key
		// (docs/design/keystore.md: only the chain refuses it).
		cp := &store{Store: old, home: backup, e: e}
		cp.ready(t)
		if sig, err := cp.sign(t, id.ID); err != nil || len(sig) == 0 {
			t.Fatalf("software backend: the copy does not sign (%v); the docs say it does", err)
		}
	})
}

// After unlock, signing and decrypting with wrapped keys make no backend
// call, on every backend (counted at the backend interface, and at the
// bridge for the simulated phones).
func TestNoBackendCallsPerSignature(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		s := initStore(t, e)
		hyb := s.generate(t, keystore.ClassIdentity, keystore.AlgHybrid)
		ed := s.generate(t, keystore.ClassIdentity, keystore.AlgEd25519)
		kemInfo := s.generate(t, keystore.ClassKEM, 0)
		s.reopen(t)
		testkit.NoErr(t, s.Unlock(bg, s.e.secret))
		kh, _ := s.Identity(hyb.ID)
		ke, _ := s.Identity(ed.ID)
		kem, _ := s.KEM(kemInfo.ID)
		ct, _ := keystore.SealData(kemInfo.Public, nil, []byte("m"))
		use := func() {
			if _, err := kh.Sign(appPurpose("p"), []byte("m")); err != nil {
				t.Fatal(err)
			}
			if _, err := ke.Sign(appPurpose("p"), []byte("m")); err != nil {
				t.Fatal(err)
			}
			if _, err := kem.OpenData(nil, ct); err != nil {
				t.Fatal(err)
			}
		}
		use() // first use unwraps the records
		before := e.cb.calls.Load()
		var devBefore int64
		if e.dev != nil {
			devBefore = e.dev.Calls()
		}
		if before == 0 {
			t.Fatal("the counter saw no call at all: it is not wired")
		}
		for i := 0; i < 20; i++ {
			use()
		}
		if n := e.cb.calls.Load() - before; n != 0 {
			t.Fatalf("%d backend calls for 40 signatures and 20 decryptions, want 0", n)
		}
		if e.dev != nil {
			if n := e.dev.Calls() - devBefore; n != 0 {
				t.Fatalf("%d bridge calls for 40 signatures and 20 decryptions, want 0", n)
			}
		}
	})
}

// hideP256 reports a backend's capabilities without resident P-256 keys.
type hideP256 struct{ backend.Backend }

func (h hideP256) Capabilities() backend.Capabilities {
	c := h.Backend.Capabilities()
	var keep []string
	for _, a := range c.Resident {
		if a != backend.AlgP256 {
			keep = append(keep, a)
		}
	}
	c.Resident = keep
	return c
}

// Placement follows Capabilities alone: the same hardware, reporting
// resident P-256 keys or not, gets a hardware binding key or none.
func TestPlacementFollowsCapabilities(t *testing.T) {
	for _, m := range makers() {
		t.Run(m.name, func(t *testing.T) {
			e := m.new(t)
			if !e.raw.Capabilities().Holds(backend.AlgP256) {
				// No capability, no binding key: the software backend,
				// and PKCS#11 on a token without EC (openCryptoki's).
				// There is no reported capability to hide.
				s := initStore(t, e)
				if _, err := s.Binding(); !errors.Is(err, keystore.ErrNotFound) {
					t.Fatalf("binding key on a backend without P-256 keys: %v", err)
				}
				t.Logf("%s reports no resident P-256 keys: only the no-binding-key half applies", e.name)
				return
			}
			hidden := hideP256{e.raw}
			home := filepath.Join(t.TempDir(), "home")
			opts := e.options()
			opts.Backend = func(string) (backend.Backend, error) { return hidden, nil }
			var keysBefore int
			if e.dev != nil {
				keysBefore = e.dev.KeyCount()
			}
			s, err := keystore.Init(bg, home, hidden, e.secret, keystore.InitOptions{Options: opts})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, err := s.Binding(); !errors.Is(err, keystore.ErrNotFound) {
				t.Fatalf("a binding key was created although the capabilities list no P-256: %v", err)
			}
			if _, err := s.Generate(keystore.ClassBinding, keystore.GenerateOptions{Cause: lifecycle.AccountSetup}); !errors.Is(err, keystore.ErrUnsupported) {
				t.Fatalf("explicit binding key without the capability: %v", err)
			}
			if e.dev != nil && e.dev.KeyCount() != keysBefore+1 {
				t.Fatalf("hardware keys %d → %d; want only the store key", keysBefore, e.dev.KeyCount())
			}
			// Same hardware, capability reported: the key is in hardware.
			full := initStore(t, e)
			bk, err := full.Binding()
			if err != nil {
				t.Fatal(err)
			}
			if info, _ := full.Info(bk.ID()); !info.Resident {
				t.Fatal("binding key not resident")
			}
			d := sha256.Sum256([]byte("x"))
			if _, err := bk.Sign(appPurpose("bind"), d[:]); err != nil {
				t.Fatal(err)
			}
		})
	}
}
