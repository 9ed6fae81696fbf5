package keystore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/enigm/enigm/hybrid"
	"github.com/enigm/enigm/internal/redact"
	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/keystore/internal/audit"
	"github.com/enigm/enigm/lifecycle"
	"github.com/enigm/enigm/policy"
)

func TestSignVerifyAcrossReopen(t *testing.T) {
	f := newFixture(t)
	info := f.gen(ClassIdentity, true)
	if info.Algorithm != AlgHybrid || info.State != lifecycle.Active || len(info.Public) != hybrid.PublicKeySize {
		t.Fatalf("info = %+v", info)
	}
	k, err := f.s.Identity(info.ID)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := k.Sign(appPurpose("test"), []byte("msg"))
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(AlgHybrid, info.Public, appPurpose("test"), []byte("msg"), sig); err != nil {
		t.Fatalf("signature does not verify: %v", err)
	}
	if Verify(AlgHybrid, info.Public, appPurpose("other"), []byte("msg"), sig) == nil {
		t.Fatal("signature verifies under another purpose")
	}
	f.reopen()
	k, _ = f.s.Identity(info.ID)
	sig2, err := k.Sign(appPurpose("test"), []byte("msg2"))
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(AlgHybrid, info.Public, appPurpose("test"), []byte("msg2"), sig2); err != nil {
		t.Fatalf("after reopen: %v", err)
	}
}

func TestEd25519Identity(t *testing.T) {
	f := newFixture(t)
	info := f.genWith(ClassIdentity, GenerateOptions{Cause: lifecycle.AccountSetup, Activate: true, Algorithm: AlgEd25519})
	k, _ := f.s.Identity(info.ID)
	sig, err := k.Sign(appPurpose("x"), []byte("m"))
	if err != nil || len(sig) != 64 {
		t.Fatalf("sig %d bytes, %v", len(sig), err)
	}
	testkit.NoErr(t, Verify(AlgEd25519, info.Public, appPurpose("x"), []byte("m"), sig))
	if _, err := f.s.Generate(ClassKEM, GenerateOptions{Cause: lifecycle.AccountSetup, Algorithm: AlgEd25519}); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("KEM key with Ed25519: %v", err)
	}
}

// signP is the error of a use of k: signing nothing for app purpose "p".
func signP(k *IdentityKey) error {
	_, err := k.Sign(appPurpose("p"), nil)
	return err
}

func deniedCodes(t *testing.T, err error) []string {
	t.Helper()
	var d *DeniedError
	if !errors.As(err, &d) {
		t.Fatalf("err = %v, want a DeniedError", err)
	}
	if !errors.Is(err, ErrDenied) {
		t.Fatal("DeniedError does not match ErrDenied")
	}
	return d.Codes()
}

func TestPolicyGatesEveryUse(t *testing.T) {
	f := newFixture(t)
	id := f.gen(ClassIdentity, true)
	kemInfo := f.gen(ClassKEM, true)
	k, _ := f.s.Identity(id.ID)
	kem, _ := f.s.KEM(kemInfo.ID)
	sign := func() error { _, err := k.Sign(appPurpose("p"), []byte("m")); return err }

	if err := sign(); err != nil {
		t.Fatalf("baseline: %v", err)
	}
	// Authentication goes stale after 5 minutes.
	f.clock.Add(6 * time.Minute)
	if got := deniedCodes(t, sign()); !reflect.DeepEqual(got, []string{"auth_stale"}) {
		t.Fatalf("stale auth: %v", got)
	}
	f.s.Authenticate("passphrase")
	// App authorization.
	f.s.SetAppAuthorized(false)
	if got := deniedCodes(t, sign()); !reflect.DeepEqual(got, []string{"app_not_authorized"}) {
		t.Fatalf("app: %v", got)
	}
	f.s.SetAppAuthorized(true)
	// Posture.
	f.pos.set(policy.PostureCompromised)
	f.s.RefreshPosture()
	if got := deniedCodes(t, sign()); !reflect.DeepEqual(got, []string{"posture_insufficient"}) {
		t.Fatalf("posture: %v", got)
	}
	f.pos.set(policy.PostureTrusted)
	f.s.RefreshPosture()
	// KEM keys need the device to be associated.
	ct, _ := SealData(kemInfo.Public, []byte("info"), []byte("secret"))
	if _, err := kem.OpenData([]byte("info"), ct); !reflect.DeepEqual(deniedCodes(t, err), []string{"not_associated"}) {
		t.Fatalf("kem: %v", err)
	}
	testkit.NoErr(t, f.s.SetAssociation(policy.Associated, []byte("acct")))
	if pt, err := kem.OpenData([]byte("info"), ct); err != nil || string(pt) != "secret" {
		t.Fatalf("kem open: %q %v", pt, err)
	}
	// Locked: every reason that fails is reported.
	testkit.NoErr(t, f.s.Lock())
	f.clock.Add(10 * time.Minute)
	if got := deniedCodes(t, sign()); !reflect.DeepEqual(got, []string{"locked", "auth_stale"}) {
		t.Fatalf("locked: %v", got)
	}
	if _, err := kem.OpenData([]byte("info"), ct); !reflect.DeepEqual(deniedCodes(t, err), []string{"locked"}) {
		t.Fatalf("kem locked: %v", err)
	}
	testkit.NoErr(t, f.s.Unlock(context.Background(), testPass))
	if err := sign(); err != nil {
		t.Fatalf("after unlock: %v", err)
	}
}

