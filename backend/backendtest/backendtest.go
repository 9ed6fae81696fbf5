// Package backendtest is the conformance suite every backend passes. A
// backend's test calls [Run] with a factory; each subtest gets a fresh
// backend from it.
package backendtest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"errors"
	"sync"
	"testing"

	"github.com/enigm/enigm/backend"
)

// Factory returns a fresh backend for one subtest. Cleanup goes through
// t.Cleanup.
type Factory func(t *testing.T) backend.Backend

// DefaultSecret is the unlock secret [Run] uses.
var DefaultSecret = []byte("correct horse battery staple")

// Provision provisions a store on b with secret and returns its state; a
// failure fails the test.
func Provision(t testing.TB, b backend.Backend, secret []byte) []byte {
	t.Helper()
	st, err := b.Provision(context.Background(), secret)
	if err != nil {
		t.Fatalf("Provision: %v", err)
	}
	return st
}

// Open opens the store st of b with secret for the rest of the test; a
// failure fails the test.
func Open(t testing.TB, b backend.Backend, st, secret []byte) backend.Session {
	t.Helper()
	s, err := b.Open(context.Background(), st, secret)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Run runs the conformance suite with [DefaultSecret] as the unlock secret.
func Run(t *testing.T, newBackend Factory) { RunSecret(t, DefaultSecret, newBackend) }

// RunSecret runs the conformance suite with the caller's unlock secret,
// for hardware with rules of its own (a token that accepts 4 to 8
// character PINs, a token initialized with a fixed PIN). The wrong secret
// the suite tries has the same length (its last byte changed), so it
// passes any length check and reaches the hardware's own check.
func RunSecret(t *testing.T, secret []byte, newBackend Factory) {
	if len(secret) == 0 {
		t.Fatal("backendtest: the unlock secret must not be empty")
	}
	secret = bytes.Clone(secret)
	wrong := bytes.Clone(secret)
	wrong[len(wrong)-1] ^= 0x01
	ctx := context.Background()
	provision := func(t *testing.T, b backend.Backend) []byte { return Provision(t, b, secret) }
	open := func(t *testing.T, b backend.Backend, st []byte) backend.Session { return Open(t, b, st, secret) }
	// wrongSecret reports whether err refuses a wrong unlock secret
	// (ErrBadSecret, or ErrLockedOut once the hardware has counted too
	// many).
	wrongSecret := func(err error) bool {
		return errors.Is(err, backend.ErrBadSecret) || errors.Is(err, backend.ErrLockedOut)
	}
	// fresh is a new backend with one provisioned store, open.
	fresh := func(t *testing.T) (backend.Backend, backend.Session) {
		t.Helper()
		b := newBackend(t)
		return b, open(t, b, provision(t, b))
	}
	key32 := bytes.Repeat([]byte{0x5a}, 32)
	seal := func(t *testing.T, s backend.Session, label string) []byte {
		t.Helper()
		sealed, err := s.Seal(ctx, label, key32)
		if err != nil {
			t.Fatalf("Seal: %v", err)
		}
		return sealed
	}

	t.Run("Capabilities", func(t *testing.T) {
		c := newBackend(t).Capabilities()
		if c.Name == "" || c.Level.Rank() == 0 {
			t.Fatalf("bad name or level: %+v", c)
		}
		if c.MaxSealSize < 32 {
			t.Fatalf("MaxSealSize %d cannot hold a 32-byte wrapping key", c.MaxSealSize)
		}
		if (c.Level == backend.LevelSoftware) != (len(c.HardwareGates) == 0) {
			t.Fatalf("a software backend claims hardware gates, or a hardware one none: %+v", c)
		}
	})

	t.Run("SealUnsealRoundTrip", func(t *testing.T) {
		b, s := fresh(t)
		max := b.Capabilities().MaxSealSize
		for _, n := range []int{1, 16, 32, max} {
			pt := make([]byte, n)
			for i := range pt {
				pt[i] = byte(i*7 + n)
			}
			sealed, err := s.Seal(ctx, "enigm/test/roundtrip", pt)
			if err != nil {
				t.Fatalf("Seal(%d bytes): %v", n, err)
			}
			if n >= 16 && bytes.Contains(sealed, pt) {
				t.Fatalf("sealed data contains the plaintext")
			}
			got, err := s.Unseal(ctx, "enigm/test/roundtrip", sealed)
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("Unseal(%d bytes) = %x, %v", n, got, err)
			}
		}
	})

	t.Run("TooLarge", func(t *testing.T) {
		b, s := fresh(t)
		_, err := s.Seal(ctx, "enigm/test/large", make([]byte, b.Capabilities().MaxSealSize+1))
		if !errors.Is(err, backend.ErrTooLarge) {
			t.Fatalf("err = %v, want ErrTooLarge", err)
		}
	})

	t.Run("WrongSecret", func(t *testing.T) {
		b := newBackend(t)
		st := provision(t, b)
		if s, err := b.Open(ctx, st, wrong); err == nil {
			// Some hardware checks the secret only at first use.
			sealedOK := mustSealWithGoodSession(t, b, st, secret, key32)
			_, err = s.Unseal(ctx, "enigm/test/kek", sealedOK)
			s.Close()
			if err == nil {
				t.Fatal("a wrong secret unsealed a wrapping key")
			}
			if !wrongSecret(err) {
				t.Fatalf("err = %v, want ErrBadSecret", err)
			}
		} else if !wrongSecret(err) {
			t.Fatalf("err = %v, want ErrBadSecret", err)
		}
		// The right secret still works afterwards: nothing was lost.
		open(t, b, st)
	})

	// Some hardware logs in per process, not per session (PKCS#11): a
	// second Open must still check the secret while a first session is
	// open.
	t.Run("WrongSecretWhileOpen", func(t *testing.T) {
		b := newBackend(t)
		st := provision(t, b)
		good := open(t, b, st)
		sealed := seal(t, good, "enigm/test/kek")
		s, err := b.Open(ctx, st, wrong)
		if err == nil {
			_, err = s.Unseal(ctx, "enigm/test/kek", sealed)
			s.Close()
		}
		if err == nil {
			t.Fatal("a wrong secret unsealed while another session was open")
		}
		if !wrongSecret(err) {
			t.Fatalf("err = %v, want ErrBadSecret", err)
		}
		if got, err := good.Unseal(ctx, "enigm/test/kek", sealed); err != nil || !bytes.Equal(got, key32) {
			t.Fatalf("the good session stopped working: %v", err)
		}
	})

	t.Run("LabelBinding", func(t *testing.T) {
		_, s := fresh(t)
		sealed := seal(t, s, "enigm/kek/session")
		if _, err := s.Unseal(ctx, "enigm/kek/identity", sealed); !errors.Is(err, backend.ErrSealedData) {
			t.Fatalf("unseal under another label: err = %v, want ErrSealedData", err)
		}
	})

	t.Run("TamperedSealedData", func(t *testing.T) {
		_, s := fresh(t)
		sealed := seal(t, s, "enigm/test/kek")
		for _, i := range positions(len(sealed)) {
			bad := bytes.Clone(sealed)
			bad[i] ^= 0x01
			got, err := s.Unseal(ctx, "enigm/test/kek", bad)
			if err == nil {
				t.Fatalf("flipped byte %d of %d: unsealed %x", i, len(sealed), got)
			}
			if !errors.Is(err, backend.ErrSealedData) {
				t.Fatalf("flipped byte %d: err = %v, want ErrSealedData", i, err)
			}
		}
		for _, n := range []int{0, 1, len(sealed) / 2, len(sealed) - 1} {
			if _, err := s.Unseal(ctx, "enigm/test/kek", sealed[:n]); !errors.Is(err, backend.ErrSealedData) {
				t.Fatalf("truncated to %d: err = %v, want ErrSealedData", n, err)
			}
		}
		// The untouched blob still opens.
		if got, err := s.Unseal(ctx, "enigm/test/kek", sealed); err != nil || !bytes.Equal(got, key32) {
			t.Fatalf("original no longer unseals: %v", err)
		}
	})

	t.Run("ForeignState", func(t *testing.T) {
		b, a := fresh(t)
		sealed := seal(t, a, "enigm/test/kek")
		other := open(t, b, provision(t, b)) // same secret, fresh protection
		if _, err := other.Unseal(ctx, "enigm/test/kek", sealed); !errors.Is(err, backend.ErrSealedData) {
			t.Fatalf("another store's sealed data: err = %v, want ErrSealedData", err)
		}
	})

	t.Run("ReopenKeepsData", func(t *testing.T) {
		b := newBackend(t)
		st := provision(t, b)
		s1, err := b.Open(ctx, st, secret)
		if err != nil {
			t.Fatal(err)
		}
		sealed := seal(t, s1, "enigm/test/kek")
		if err := s1.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := s1.Unseal(ctx, "enigm/test/kek", sealed); !errors.Is(err, backend.ErrClosed) {
			t.Fatalf("closed session: err = %v, want ErrClosed", err)
		}
		s2 := open(t, b, st)
		if got, err := s2.Unseal(ctx, "enigm/test/kek", sealed); err != nil || !bytes.Equal(got, key32) {
			t.Fatalf("after reopen: %x, %v", got, err)
		}
	})

	t.Run("CorruptState", func(t *testing.T) {
		b := newBackend(t)
		st := provision(t, b)
		for _, i := range positions(len(st)) {
			bad := bytes.Clone(st)
			bad[i] ^= 0xff
			s, err := b.Open(ctx, bad, secret)
			if err != nil {
				continue // refused: fine
			}
			// Accepted: then it must not unseal with changed protection.
			good := mustSealWithGoodSession(t, b, st, secret, key32)
			got, err := s.Unseal(ctx, "enigm/test/kek", good)
			s.Close()
			if err == nil && !bytes.Equal(got, key32) {
				t.Fatalf("corrupt state byte %d unsealed different plaintext", i)
			}
		}
		for _, n := range []int{0, 1, len(st) / 2} {
			if s, err := b.Open(ctx, st[:n], secret); err == nil {
				s.Close()
				t.Fatalf("state truncated to %d bytes opened", n)
			}
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		_, s := fresh(t)
		sealed := seal(t, s, "enigm/test/kek")
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := s.Unseal(ctx, "enigm/test/kek", sealed)
				if err == nil && !bytes.Equal(got, key32) {
					err = errors.New("wrong plaintext")
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("BindingKey", func(t *testing.T) {
		b := newBackend(t)
		caps := b.Capabilities()
		st := provision(t, b)
		s := open(t, b, st)
		bk, ok := s.(backend.BindingKeys)
		if !caps.Holds(backend.AlgP256) {
			if ok {
				t.Fatal("session offers binding keys but capabilities do not list ecdsa-p256")
			}
			t.Skip("backend holds no P-256 keys") // a capability, not a missing component
		}
		if !ok {
			t.Fatal("capabilities list ecdsa-p256 but the session has no BindingKeys")
		}
		blob, key, err := bk.CreateBindingKey(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, isSoft := key.(*ecdsa.PrivateKey); isSoft {
			t.Fatal("binding key is an exportable in-memory ecdsa.PrivateKey")
		}
		pub, ok := key.Public().(*ecdsa.PublicKey)
		if !ok {
			t.Fatalf("binding key public is %T", key.Public())
		}
		digest := sha256.Sum256([]byte("bind"))
		sig, err := key.Sign(nil, digest[:], crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if !ecdsa.VerifyASN1(pub, digest[:], sig) {
			t.Fatal("binding key signature does not verify")
		}
		s.Close()
		s2 := open(t, b, st)
		key2, err := s2.(backend.BindingKeys).LoadBindingKey(ctx, blob)
		if err != nil {
			t.Fatal(err)
		}
		if !key2.Public().(*ecdsa.PublicKey).Equal(pub) {
			t.Fatal("reloaded binding key has another public key")
		}
	})

	t.Run("Destroy", func(t *testing.T) {
		b := newBackend(t)
		st := provision(t, b)
		s := open(t, b, st)
		sealed := seal(t, s, "enigm/test/kek")
		s.Close()
		if err := b.Destroy(ctx, st); err != nil {
			t.Fatalf("Destroy: %v", err)
		}
		if !b.Capabilities().Enforces(backend.GateDestroy) {
			return // software: the keystore deletes its copies; nothing more is possible
		}
		s2, err := b.Open(ctx, st, secret)
		if err == nil {
			_, err = s2.Unseal(ctx, "enigm/test/kek", sealed)
			s2.Close()
		}
		if err == nil {
			t.Fatal("a copy of the state unsealed after Destroy")
		}
	})
}

func mustSealWithGoodSession(t *testing.T, b backend.Backend, st, secret, pt []byte) []byte {
	t.Helper()
	s, err := b.Open(context.Background(), st, secret)
	if err != nil {
		t.Fatalf("Open with the right secret: %v", err)
	}
	defer s.Close()
	sealed, err := s.Seal(context.Background(), "enigm/test/kek", pt)
	if err != nil {
		t.Fatal(err)
	}
	return sealed
}

// positions returns byte positions to tamper with: all of a short input,
// a spread of a long one.
func positions(n int) []int {
	if n <= 96 {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out
	}
	var out []int
	for i := 0; i < 32; i++ {
		out = append(out, i, n-1-i)
	}
	for i := 32; i < n-32; i += max(1, (n-64)/32) {
		out = append(out, i)
	}
	return out
}
