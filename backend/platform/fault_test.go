package platform

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/platform/bridge"
	"github.com/enigm/enigm/backend/platform/simulated"
	"github.com/enigm/enigm/internal/testkit"
)

// faulty is a bridge that misbehaves in one way, after arming.
type faulty struct {
	bridge.Hardware
	armed bool
	fault string
}

func (f *faulty) GenerateKey(s *bridge.KeySpec) (*bridge.Key, error) {
	k, err := f.Hardware.GenerateKey(s)
	if err != nil || !f.armed {
		return k, err
	}
	c := *k
	switch f.fault {
	case "level":
		c.SecurityLevel = bridge.LevelSoftware
	case "alias":
		c.Alias += "x"
	case "point":
		c.PublicKey = bytes.Clone(c.PublicKey)
		c.PublicKey[64] ^= 1
	case "nil":
		return nil, nil
	}
	return &c, nil
}

func (f *faulty) Sign(a string, d []byte) ([]byte, error) {
	sig, err := f.Hardware.Sign(a, d)
	if err == nil && f.armed && f.fault == "signature" {
		other := sha256.Sum256(d)
		return f.Hardware.Sign(a, other[:])
	}
	return sig, err
}

func (f *faulty) Decrypt(a string, c, ad []byte) ([]byte, error) {
	pt, err := f.Hardware.Decrypt(a, c, ad)
	if err == nil && f.armed {
		switch f.fault {
		case "plaintext":
			pt[len(pt)-1] ^= 1
		case "short":
			pt = pt[:len(pt)-1]
		}
	}
	return pt, err
}

func (f *faulty) Encrypt(a string, p, ad []byte) ([]byte, error) {
	ct, err := f.Hardware.Encrypt(a, p, ad)
	if err == nil && f.armed && f.fault == "short" {
		ct = ct[:len(ct)-1]
	}
	return ct, err
}

func (f *faulty) Agree(a string, p []byte) ([]byte, error) {
	z, err := f.Hardware.Agree(a, p)
	if err == nil && f.armed && f.fault == "secret" {
		z = z[:16]
	}
	return z, err
}

func (f *faulty) Info() (*bridge.Info, error) {
	if f.fault == "info" {
		return nil, errors.New("the app's bridge crashed")
	}
	if f.fault == "level-name" {
		return &bridge.Info{SecurityLevel: "titanium", AES: true}, nil
	}
	return f.Hardware.Info()
}

// What the hardware returns is checked: a wrong signature, plaintext,
// length or key description is ErrHardwareFault, never passed on.
func TestHardwareFaults(t *testing.T) {
	setup := func(t *testing.T, p simulated.Profile, fault string) (*faulty, *Backend, backend.Session, []byte) {
		f := &faulty{Hardware: newDevice(p), fault: fault}
		b := newBackend(t, f, withAuth)
		s := open(t, b, provision(t, b))
		sealed, err := s.Seal(bg, "l", bytes.Repeat([]byte{7}, 32))
		if err != nil {
			t.Fatal(err)
		}
		f.armed = true
		return f, b, s, sealed
	}
	sb, se := simulated.StrongBox(0), simulated.SecureEnclave()
	t.Run("wrong plaintext", func(t *testing.T) {
		_, _, s, sealed := setup(t, sb, "plaintext")
		if _, err := s.Unseal(bg, "l", sealed); !errors.Is(err, backend.ErrHardwareFault) || !errors.Is(err, backend.ErrSealedData) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("wrong plaintext length", func(t *testing.T) {
		_, _, s, sealed := setup(t, sb, "short")
		if _, err := s.Unseal(bg, "l", sealed); !errors.Is(err, backend.ErrHardwareFault) {
			t.Fatalf("Unseal: err = %v", err)
		}
		if _, err := s.Seal(bg, "l", []byte("k")); !errors.Is(err, backend.ErrHardwareFault) {
			t.Fatalf("Seal: err = %v", err)
		}
	})
	t.Run("wrong ECDH secret", func(t *testing.T) {
		_, _, s, sealed := setup(t, se, "secret")
		if _, err := s.Unseal(bg, "l", sealed); !errors.Is(err, backend.ErrHardwareFault) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("wrong signature", func(t *testing.T) {
		f, _, s, _ := setup(t, se, "")
		_, key := testkit.BindingKey(t, s)
		f.fault = "signature"
		d := sha256.Sum256([]byte("m"))
		if sig, err := key.Sign(nil, d[:], crypto.SHA256); !errors.Is(err, backend.ErrHardwareFault) {
			t.Fatalf("sig %x, err = %v", sig, err)
		}
		if _, _, err := s.(backend.BindingKeys).CreateBindingKey(bg); !errors.Is(err, backend.ErrHardwareFault) {
			t.Fatalf("CreateBindingKey: err = %v", err)
		}
	})
	for _, fault := range []string{"level", "alias", "point", "nil"} {
		t.Run("generated key "+fault, func(t *testing.T) {
			d := newDevice(se)
			f := &faulty{Hardware: d, fault: fault, armed: true}
			b := newBackend(t, f, withAuth)
			if _, err := b.Provision(bg, secret); !errors.Is(err, backend.ErrHardwareFault) {
				t.Fatalf("Provision: err = %v", err)
			}
			if n := d.KeyCount(); n != 0 {
				t.Fatalf("a refused key stayed in the hardware (%d keys)", n)
			}
		})
	}
	t.Run("info", func(t *testing.T) {
		if _, err := New(&faulty{Hardware: newDevice(sb), fault: "info"}, withAuth); !errors.Is(err, backend.ErrUnavailable) {
			t.Fatalf("err = %v", err)
		}
		if _, err := New(&faulty{Hardware: newDevice(sb), fault: "level-name"}, withAuth); !errors.Is(err, backend.ErrUnavailable) {
			t.Fatalf("err = %v", err)
		}
		if _, err := New(nil, withAuth); !errors.Is(err, backend.ErrUnavailable) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestRefusalMapping(t *testing.T) {
	for _, tc := range []struct {
		err  error
		gate backend.Gate
		is   error
	}{
		{bridge.Refuse(bridge.CodeDeviceLocked, "x"), backend.GateDeviceUnlocked, backend.ErrGate},
		{errors.New("NSError: enigm-bridge/auth_required: cancelled"), backend.GateUserPresence, backend.ErrGate},
		{errors.New("enigm-bridge/key_invalidated"), "", ErrKeyInvalidated},
		{errors.New("java.lang.Exception: enigm-bridge/key_not_found: gone"), "", backend.ErrDestroyed},
		{errors.New("enigm-bridge/bad_data: tag"), "", backend.ErrSealedData},
		{errors.New("enigm-bridge/unsupported"), "", ErrUnsupported},
		{errors.New("enigm-bridge/unavailable"), "", backend.ErrUnavailable},
		// Not a code of ours, or a code followed by more letters: unavailable.
		{errors.New("enigm-bridge/device_locked_or_not"), "", backend.ErrUnavailable},
		{errors.New("device_locked"), "", backend.ErrUnavailable},
		{errors.New("KeyStoreException"), "", backend.ErrUnavailable},
	} {
		got := bridgeErr("op", tc.err)
		if testkit.GateOf(got) != tc.gate || !errors.Is(got, tc.is) {
			t.Errorf("%q → %v (gate %q)", tc.err, got, testkit.GateOf(got))
		}
	}
	if bridge.RefusalCode(nil) != "" {
		t.Fatal("nil has a code")
	}
}