func TestOrganisationOverlayTightens(t *testing.T) {
	f := newFixture(t)
	id := f.gen(ClassIdentity, true)
	k, _ := f.s.Identity(id.ID)
	testkit.NoErr(t, f.s.SetPolicyOverlay(ClassIdentity, policy.Requirements{MinPosture: policy.PostureTrusted, AuthWithin: time.Minute}))
	f.clock.Add(2 * time.Minute)
	if got := deniedCodes(t, signP(k)); !reflect.DeepEqual(got, []string{"auth_stale", "posture_insufficient"}) {
		t.Fatalf("overlay: %v", got)
	}
	// The overlay survives a reopen.
	f.reopen()
	k, _ = f.s.Identity(id.ID)
	if got := deniedCodes(t, signP(k)); !reflect.DeepEqual(got, []string{"posture_insufficient"}) {
		t.Fatalf("overlay after reopen: %v", got)
	}
}

func TestLifecycleGatesUse(t *testing.T) {
	f := newFixture(t)
	testkit.NoErr(t, f.s.SetAssociation(policy.Associated, nil))
	created := f.gen(ClassIdentity, false)
	k, _ := f.s.Identity(created.ID)
	if got := deniedCodes(t, signP(k)); !reflect.DeepEqual(got, []string{"key_state"}) {
		t.Fatalf("created key signs: %v", got)
	}
	if _, err := k.ProvePossession(appPurpose("enrollment"), []byte("req")); err != nil {
		t.Fatalf("created key cannot prove possession: %v", err)
	}
	testkit.NoErr(t, f.s.Activate(created.ID, lifecycle.DeviceEnrollment))
	if err := signP(k); err != nil {
		t.Fatalf("activated: %v", err)
	}
	if err := f.s.Activate(created.ID, lifecycle.DeviceEnrollment); !errors.Is(err, lifecycle.ErrTransition) {
		t.Fatalf("activating twice: %v", err)
	}

	// KEM rotation: the old key decrypts during its grace period only.
	old := f.gen(ClassKEM, true)
	ct, _ := SealData(old.Public, nil, []byte("before rotation"))
	next, err := f.s.Rotate(old.ID, RotateOptions{Grace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if next.Predecessor == nil || *next.Predecessor != old.ID {
		t.Fatalf("new key does not name its predecessor: %+v", next)
	}
	oi, _ := f.s.Info(old.ID)
	if oi.State != lifecycle.Superseded || oi.Successor == nil || *oi.Successor != next.ID {
		t.Fatalf("old key after rotation: %+v", oi)
	}
	ok, _ := f.s.KEM(old.ID)
	if pt, err := ok.OpenData(nil, ct); err != nil || string(pt) != "before rotation" {
		t.Fatalf("superseded key within grace: %v", err)
	}
	f.clock.Add(2 * time.Hour)
	if got := deniedCodes(t, func() error { _, err := ok.OpenData(nil, ct); return err }()); !reflect.DeepEqual(got, []string{"key_state"}) {
		t.Fatalf("after grace: %v", got)
	}
	testkit.NoErr(t, f.s.Maintain())
	if oi, _ := f.s.Info(old.ID); oi.State != lifecycle.Retired {
		t.Fatalf("Maintain did not retire: %v", oi.State)
	}
	// Rotating a non-active key is refused.
	if _, err := f.s.Rotate(old.ID, RotateOptions{}); !errors.Is(err, ErrDenied) {
		t.Fatalf("rotating a retired key: %v", err)
	}
}

func TestRevokeKeyWhileLocked(t *testing.T) {
	f := newFixture(t)
	id := f.gen(ClassIdentity, true)
	f.s.Lock()
	testkit.NoErr(t, f.s.RevokeKey(id.ID))
	f.s.Unlock(context.Background(), testPass)
	k, _ := f.s.Identity(id.ID)
	if got := deniedCodes(t, signP(k)); !reflect.DeepEqual(got, []string{"key_state"}) {
		t.Fatalf("revoked key: %v", got)
	}
	if err := f.s.RevokeKey(id.ID); !errors.Is(err, lifecycle.ErrTransition) {
		t.Fatalf("revoking twice: %v", err)
	}
	raw := rawRecord(t, f, id.ID)
	if len(raw) > 0 && bytes.Contains(raw, []byte{0x03, 0x58, 0x50}) {
		t.Fatal("revoked record still carries 80 sealed bytes")
	}
}

func TestSessionKeys(t *testing.T) {
	f := newFixture(t)
	sinfo := f.genWith(ClassSession, GenerateOptions{Cause: lifecycle.CallSetup, Activate: true, TTL: time.Minute})
	if sinfo.Persistent {
		t.Fatal("session key persisted by default")
	}
	sk, _ := f.s.Session(sinfo.ID)
	ct, err := sk.Seal([]byte("hello"), []byte("ad"))
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := sk.Open(ct, []byte("ad")); err != nil || string(pt) != "hello" {
		t.Fatalf("open: %v", err)
	}
	// Never on disk.
	f.s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketKeys).Get(sinfo.ID[:]) != nil {
			t.Fatal("memory-only session key found in the database")
		}
		return nil
	})

	// Session keys cross devices only sealed to a KEM key.
	g := newFixture(t)
	g.s.SetAssociation(policy.Associated, nil)
	kemInfo := g.gen(ClassKEM, true)
	sent, err := sk.SealTo(SealCallKey, kemInfo.Public, []byte("call 1"))
	if err != nil {
		t.Fatal(err)
	}
	gk, _ := g.s.KEM(kemInfo.ID)
	rk, err := gk.OpenSession(SealCallKey, []byte("call 1"), sent, SessionOptions{TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	fp1, _ := sk.Fingerprint([]byte("call 1"))
	fp2, err := rk.Fingerprint([]byte("call 1"))
	if err != nil || fp1 != fp2 || len(fp1) != 20 {
		t.Fatalf("fingerprints %q %q %v", fp1, fp2, err)
	}
	if pt, err := rk.Open(ct, []byte("ad")); err != nil || string(pt) != "hello" {
		t.Fatalf("receiver cannot open: %v", err)
	}
	// TTL.
	f.clock.Add(2 * time.Minute)
	f.s.Authenticate("passphrase")
	if got := deniedCodes(t, func() error { _, err := sk.Seal(nil, nil); return err }()); !reflect.DeepEqual(got, []string{"key_state"}) {
		t.Fatalf("expired session key: %v", got)
	}
	f.s.Maintain()
	if _, err := f.s.Info(sinfo.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("expired memory key still listed: %v", err)
	}
	// Destroy at call end, and at lock.
	fp, _ := rk.Fingerprint([]byte("call 1"))
	testkit.NoErr(t, rk.Destroy())
	if _, err := rk.Fingerprint([]byte("call 1")); err == nil {
		t.Fatalf("destroyed session key still usable (fingerprint %s)", fp)
	}
	s2, _ := g.s.Generate(ClassSession, GenerateOptions{Cause: lifecycle.MessagingSetup, Activate: true})
	h2, _ := g.s.Session(s2.ID)
	g.s.Lock()
	g.s.Unlock(context.Background(), testPass)
	g.s.SetAppAuthorized(true)
	if _, err := h2.Seal(nil, nil); err == nil {
		t.Fatal("memory-only session key survived a lock")
	}
	// Persisted session keys survive a reopen, until their TTL.
	p, err := g.s.Generate(ClassSession, GenerateOptions{Cause: lifecycle.MessagingSetup, Activate: true, Persist: true, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	g.reopen()
	ph, _ := g.s.Session(p.ID)
	if _, err := ph.Seal([]byte("x"), nil); err != nil {
		t.Fatalf("persisted session key after reopen: %v", err)
	}
	if _, err := g.s.Generate(ClassSession, GenerateOptions{Cause: lifecycle.CallSetup, TTL: 48 * time.Hour}); err == nil {
		t.Fatal("TTL above the maximum accepted")
	}
}

func TestClassesAreSeparate(t *testing.T) {
	f := newFixture(t)
	id := f.gen(ClassIdentity, true)
	if _, err := f.s.Session(id.ID); !errors.Is(err, ErrWrongClass) {
		t.Fatalf("identity key as session key: %v", err)
	}
	if _, err := f.s.KEM(id.ID); !errors.Is(err, ErrWrongClass) {
		t.Fatalf("identity key as KEM key: %v", err)
	}
	// A session-class record cannot be opened with the identity wrapping
	// key even if its class byte is rewritten: the class is authenticated
	// and the keys differ.
	s := f.gen(ClassSession, true)
	_ = s
	sess := f.s.keks.session.key
	ident := f.s.keks.identity.key
	if bytes.Equal(sess, ident) {
		t.Fatal("session and identity classes share a wrapping key")
	}
}

// Every decision, allow and deny, is in the audit log.
func TestDecisionsAudited(t *testing.T) {
	f := newFixture(t)
	id := f.gen(ClassIdentity, true)
	k, _ := f.s.Identity(id.ID)
	k.Sign(appPurpose("p"), nil)
	f.s.SetAppAuthorized(false)
	k.Sign(appPurpose("p"), nil)
	f.s.Close()
	entries, rep, err := audit.ReadFile(filepath.Join(f.home, AuditFile), audit.Anchor{})
	if err != nil {
		t.Fatal(err)
	}
	var allow, deny int
	for _, e := range entries {
		if e.Kind == audit.KindDecision && e.Key == id.ID {
			if e.Reasons == 0 {
				allow++
			} else if policy.Reasons(e.Reasons).Has(policy.AppNotAuthorized) {
				deny++
			}
		}
	}
	if allow != 1 || deny != 1 {
		t.Fatalf("audit has %d allows and %d denies, want 1 and 1 (%d entries)", allow, deny, rep.Entries)
	}
	f.s, _ = Open(f.home, f.opts())
}

func rawRecord(t *testing.T, f *fixture, id KeyID) []byte {
	t.Helper()
	var out []byte
	f.s.db.View(func(tx *bolt.Tx) error {
		out = bytes.Clone(tx.Bucket(bucketKeys).Get(id[:]))
		return nil
	})
	return out
}

func putRaw(t *testing.T, f *fixture, id KeyID, b []byte) {
	t.Helper()
	testkit.NoErr(t, f.s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketKeys).Put(id[:], b) }))
}

