package mobile

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/enigm/enigm/backend/platform/bridge"
	"github.com/enigm/enigm/backend/platform/simulated"
	"github.com/enigm/enigm/internal/testkit"
)

var secret = []byte("app secret")

func testConfig() *Config {
	c := NewConfig()
	k := testkit.FastKDF
	c.KDFTime, c.KDFMemoryKiB, c.KDFThreads = int(k.Time), int(k.MemoryKiB), int(k.Threads)
	return c
}

type phone struct {
	dev  *simulated.Device
	ks   *Keystore
	home string
	cfg  *Config
}

func newPhone(t *testing.T, p simulated.Profile, cfg *Config) *phone {
	t.Helper()
	d := simulated.New(p)
	d.Authenticate(bridge.AuthBiometric)
	home := filepath.Join(t.TempDir(), "enigm")
	ks, err := Init(home, d, secret, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	ks.SetAppAuthorized(true)
	testkit.NoErr(t, ks.SetPosture("trusted", ""))
	ks.UserAuthenticated("biometric")
	return &phone{dev: d, ks: ks, home: home, cfg: cfg}
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if ErrorCode(err) != code {
		t.Fatalf("err = %v, want code %q", err, code)
	}
	if !strings.HasPrefix(err.Error(), "enigm/"+code) {
		t.Fatalf("message %q does not start with the code", err)
	}
	// The code survives the language boundary, where only the message is left.
	if got := ErrorCode(errors.New("NSError: " + err.Error())); got != code {
		t.Fatalf("code from the message alone: %q", got)
	}
}

func TestKeysOnPhones(t *testing.T) {
	for _, p := range []simulated.Profile{simulated.SecureEnclave(), simulated.StrongBox(0)} {
		t.Run(p.Level, func(t *testing.T) {
			ph := newPhone(t, p, testConfig())
			st, err := ph.ks.Status()
			if err != nil {
				t.Fatal(err)
			}
			if st.Protection != "hardware-platform" || st.SecurityLevel != p.Level || st.Locked ||
				!strings.Contains(st.Gates, "device_unlocked") || !strings.Contains(st.Gates, "user_presence") {
				t.Fatalf("status %+v", st)
			}
			for _, alg := range []string{"", "ed25519"} {
				id, err := ph.ks.Generate("identity", alg, "")
				if err != nil {
					t.Fatal(err)
				}
				sig, err := ph.ks.Sign(id[:8], "hello", []byte("msg"))
				if err != nil {
					t.Fatal(err)
				}
				info, err := ph.ks.Key(id)
				if err != nil {
					t.Fatal(err)
				}
				if err := Verify(info.Algorithm, info.Public, "hello", []byte("msg"), sig); err != nil {
					t.Fatalf("%s: %v", info.Algorithm, err)
				}
				if Verify(info.Algorithm, info.Public, "other", []byte("msg"), sig) == nil {
					t.Fatal("verifies under another purpose")
				}
			}
			kem, err := ph.ks.Generate("kem", "", "messaging_setup")
			if err != nil {
				t.Fatal(err)
			}
			info, _ := ph.ks.Key(kem)
			ct, err := SealTo(info.Public, []byte("i"), []byte("secret message"))
			if err != nil {
				t.Fatal(err)
			}
			_, err = ph.ks.KEMOpen(kem, []byte("i"), ct)
			wantCode(t, err, CodeDenied) // not associated yet
			if !strings.Contains(err.Error(), "not_associated") {
				t.Fatalf("reasons missing: %v", err)
			}
			testkit.NoErr(t, ph.ks.SetAssociation("associated", []byte("acct")))
			if pt, err := ph.ks.KEMOpen(kem, []byte("i"), ct); err != nil || string(pt) != "secret message" {
				t.Fatalf("%q, %v", pt, err)
			}
			if _, err := ph.ks.Generate("session", "", ""); err != nil {
				t.Fatal(err)
			}

			pub, err := ph.ks.BindingPublicKey()
			if err != nil {
				t.Fatal(err)
			}
			sig, err := ph.ks.BindingSign("greeting", []byte("bind"))
			if err != nil {
				t.Fatal(err)
			}
			if err := BindingVerify(pub, "greeting", []byte("bind"), sig); err != nil {
				t.Fatalf("binding signature: %v", err)
			}
			if BindingVerify(pub, "other", []byte("bind"), sig) == nil {
				t.Fatal("binding signature verifies for another purpose")
			}
			// The hardware signed a purpose-bound digest, never the raw
			// digest of the message.
			d := sha256.Sum256([]byte("bind"))
			if pk, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), pub); err != nil || ecdsa.VerifyASN1(pk, d[:], sig) {
				t.Fatalf("binding signature over the bare digest (%v)", err)
			}

			list, err := ph.ks.List()
			if err != nil {
				t.Fatal(err)
			}
			var js struct {
				Version int
				Keys    []struct {
					ID, Class, Algorithm, State string
					Resident                    bool
				}
			}
			s, err := ph.ks.ListJSON()
			if err != nil {
				t.Fatal(err)
			}
			testkit.NoErr(t, json.Unmarshal([]byte(s), &js))
			if js.Version != 1 || len(js.Keys) != list.Len() || list.Len() != 5 {
				t.Fatalf("list: %d keys, JSON %s", list.Len(), s)
			}
			resident := 0
			for i := 0; i < list.Len(); i++ {
				k, err := list.At(i)
				if err != nil {
					t.Fatal(err)
				}
				if k.ID != js.Keys[i].ID || k.KeyClass != js.Keys[i].Class || k.State != "active" {
					t.Fatalf("key %d: %+v vs %+v", i, k, js.Keys[i])
				}
				if k.Resident {
					resident++
					if k.KeyClass != "binding" {
						t.Fatalf("a %s key is resident", k.KeyClass)
					}
				}
			}
			if resident != 1 {
				t.Fatalf("%d resident keys", resident)
			}
			_, err = list.At(5)
			wantCode(t, err, CodeNotFound)
			_, err = list.At(-1)
			wantCode(t, err, CodeNotFound)
		})
	}
}

