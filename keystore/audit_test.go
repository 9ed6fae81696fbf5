package keystore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/keystore/internal/audit"
	"github.com/enigm/enigm/lifecycle"
	"github.com/enigm/enigm/policy"
)

// failingFile is an audit log file that fails the way a full file system
// (a write that stops half-way with ENOSPC) or a failing disk (fsync EIO)
// does, while the flags are set.
type failingFile struct {
	*os.File
	full, syncFails atomic.Bool
}

func (f *failingFile) WriteAt(p []byte, off int64) (int, error) {
	if f.full.Load() {
		n, _ := f.File.WriteAt(p[:len(p)/2], off)
		return n, syscall.ENOSPC
	}
	return f.File.WriteAt(p, off)
}

func (f *failingFile) Sync() error {
	if f.syncFails.Load() {
		return syscall.EIO
	}
	return f.File.Sync()
}

// newFailingFixture is newFixture with the audit log behind a failingFile.
func newFailingFixture(t *testing.T) (*fixture, *failingFile) {
	t.Helper()
	var ff atomic.Pointer[failingFile]
	f := &fixture{t: t, home: filepath.Join(t.TempDir(), "home"),
		clock: testkit.NewClock(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)),
		pos:   &mutablePosture{p: policy.Posture{Level: policy.PostureDegraded}}}
	opts := f.opts()
	opts.auditFile = func(file *os.File) audit.File {
		w := &failingFile{File: file}
		ff.Store(w)
		return w
	}
	b, _ := testkit.SoftBackend("soft")
	s, err := Init(context.Background(), f.home, b, testPass, InitOptions{Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	s.SetAppAuthorized(true)
	s.SetAssociation(policy.Associated, nil)
	f.s = s
	t.Cleanup(func() { f.s.Close() })
	return f, ff.Load()
}

// decisionsFor counts the allowed and denied decision entries of key id in
// the store's log (which must verify).
func decisionsFor(t *testing.T, home string, id KeyID) (allowed, denied int, all []audit.Entry) {
	t.Helper()
	entries, _, err := audit.ReadFile(filepath.Join(home, AuditFile), audit.Anchor{})
	if err != nil {
		t.Fatalf("audit log does not verify: %v", err)
	}
	for _, e := range entries {
		if e.Kind == audit.KindDecision && e.Key == id {
			if e.Reasons == 0 {
				allowed++
			} else {
				denied++
			}
		}
	}
	return allowed, denied, entries
}

// With the audit log unable to grow, every key use is denied with
// audit_unavailable and no change is made; nothing is used unlogged, and
// the log stays a verifiable chain that says entries were lost. Once the
// disk has room again, uses resume.
func TestAuditFailsClosed(t *testing.T) {
	f, ff := newFailingFixture(t)
	id := f.genWith(ClassIdentity, GenerateOptions{Cause: lifecycle.AccountSetup, Activate: true, Algorithm: AlgEd25519})
	kemInfo := f.gen(ClassKEM, true)
	k, _ := f.s.Identity(id.ID)
	kem, _ := f.s.KEM(kemInfo.ID)
	if _, err := k.Sign(appPurpose("p"), []byte("before")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(f.home, AuditFile)
	st, _ := os.Stat(path)
	sizeBefore := st.Size()
	keysBefore := len(testkit.Must(f.s.List()))

	ff.full.Store(true)
	const tries = 200
	for i := 0; i < tries; i++ {
		sig, err := k.Sign(appPurpose("p"), []byte("while full"))
		if got := deniedCodes(t, err); !reflect.DeepEqual(got, []string{"audit_unavailable"}) || sig != nil {
			t.Fatalf("sign %d with the log full: sig=%x, codes %v, want denied [audit_unavailable]", i, sig, got)
		}
	}
	ct, _ := SealData(kemInfo.Public, nil, []byte("m"))
	if _, err := kem.OpenData(nil, ct); !reflect.DeepEqual(deniedCodes(t, err), []string{"audit_unavailable"}) {
		t.Fatalf("KEM open with the log full: %v", err)
	}
	if _, err := f.s.Generate(ClassIdentity, GenerateOptions{Cause: lifecycle.AccountSetup, Activate: true}); !errors.Is(err, audit.ErrUnavailable) {
		t.Fatalf("generate with the log full: %v, want audit.ErrUnavailable", err)
	}
	if err := f.s.RetireKey(kemInfo.ID, lifecycle.Retirement); !errors.Is(err, audit.ErrUnavailable) {
		t.Fatalf("retire with the log full: %v, want audit.ErrUnavailable", err)
	}
	if n := len(testkit.Must(f.s.List())); n != keysBefore {
		t.Fatalf("%d keys after changes refused for the audit log, want %d", n, keysBefore)
	}
	if info, _ := f.s.Info(kemInfo.ID); info.State != lifecycle.Active {
		t.Fatalf("KEM key is %v after a refused retirement", info.State)
	}
	// A lock happens even when it cannot be logged; an unlock does not.
	if err := f.s.Lock(); !errors.Is(err, audit.ErrUnavailable) {
		t.Fatalf("lock with the log full: %v, want the lock entry reported unwritten", err)
	}
	if err := f.s.Unlock(context.Background(), testPass); !errors.Is(err, audit.ErrUnavailable) {
		t.Fatalf("unlock with the log full: %v, want audit.ErrUnavailable", err)
	}
	if st, _ := f.s.Status(); !st.Locked || f.s.State().Unlocked {
		t.Fatal("the store is unlocked although its unlock could not be logged")
	}
	st, _ = os.Stat(path)
	if st.Size() != sizeBefore {
		t.Fatalf("log is %d bytes after failed writes, was %d: partial entries left behind", st.Size(), sizeBefore)
	}

	ff.full.Store(false)
	testkit.NoErr(t, f.s.Unlock(context.Background(), testPass))
	if _, err := k.Sign(appPurpose("p"), []byte("after")); err != nil {
		t.Fatalf("sign after the disk has room again: %v", err)
	}
	f.s.Close()
	allowed, _, entries := decisionsFor(t, f.home, id.ID)
	if allowed != 2 {
		t.Fatalf("%d allowed decisions on record, want 2 (the two signatures made)", allowed)
	}
	var note string
	for _, e := range entries {
		if e.Kind == audit.KindRecovered && strings.Contains(e.Detail, "could not be written") {
			note = e.Detail
		}
	}
	if !strings.Contains(note, "could not be written") || !strings.Contains(note, "no space left") {
		t.Fatalf("the log does not say entries were lost: %q", note)
	}
	f.s, _ = Open(f.home, f.opts())
}

// A failed fsync is sticky: the file system may have dropped what was
// written, so every use is denied until the store is opened again.
func TestAuditSyncFailureIsSticky(t *testing.T) {
	f, ff := newFailingFixture(t)
	id := f.genWith(ClassIdentity, GenerateOptions{Cause: lifecycle.AccountSetup, Activate: true, Algorithm: AlgEd25519})
	k, _ := f.s.Identity(id.ID)
	testkit.NoErr(t, signP(k))
	ff.syncFails.Store(true)
	if _, _, err := f.s.AuditLog(); !errors.Is(err, audit.ErrUnavailable) {
		t.Fatalf("AuditLog with fsync failing: %v", err)
	}
	ff.syncFails.Store(false)
	if err := signP(k); !reflect.DeepEqual(deniedCodes(t, err), []string{"audit_unavailable"}) {
		t.Fatalf("sign after a failed fsync: %v, want denied [audit_unavailable]", err)
	}
	if err := f.s.Close(); !errors.Is(err, audit.ErrUnavailable) {
		t.Fatalf("Close after a failed fsync: %v, want the lock entry reported unwritten", err)
	}
	s := f.open()
	testkit.NoErr(t, s.Unlock(context.Background(), testPass))
	s.SetAppAuthorized(true)
	k, _ = f.s.Identity(id.ID)
	if err := signP(k); err != nil {
		t.Fatalf("sign after reopening: %v", err)
	}
}

// A denial rewritten as an allow, with every later entry re-chained so the
// file verifies on its own, is caught by the anchor in the database: the
// store reports the log broken and keeps the forged file aside.
func TestAuditRewriteDetectedAtOpen(t *testing.T) {
	f := newFixture(t)
	id := f.gen(ClassIdentity, true)
	k, _ := f.s.Identity(id.ID)
	f.s.SetAppAuthorized(false)
	if err := signP(k); !errors.Is(err, ErrDenied) {
		t.Fatal(err)
	}
	f.s.Close()
	path := filepath.Join(f.home, AuditFile)
	entries, _, err := audit.ReadFile(path, audit.Anchor{})
	if err != nil {
		t.Fatal(err)
	}
	var forged []byte
	var last [32]byte
	rewritten := false
	for _, e := range entries {
		if rewritten {
			e.Prev = last
		}
		if e.Kind == audit.KindDecision && e.Key == id.ID && e.Reasons != 0 {
			e.Reasons, rewritten = 0, true
		}
		b := audit.Encode(e)
		copy(last[:], b[len(b)-32:])
		forged = append(forged, b...)
	}
	if !rewritten {
		t.Fatal("no denial to rewrite")
	}
	if _, _, err := audit.ReadFile(path, audit.Anchor{}); err != nil {
		t.Fatal(err)
	}
	testkit.NoErr(t, os.WriteFile(path, forged, 0o600))
	if _, _, err := audit.ReadFile(path, audit.Anchor{}); err != nil {
		t.Fatalf("the forged log should verify without its anchor: %v", err)
	}
	s := f.open()
	st, _ := s.Status()
	if st.Audit.Intact || !strings.Contains(st.Audit.Problem, "differs from the checkpoint") {
		t.Fatalf("forged log accepted: %+v", st.Audit)
	}
}