// A changed byte anywhere in a record makes it fail to open, with an error
// naming the record; it never yields another key, and other keys still work.
func TestTamperedRecord(t *testing.T) {
	f := newFixture(t)
	victim := f.gen(ClassIdentity, true)
	other := f.gen(ClassIdentity, true)
	orig := rawRecord(t, f, victim.ID)
	for i := range orig {
		bad := bytes.Clone(orig)
		bad[i] ^= 0x01
		putRaw(t, f, victim.ID, bad)
		f.forget(victim.ID)
		k, err := f.s.Identity(victim.ID)
		if err == nil {
			var sig []byte
			sig, err = k.Sign(appPurpose("p"), []byte("m"))
			if err == nil {
				// Signing worked: only acceptable if it is the same key.
				if Verify(AlgHybrid, victim.Public, appPurpose("p"), []byte("m"), sig) != nil {
					t.Fatalf("byte %d: a tampered record produced another key", i)
				}
				t.Fatalf("byte %d: tampered record opened", i)
			}
		}
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrWrongClass) && !errors.Is(err, ErrNotFound) {
			t.Fatalf("byte %d: err = %v, want ErrCorrupt", i, err)
		}
		if errors.Is(err, ErrCorrupt) && !strings.Contains(err.Error(), victim.ID.String()) {
			t.Fatalf("byte %d: error does not name the record: %v", i, err)
		}
		ok, _ := f.s.Identity(other.ID)
		if _, err := ok.Sign(appPurpose("p"), nil); err != nil {
			t.Fatalf("byte %d: an untouched key stopped working: %v", i, err)
		}
	}
	putRaw(t, f, victim.ID, orig)
	f.forget(victim.ID)
	k, _ := f.s.Identity(victim.ID)
	if err := signP(k); err != nil {
		t.Fatalf("restored record: %v", err)
	}
	// List shows the damage without hiding the other keys.
	bad := bytes.Clone(orig)
	bad[len(bad)-1] ^= 1
	putRaw(t, f, victim.ID, bad)
	infos, err := f.s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 2 {
		t.Fatalf("List returned %d keys", len(infos))
	}
}