func TestPolicyAndErrors(t *testing.T) {
	ph := newPhone(t, simulated.StrongBox(0), testConfig())
	id, _ := ph.ks.Generate("identity", "ed25519", "")
	ph.ks.SetAppAuthorized(false)
	_, err := ph.ks.Sign(id, "p", nil)
	wantCode(t, err, CodeDenied)
	if !strings.Contains(err.Error(), "[app_not_authorized]") {
		t.Fatalf("reasons: %v", err)
	}
	ph.ks.SetAppAuthorized(true)
	testkit.NoErr(t, ph.ks.SetPosture("compromised", "jailbroken, debugger"))
	_, err = ph.ks.Sign(id, "p", nil)
	wantCode(t, err, CodeDenied)
	if !strings.Contains(err.Error(), "posture_insufficient") {
		t.Fatalf("reasons: %v", err)
	}
	wantCode(t, ph.ks.SetPosture("great", ""), CodeUnsupported)
	wantCode(t, ph.ks.SetAssociation("married", nil), CodeUnsupported)
	ph.ks.SetPosture("degraded", "")
	if _, err := ph.ks.Sign(id, "p", nil); err != nil {
		t.Fatal(err)
	}
	_, err = ph.ks.Sign("ffffffffffff", "p", nil)
	wantCode(t, err, CodeNotFound)
	_, err = ph.ks.Generate("binding", "", "")
	wantCode(t, err, CodeUnsupported)
	_, err = ph.ks.Generate("identity", "rsa", "")
	wantCode(t, err, CodeUnsupported)
	_, err = ph.ks.Generate("identity", "", "birthday")
	wantCode(t, err, CodeUnsupported)
	wantCode(t, Verify("rsa", nil, "p", nil, nil), CodeUnsupported)
	if ErrorCode(nil) != "" || ErrorCode(errors.New("enigm/nonsense: x")) != "" {
		t.Fatal("codes made up")
	}

	// Rotation and revocation of one key.
	nid, err := ph.ks.Rotate(id)
	if err != nil {
		t.Fatal(err)
	}
	if k, _ := ph.ks.Key(id); k.State != "superseded" {
		t.Fatalf("old key %+v", k)
	}
	testkit.NoErr(t, ph.ks.RevokeKey(nid))
	_, err = ph.ks.Sign(nid, "p", nil)
	wantCode(t, err, CodeDenied)

	// Wrong secret, then the right one after reopening.
	ph.ks.Close()
	ks, err := Open(ph.home, ph.dev, ph.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ph.ks = ks
	defer ks.Close()
	wantCode(t, ks.Unlock([]byte("wrong")), CodeBadSecret)
	testkit.NoErr(t, ks.Unlock(secret))
	if !Exists(ph.home) || Exists(filepath.Join(ph.home, "nope")) {
		t.Fatal("Exists")
	}
	_, err = Open(filepath.Join(t.TempDir(), "none"), ph.dev, ph.cfg)
	wantCode(t, err, CodeNotFound)
	// A store opened with other access control than it was made with
	// does not unlock: the gates it would report are not its keys'.
	ks.Close()
	weaker := testConfig()
	weaker.UserAuth = 0
	other, err := Open(ph.home, ph.dev, weaker)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Unlock(secret); err == nil {
		t.Fatal("unlocked with other access control")
	}
	other.Close()
	bad := testConfig()
	bad.KDFMemoryKiB = -1
	_, err = Init(filepath.Join(t.TempDir(), "x"), ph.dev, secret, bad)
	wantCode(t, err, CodeUnsupported)
	bad = testConfig()
	bad.UserAuth = 8
	_, err = Init(filepath.Join(t.TempDir(), "x"), ph.dev, secret, bad)
	if err == nil {
		t.Fatal("unknown authentication kinds accepted")
	}
}

// The device lock: the keystore locks with the device, and the hardware
// refuses to unlock it again until the device is unlocked.
func TestDeviceLock(t *testing.T) {
	ph := newPhone(t, simulated.StrongBox(0), testConfig())
	id, _ := ph.ks.Generate("identity", "ed25519", "")
	ph.dev.Lock()
	testkit.NoErr(t, ph.ks.SetDeviceLocked(true))
	_, err := ph.ks.Sign(id, "p", nil)
	wantCode(t, err, CodeDenied)
	if !strings.Contains(err.Error(), "locked") {
		t.Fatal(err)
	}
	wantCode(t, ph.ks.Unlock(secret), CodeDeviceLocked)
	ph.dev.UnlockWith(bridge.AuthBiometric)
	testkit.NoErr(t, ph.ks.SetDeviceLocked(false))
	testkit.NoErr(t, ph.ks.Unlock(secret))
	ph.ks.UserAuthenticated("biometric")
	if _, err := ph.ks.Sign(id, "p", nil); err != nil {
		t.Fatal(err)
	}
	// The hardware's window lapsed: unlocking needs a new authentication.
	ph.ks.Lock()
	ph.dev.Advance(time.Minute + time.Second)
	wantCode(t, ph.ks.Unlock(secret), CodeAuthRequired)
	ph.dev.Authenticate(bridge.AuthDeviceCredential)
	testkit.NoErr(t, ph.ks.Unlock(secret))
	// CheckHardware notices a locked device without the app's signal.
	ph.dev.Lock()
	wantCode(t, ph.ks.CheckHardware(), CodeDeviceLocked)
	if st, _ := ph.ks.Status(); !st.Locked {
		t.Fatal("not locked after CheckHardware")
	}
}

// With AllowLocked, keys stay usable while the device is locked
// (background work), and the device_unlocked gate is not claimed.
func TestAllowLocked(t *testing.T) {
	cfg := testConfig()
	cfg.AllowLocked, cfg.UserAuth, cfg.AuthValiditySeconds = true, 0, 0
	ph := newPhone(t, simulated.SecureEnclave(), cfg)
	id, _ := ph.ks.Generate("identity", "ed25519", "")
	ph.dev.Lock()
	testkit.NoErr(t, ph.ks.SetDeviceLocked(true))
	if _, err := ph.ks.Sign(id, "p", nil); err != nil {
		t.Fatal(err)
	}
	ph.ks.Lock()
	if err := ph.ks.Unlock(secret); err != nil {
		t.Fatalf("unlock while locked, AfterFirstUnlock: %v", err)
	}
	st, _ := ph.ks.Status()
	if strings.Contains(st.Gates, "device_unlocked") || strings.Contains(st.Gates, "user_presence") {
		t.Fatalf("gates %q", st.Gates)
	}
}

// A biometric-only store dies with a new enrolment; revocation deletes the
// hardware keys.
func TestInvalidationAndRevocation(t *testing.T) {
	cfg := testConfig()
	cfg.UserAuth = bridge.AuthBiometric
	ph := newPhone(t, simulated.SecureEnclave(), cfg)
	ph.ks.Lock()
	ph.dev.ChangeBiometrics()
	ph.dev.Authenticate(bridge.AuthBiometric)
	wantCode(t, ph.ks.Unlock(secret), CodeKeyInvalidated)

	ph2 := newPhone(t, simulated.StrongBox(0), testConfig())
	testkit.NoErr(t, ph2.ks.RevokeDevice("lost"))
	if ph2.dev.KeyCount() != 0 {
		t.Fatalf("%d hardware keys after revocation", ph2.dev.KeyCount())
	}
	wantCode(t, ph2.ks.Unlock(secret), CodeRevoked)
	st, _ := ph2.ks.Status()
	if !st.Revoked {
		t.Fatal("status not revoked")
	}
}
