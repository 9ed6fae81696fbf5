package keystore

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"sync/atomic"
	"testing"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/soft"
	"github.com/enigm/enigm/hybrid"
	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/lifecycle"
	"github.com/enigm/enigm/policy"
	"github.com/enigm/enigm/posture"
)

// countingBackend counts every call that reaches the backend.
type countingBackend struct {
	backend.Backend
	calls *atomic.Int64
}

type countingSession struct {
	backend.Session
	calls *atomic.Int64
}

func (b countingBackend) Open(ctx context.Context, st, secret []byte) (backend.Session, error) {
	b.calls.Add(1)
	s, err := b.Backend.Open(ctx, st, secret)
	if err != nil {
		return nil, err
	}
	return countingSession{s, b.calls}, nil
}

func (s countingSession) Seal(ctx context.Context, l string, p []byte) ([]byte, error) {
	s.calls.Add(1)
	return s.Session.Seal(ctx, l, p)
}

func (s countingSession) Unseal(ctx context.Context, l string, p []byte) ([]byte, error) {
	s.calls.Add(1)
	return s.Session.Unseal(ctx, l, p)
}

// initReopened creates a store on be in a fresh home, closes it and opens
// it again, locked, for the rest of the test: every backend call a store
// makes after a restart goes through be.
func initReopened(t testing.TB, be backend.Backend) *Store {
	t.Helper()
	home := t.TempDir() + "/h"
	opts := Options{Backend: func(string) (backend.Backend, error) { return be, nil }, Posture: posture.Static{Level: policy.PostureDegraded}}
	s, err := Init(context.Background(), home, be, testPass, InitOptions{Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(home, opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// After unlock, signing and decrypting with wrapped keys never touch the
// backend.
func TestNoBackendCallsPerUse(t *testing.T) {
	var calls atomic.Int64
	sb := testkit.Must(testkit.SoftBackend("soft"))
	cb := countingBackend{sb, &calls}
	s := initReopened(t, cb)
	testkit.NoErr(t, s.Unlock(context.Background(), testPass))
	s.SetAppAuthorized(true)
	s.SetAssociation(policy.Associated, nil)
	id, _ := s.Generate(ClassIdentity, GenerateOptions{Cause: lifecycle.AccountSetup, Activate: true})
	kemInfo, _ := s.Generate(ClassKEM, GenerateOptions{Cause: lifecycle.AccountSetup, Activate: true})
	k, _ := s.Identity(id.ID)
	kem, _ := s.KEM(kemInfo.ID)
	ct, _ := SealData(kemInfo.Public, nil, []byte("m"))
	before := calls.Load()
	if before == 0 {
		t.Fatal("the counting backend saw no calls at all: the counter is not wired")
	}
	for i := 0; i < 20; i++ {
		if _, err := k.Sign(appPurpose("bench"), []byte("m")); err != nil {
			t.Fatal(err)
		}
		if _, err := kem.OpenData(nil, ct); err != nil {
			t.Fatal(err)
		}
	}
	if n := calls.Load() - before; n != 0 {
		t.Fatalf("%d backend calls for 20 signatures and 20 decryptions, want 0", n)
	}
}

func benchStore(b *testing.B, alg Algorithm) *IdentityKey {
	b.Helper()
	sb := testkit.Must(testkit.SoftBackend("soft"))
	s, err := Init(context.Background(), b.TempDir()+"/h", sb, testPass, InitOptions{Options: Options{
		Backend: testkit.SoftBackend, Posture: posture.Static{Level: policy.PostureDegraded}}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	s.SetAppAuthorized(true)
	info, err := s.Generate(ClassIdentity, GenerateOptions{Cause: lifecycle.AccountSetup, Activate: true, Algorithm: alg})
	if err != nil {
		b.Fatal(err)
	}
	k, _ := s.Identity(info.ID)
	if _, err := k.Sign(appPurpose("bench"), nil); err != nil { // load the key
		b.Fatal(err)
	}
	return k
}

var benchMsg = bytes.Repeat([]byte{7}, 256)

// Raw primitives: the baselines.

func BenchmarkSignEd25519Raw(b *testing.B) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	for b.Loop() {
		ed25519.Sign(priv, benchMsg)
	}
}

func BenchmarkSignEd25519ctxRaw(b *testing.B) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	opts := &ed25519.Options{Context: "enigm/v1/bench"}
	for b.Loop() {
		priv.Sign(nil, benchMsg, opts)
	}
}

func BenchmarkSignHybridRaw(b *testing.B) {
	k, _ := hybrid.NewPrivateKey(bytes.Repeat([]byte{1}, 64))
	for b.Loop() {
		k.Sign("enigm/v1/bench", benchMsg)
	}
}

// Through the keystore: unlocked, policy decided, audit entry written.

func BenchmarkSignEd25519Keystore(b *testing.B) {
	k := benchStore(b, AlgEd25519)
	for b.Loop() {
		if _, err := k.Sign(appPurpose("bench"), benchMsg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSignHybridKeystore(b *testing.B) {
	k := benchStore(b, AlgHybrid)
	for b.Loop() {
		if _, err := k.Sign(appPurpose("bench"), benchMsg); err != nil {
			b.Fatal(err)
		}
	}
}

// Unlock with the software backend at RFC 9106 parameters (t=3, 64 MiB, p=4).
func BenchmarkUnlockSoftRFC9106(b *testing.B) {
	sb, _ := soft.New(soft.Options{})
	s := initReopened(b, sb)
	for b.Loop() {
		testkit.NoErr(b, s.Unlock(context.Background(), testPass))
		s.Lock()
	}
}

// Wrapping and unwrapping one record (AES-256-GCM under a class key).
func BenchmarkWrapRecord(b *testing.B) {
	var k kek[identityTag]
	k.set(bytes.Repeat([]byte{9}, 32))
	meta := testRecordMeta()
	seed := make([]byte, 64)
	for b.Loop() {
		if _, err := seal(&k, meta, seed); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnwrapRecord(b *testing.B) {
	var k kek[identityTag]
	k.set(bytes.Repeat([]byte{9}, 32))
	w, err := seal(&k, testRecordMeta(), make([]byte, 64))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		m, err := open(&k, w)
		if err != nil {
			b.Fatal(err)
		}
		clear(m)
	}
}