// Records moved between stores or between ids do not open.
func TestMovedRecords(t *testing.T) {
	a, b := newFixture(t), newFixture(t)
	ka := a.gen(ClassIdentity, true)
	kb := b.gen(ClassIdentity, true)
	// Another store's record under its own id.
	putRaw(t, b, ka.ID, rawRecord(t, a, ka.ID))
	b.reopen()
	h, err := b.s.Identity(ka.ID)
	if err == nil {
		_, err = h.Sign(appPurpose("p"), nil)
	}
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), ka.ID.String()) {
		t.Fatalf("foreign record: %v", err)
	}
	// A record stored under another key's id.
	kb2 := b.gen(ClassIdentity, true)
	putRaw(t, b, kb2.ID, rawRecord(t, b, kb.ID))
	b.reopen()
	if _, err := b.s.Identity(kb2.ID); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("swapped record: %v", err)
	}
}

func TestWrongPassphraseLosesNothing(t *testing.T) {
	f := newFixture(t)
	id := f.gen(ClassIdentity, true)
	f.s.Close()
	s := f.open()
	if err := s.Unlock(context.Background(), []byte("wrong")); !errors.Is(err, ErrBadPassphrase) {
		t.Fatalf("err = %v, want ErrBadPassphrase", err)
	}
	testkit.NoErr(t, s.Unlock(context.Background(), testPass))
	s.SetAppAuthorized(true)
	k, _ := s.Identity(id.ID)
	testkit.NoErr(t, signP(k))
}

