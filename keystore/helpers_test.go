package keystore

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/enigm/enigm/hybrid"
	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/keystore/internal/record"
	"github.com/enigm/enigm/lifecycle"
	"github.com/enigm/enigm/policy"
)

var testPass = []byte("test passphrase")

type fixture struct {
	t     *testing.T
	home  string
	clock *testkit.Clock
	pos   *mutablePosture
	s     *Store
}

type mutablePosture struct {
	mu sync.Mutex
	p  policy.Posture
}

func (m *mutablePosture) Posture() policy.Posture {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.p
}

func (m *mutablePosture) set(l policy.PostureLevel) {
	m.mu.Lock()
	m.p = policy.Posture{Level: l}
	m.mu.Unlock()
}

func (f *fixture) opts() Options {
	return Options{Backend: testkit.SoftBackend, Clock: f.clock.Now, Posture: f.pos, LockTimeout: 100 * time.Millisecond}
}

// newFixture creates an unlocked, app-authorized store with a controllable
// clock and posture.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, home: filepath.Join(t.TempDir(), "home"),
		clock: testkit.NewClock(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)),
		pos:   &mutablePosture{p: policy.Posture{Level: policy.PostureDegraded}}}
	b, _ := testkit.SoftBackend("soft")
	s, err := Init(context.Background(), f.home, b, testPass, InitOptions{Options: f.opts()})
	if err != nil {
		t.Fatal(err)
	}
	s.SetAppAuthorized(true)
	f.s = s
	t.Cleanup(func() { f.s.Close() })
	return f
}

// closedWithKey is a fixture whose store holds one active identity key
// and is closed, for tests that damage its files: the fixture, and the
// path in its home of file and that file's bytes.
func closedWithKey(t *testing.T, file string) (*fixture, string, []byte) {
	t.Helper()
	f := newFixture(t)
	f.gen(ClassIdentity, true)
	f.s.Close()
	path := filepath.Join(f.home, file)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return f, path, b
}

// open opens the closed store at f.home again, locked, as f.s.
func (f *fixture) open() *Store {
	f.t.Helper()
	s, err := Open(f.home, f.opts())
	if err != nil {
		f.t.Fatal(err)
	}
	f.s = s
	return s
}

// reopen closes and reopens the store, unlocked.
func (f *fixture) reopen() {
	f.t.Helper()
	f.reopenWith(f.opts())
}

// reopenWith is reopen with options o.
func (f *fixture) reopenWith(o Options) {
	f.t.Helper()
	if err := f.s.Close(); err != nil {
		f.t.Fatal(err)
	}
	s, err := Open(f.home, o)
	if err != nil {
		f.t.Fatal(err)
	}
	f.s = s
	if err := s.Unlock(context.Background(), testPass); err != nil {
		f.t.Fatal(err)
	}
	s.SetAppAuthorized(true)
}

func (f *fixture) gen(c Class, activate bool) KeyInfo {
	f.t.Helper()
	return f.genWith(c, GenerateOptions{Cause: lifecycle.AccountSetup, Activate: activate})
}

// genWith generates a key of class c with o; an error fails the test.
func (f *fixture) genWith(c Class, o GenerateOptions) KeyInfo {
	f.t.Helper()
	k, err := f.s.Generate(c, o)
	if err != nil {
		f.t.Fatal(err)
	}
	return k
}

// forget drops a key's cached state so the next use reads its record again.
func (f *fixture) forget(id KeyID) {
	f.s.mu.Lock()
	if lk := f.s.live[id]; lk != nil {
		lk.unload()
	}
	delete(f.s.live, id)
	f.s.mu.Unlock()
}

func testRecordMeta() record.Meta {
	pub, _ := hybrid.NewPrivateKey(make([]byte, 64))
	m := record.Meta{Version: record.Version, ID: make([]byte, 16), Class: ClassIdentity, Alg: AlgHybrid,
		Policy: record.FromRequirements(policy.Requirements{Unlocked: true}), Device: make([]byte, 16),
		Public: pub.Public().Bytes()}
	life, _ := lifecycle.New(lifecycle.AccountSetup, time.Unix(1, 0))
	m.SetLifecycle(life)
	return m
}

// appPurpose is an application purpose for tests.
func appPurpose(label string) Purpose {
	p, err := AppPurpose(label)
	if err != nil {
		panic(err)
	}
	return p
}