func TestPermissionsAndExclusiveOpen(t *testing.T) {
	f := newFixture(t)
	f.s.Close()
	testkit.NoErr(t, os.Chmod(f.home, 0o755))
	if _, err := Open(f.home, f.opts()); !errors.Is(err, ErrPermissions) {
		t.Fatalf("loose home: %v", err)
	}
	os.Chmod(f.home, 0o700)
	db := filepath.Join(f.home, DBFile)
	os.Chmod(db, 0o644)
	if _, err := Open(f.home, f.opts()); !errors.Is(err, ErrPermissions) {
		t.Fatalf("loose db: %v", err)
	}
	os.Chmod(db, 0o600)
	f.open()
	if _, err := Open(f.home, f.opts()); !errors.Is(err, ErrInUse) {
		t.Fatalf("second open: %v", err)
	}
	if _, err := Init(context.Background(), f.home, testkit.Must(testkit.SoftBackend("soft")), testPass, InitOptions{Options: f.opts()}); !errors.Is(err, ErrExists) {
		t.Fatalf("init over an existing store: %v", err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "nothing"), f.opts()); !errors.Is(err, ErrNotInitialized) {
		t.Fatalf("missing home: %v", err)
	}
	// Home and files are created private.
	for _, p := range []string{f.home, db, filepath.Join(f.home, AuditFile)} {
		st, _ := os.Stat(p)
		if st.Mode().Perm()&0o077 != 0 {
			t.Fatalf("%s has mode %v", p, st.Mode())
		}
	}
}

// A damaged database file gives an error, never a panic, and the original
// bytes are left alone.
func TestDamagedDatabase(t *testing.T) {
	f, db, orig := closedWithKey(t, DBFile)
	for _, n := range []int{0, 100, 4096, len(orig) / 2} {
		os.WriteFile(db, orig[:n], 0o600)
		s, err := Open(f.home, f.opts())
		if err == nil {
			s.Close()
			t.Fatalf("database truncated to %d of %d bytes: opened", n, len(orig))
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("database truncated to %d bytes: %v, want ErrCorrupt", n, err)
		}
	}
	for i := 0; i < len(orig); i += 97 {
		b := bytes.Clone(orig)
		b[i] ^= 0xff
		os.WriteFile(db, b, 0o600)
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("byte %d flipped: panic %v", i, r)
				}
			}()
			s, err := Open(f.home, f.opts())
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("byte %d flipped: %v, want ErrCorrupt", i, err)
				}
				return
			}
			if err := s.Unlock(context.Background(), testPass); err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrBadPassphrase) {
				t.Fatalf("byte %d flipped: unlock: %v, want ErrCorrupt", i, err)
			}
			if _, err := s.List(); err != nil && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("byte %d flipped: list: %v, want ErrCorrupt", i, err)
			}
			s.Close()
		}()
	}
	os.WriteFile(db, orig, 0o600)
	f.open()
}

func TestRevokeDevice(t *testing.T) {
	f := newFixture(t)
	f.s.SetAssociation(policy.Associated, []byte("acct"))
	id := f.gen(ClassIdentity, true)
	kemInfo := f.gen(ClassKEM, true)
	k, _ := f.s.Identity(id.ID)
	k.Sign(appPurpose("p"), nil)
	before := rawRecord(t, f, id.ID)
	var d0 = record0(t, before)
	f.s.Lock()
	testkit.NoErr(t, f.s.RevokeDevice(context.Background(), "test"))
	for _, info := range testkit.Must(f.s.List()) {
		if info.State != lifecycle.Revoked {
			t.Fatalf("key %s is %v after device revocation", info.ID.Short(), info.State)
		}
	}
	if got := deniedCodes(t, signP(k)); !slices.Contains(got, "revoked") {
		t.Fatalf("after revocation: %v", got)
	}
	kem, _ := f.s.KEM(kemInfo.ID)
	if got := deniedCodes(t, func() error { _, err := kem.OpenData(nil, []byte("x")); return err }()); !slices.Contains(got, "revoked") {
		t.Fatalf("kem after revocation: %v", got)
	}
	if err := f.s.Unlock(context.Background(), testPass); !errors.Is(err, ErrDeviceRevoked) {
		t.Fatalf("unlock after revocation: %v", err)
	}
	if _, err := f.s.Generate(ClassIdentity, GenerateOptions{Cause: lifecycle.Recovery}); !errors.Is(err, ErrDeviceRevoked) {
		t.Fatalf("generate after revocation: %v", err)
	}
	// The old sealed material is gone from the database file.
	f.s.Close()
	raw, _ := os.ReadFile(filepath.Join(f.home, DBFile))
	if bytes.Contains(raw, d0) {
		t.Fatal("the revoked key's sealed bytes survive in the database file")
	}
	s := f.open()
	st, _ := s.Status()
	if !st.Revoked {
		t.Fatal("status does not say revoked after reopen")
	}
}

func record0(t *testing.T, raw []byte) []byte {
	// The sealed part: the last 80 bytes (64-byte seed + tag) of a hybrid record.
	if len(raw) < 80 {
		t.Fatal("short record")
	}
	return bytes.Clone(raw[len(raw)-80:])
}

func TestAuditBrokenIsPreserved(t *testing.T) {
	f, path, b := closedWithKey(t, AuditFile)
	b[len(b)-40] ^= 1 // in the last entry, the checkpoint Open checks
	os.WriteFile(path, b, 0o600)
	s := f.open()
	st, _ := s.Status()
	if st.Audit.Intact || st.Audit.Preserved == "" {
		t.Fatalf("broken audit log not reported: %+v", st.Audit)
	}
	if kept, err := os.ReadFile(st.Audit.Preserved); err != nil || !bytes.Equal(kept, b) {
		t.Fatal("broken log not preserved byte for byte")
	}
}

// No fmt verb prints key material from a handle, a copy of one, the store
// or its wrapping keys.
func TestNoSecretsInFormat(t *testing.T) {
	f := newFixture(t)
	id := f.genWith(ClassIdentity, GenerateOptions{Cause: lifecycle.AccountSetup, Activate: true, Algorithm: AlgEd25519})
	k, _ := f.s.Identity(id.ID)
	k.Sign(appPurpose("p"), nil) // loads the material
	secrets := [][]byte{k.lk.ed.Seed(), f.s.keks.identity.key, f.s.keks.session.key}
	for _, v := range []any{k, f.s, id, k.lk, f.s.keks, f.s.keks.identity, f.s.keks.session} {
		if err := redact.Leak(v, secrets...); err != nil {
			t.Error(err)
		}
	}
}

func TestPromote(t *testing.T) {
	f := newFixture(t)
	old := f.gen(ClassIdentity, true)
	next := f.gen(ClassIdentity, false)
	h, _ := f.s.Identity(next.ID)
	if _, err := h.ProvePossession(appPurpose("rotate"), []byte("link")); err != nil {
		t.Fatalf("the created key cannot prove possession: %v", err)
	}
	testkit.NoErr(t, f.s.Promote(old.ID, next.ID, RotateOptions{}))
	oi, _ := f.s.Info(old.ID)
	ni, _ := f.s.Info(next.ID)
	if oi.State != lifecycle.Superseded || *oi.Successor != next.ID || ni.State != lifecycle.Active || *ni.Predecessor != old.ID {
		t.Fatalf("after Promote: old %v, new %v", oi.State, ni.State)
	}
	if _, err := h.Sign(appPurpose("p"), nil); err != nil {
		t.Fatalf("promoted key cannot sign: %v", err)
	}
	oh, _ := f.s.Identity(old.ID)
	if got := deniedCodes(t, func() error { _, err := oh.Sign(appPurpose("p"), nil); return err }()); !reflect.DeepEqual(got, []string{"key_state"}) {
		t.Fatalf("superseded key signs: %v", got)
	}
	// Promoting again, or across classes, fails without changing anything.
	if err := f.s.Promote(old.ID, next.ID, RotateOptions{}); !errors.Is(err, lifecycle.ErrTransition) {
		t.Fatalf("second Promote: %v", err)
	}
	kem := f.gen(ClassKEM, false)
	if err := f.s.Promote(next.ID, kem.ID, RotateOptions{}); !errors.Is(err, ErrWrongClass) {
		t.Fatalf("cross-class Promote: %v", err)
	}
}

type osTrust struct{ v policy.OSTrust }

func (o *osTrust) OSTrust() policy.OSTrust { return o.v }

type attested struct{ v policy.Attestation }

func (a *attested) Attestation() policy.Attestation { return a.v }

// The optional Enigm OS Trust and attestation states come from pluggable
// providers and gate keys whose policy requires them.
func TestOSTrustAndAttestationProviders(t *testing.T) {
	f := newFixture(t)
	f.s.Close()
	ot := &osTrust{policy.OSTrust{Deployed: true, Trusted: false}}
	at := &attested{policy.Attestation{Applicable: true, Verified: false}}
	opts := f.opts()
	opts.OSTrust, opts.Attestation = ot, at
	s, err := Open(f.home, opts)
	if err != nil {
		t.Fatal(err)
	}
	f.s = s
	s.Unlock(context.Background(), testPass)
	s.SetAppAuthorized(true)
	req := policy.Requirements{OSTrust: true, Attestation: true}
	info, err := s.Generate(ClassIdentity, GenerateOptions{Cause: lifecycle.AccountSetup, Activate: true, Policy: &req})
	if err != nil {
		t.Fatal(err)
	}
	k, _ := s.Identity(info.ID)
	sign := func() error { _, err := k.Sign(appPurpose("p"), nil); return err }
	if got := deniedCodes(t, sign()); !reflect.DeepEqual(got, []string{"os_trust_required", "attestation_required"}) {
		t.Fatalf("untrusted: %v", got)
	}
	ot.v.Trusted, at.v.Verified, at.v.At = true, true, f.clock.Now()
	s.RefreshPosture()
	if err := sign(); err != nil {
		t.Fatalf("trusted and attested: %v", err)
	}
	// A key without those requirements never depended on them.
	plain := f.gen(ClassIdentity, true)
	ot.v.Trusted = false
	s.RefreshPosture()
	ph, _ := s.Identity(plain.ID)
	if _, err := ph.Sign(appPurpose("p"), nil); err != nil {
		t.Fatalf("a key that does not require OS Trust was denied: %v", err)
	}
}
