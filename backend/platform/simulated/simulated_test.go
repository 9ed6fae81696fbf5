package simulated

import (
	"bytes"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/enigm/enigm/backend/platform/bridge"
	"github.com/enigm/enigm/internal/testkit"
)

func code(err error) string { return bridge.RefusalCode(err) }

func gen(t *testing.T, d *Device, s bridge.KeySpec) *bridge.Key {
	t.Helper()
	k, err := d.GenerateKey(&s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// The Secure Enclave holds P-256 keys only: no AES, nothing else.
func TestSecureEnclaveAlgorithms(t *testing.T) {
	d := New(SecureEnclave())
	for _, s := range []bridge.KeySpec{
		{Alias: "a", Algorithm: bridge.AlgAES256, Encrypt: true},
		{Alias: "b", Algorithm: "rsa2048", Sign: true},
		{Alias: "c", Algorithm: bridge.AlgP256, Encrypt: true},
		{Alias: "d", Algorithm: bridge.AlgP256},
		{Alias: "e", Algorithm: bridge.AlgP256, Sign: true, DataProtection: "always"},
		{Alias: "f", Algorithm: bridge.AlgP256, Sign: true, UnlockedOnly: true, DataProtection: bridge.ProtectionAfterFirstUnlock},
		{Alias: "g", Algorithm: bridge.AlgP256, Sign: true, Auth: bridge.AuthBiometric, AuthValiditySeconds: 301},
		{Alias: "", Algorithm: bridge.AlgP256, Sign: true},
	} {
		if _, err := d.GenerateKey(&s); code(err) != bridge.CodeUnsupported && code(err) != bridge.CodeBadData {
			t.Errorf("spec %+v: err = %v", s, err)
		}
	}
	if _, err := d.GenerateKey(nil); code(err) != bridge.CodeBadData {
		t.Errorf("nil spec: %v", err)
	}
	gen(t, d, bridge.KeySpec{Alias: "ok", Algorithm: bridge.AlgP256, Sign: true, Agree: true})
	if _, err := d.GenerateKey(&bridge.KeySpec{Alias: "ok", Algorithm: bridge.AlgP256, Sign: true}); code(err) != bridge.CodeUnsupported {
		t.Errorf("existing alias: %v", err)
	}
	if _, err := d.Encrypt("ok", []byte("x"), nil); code(err) != bridge.CodeUnsupported {
		t.Errorf("encrypt with an EC key: %v", err)
	}
	if _, err := d.Attest("ok"); code(err) != bridge.CodeUnsupported {
		t.Errorf("SE attestation: %v", err)
	}
}

// StrongBox holds P-256 signing keys and AES-256 keys; purposes are
// enforced.
func TestStrongBoxAlgorithms(t *testing.T) {
	d := New(StrongBox(0))
	if _, err := d.GenerateKey(&bridge.KeySpec{Alias: "x", Algorithm: bridge.AlgP256, Agree: true}); code(err) != bridge.CodeUnsupported {
		t.Errorf("agree key: %v", err)
	}
	gen(t, d, bridge.KeySpec{Alias: "aes", Algorithm: bridge.AlgAES256, Encrypt: true})
	gen(t, d, bridge.KeySpec{Alias: "ec", Algorithm: bridge.AlgP256, Sign: true})
	ct, err := d.Encrypt("aes", []byte("hello"), []byte("ad"))
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := d.Decrypt("aes", ct, []byte("ad")); err != nil || string(pt) != "hello" {
		t.Fatalf("%q, %v", pt, err)
	}
	if _, err := d.Decrypt("aes", ct, []byte("other")); code(err) != bridge.CodeBadData {
		t.Fatalf("wrong AD: %v", err)
	}
	if _, err := d.Decrypt("aes", ct[:20], nil); code(err) != bridge.CodeBadData {
		t.Fatalf("short: %v", err)
	}
	if _, err := d.Sign("aes", make([]byte, 32)); code(err) != bridge.CodeUnsupported {
		t.Fatalf("sign with AES: %v", err)
	}
	if _, err := d.Encrypt("ec", nil, nil); code(err) != bridge.CodeUnsupported {
		t.Fatalf("encrypt with EC: %v", err)
	}
	if _, err := d.Sign("ec", make([]byte, 20)); code(err) != bridge.CodeBadData {
		t.Fatalf("short digest: %v", err)
	}
	if _, err := d.Sign("nope", make([]byte, 32)); code(err) != bridge.CodeKeyNotFound {
		t.Fatalf("missing key: %v", err)
	}
	if k, err := d.KeyInfo("aes"); err != nil || len(k.PublicKey) != 0 || k.SecurityLevel != bridge.LevelStrongBox {
		t.Fatalf("%+v %v", k, err)
	}
}

// No bridge output ever contains a key's private material.
func TestKeysNeverLeave(t *testing.T) {
	for _, p := range []Profile{SecureEnclave(), StrongBox(0)} {
		d := New(p)
		var secrets [][]byte
		spec := bridge.KeySpec{Alias: "ec", Algorithm: bridge.AlgP256, Sign: true, Agree: p.Agree, AttestationChallenge: []byte("challenge")}
		gen(t, d, spec)
		secrets = append(secrets, d.keys["ec"].ecdh.Bytes())
		var outputs [][]byte
		collect := func(b []byte, _ error) { outputs = append(outputs, b) }
		if p.AES {
			gen(t, d, bridge.KeySpec{Alias: "aes", Algorithm: bridge.AlgAES256, Encrypt: true})
			collect(d.Encrypt("aes", make([]byte, 64), nil))
			ct, _ := d.Encrypt("aes", []byte("x"), nil)
			collect(d.Decrypt("aes", ct, nil))
		}
		digest := sha256.Sum256([]byte("m"))
		collect(d.Sign("ec", digest[:]))
		if p.Agree {
			peer := New(p)
			pk := gen(t, peer, bridge.KeySpec{Alias: "p", Algorithm: bridge.AlgP256, Agree: true})
			collect(d.Agree("ec", pk.PublicKey))
		}
		collect(d.Attest("ec"))
		for _, a := range []string{"ec", "aes"} {
			if k, err := d.KeyInfo(a); err == nil {
				outputs = append(outputs, k.PublicKey, []byte(k.Alias))
			}
		}
		info, _ := d.Info()
		outputs = append(outputs, []byte(info.Platform))
		for _, out := range outputs {
			for _, s := range secrets {
				if len(out) > 0 && bytes.Contains(out, s) {
					t.Fatalf("%s: a bridge output contains the private key", p.Level)
				}
			}
		}
	}
}

func TestLockAndDataProtection(t *testing.T) {
	d := New(SecureEnclave())
	gen(t, d, bridge.KeySpec{Alias: "wu", Algorithm: bridge.AlgP256, Sign: true}) // default: WhenUnlocked
	gen(t, d, bridge.KeySpec{Alias: "afu", Algorithm: bridge.AlgP256, Sign: true, DataProtection: bridge.ProtectionAfterFirstUnlock})
	gen(t, d, bridge.KeySpec{Alias: "wps", Algorithm: bridge.AlgP256, Sign: true, DataProtection: bridge.ProtectionWhenPasscodeSet})
	dg := make([]byte, 32)
	d.Lock()
	if !d.Locked() {
		t.Fatal("not locked")
	}
	for alias, want := range map[string]string{"wu": bridge.CodeDeviceLocked, "afu": "", "wps": bridge.CodeDeviceLocked} {
		if _, err := d.Sign(alias, dg); code(err) != want {
			t.Errorf("%s while locked: %v", alias, err)
		}
	}
	d.Reboot()
	if _, err := d.Sign("afu", dg); code(err) != bridge.CodeDeviceLocked {
		t.Errorf("AfterFirstUnlock before the first unlock: %v", err)
	}
	d.Unlock()
	for _, alias := range []string{"wu", "afu", "wps"} {
		if _, err := d.Sign(alias, dg); err != nil {
			t.Errorf("%s unlocked: %v", alias, err)
		}
	}
	// Removing the passcode deletes WhenPasscodeSet keys, and new keys
	// cannot require an unlocked device or authentication.
	d.RemovePasscode()
	if _, err := d.Sign("wps", dg); code(err) != bridge.CodeKeyNotFound {
		t.Errorf("WhenPasscodeSet key after passcode removal: %v", err)
	}
	if _, err := d.GenerateKey(&bridge.KeySpec{Alias: "n", Algorithm: bridge.AlgP256, Sign: true, UnlockedOnly: true}); code(err) != bridge.CodeUnsupported {
		t.Errorf("unlocked-only key without passcode: %v", err)
	}
	// StrongBox: unlocked-device-required keys.
	sb := New(StrongBox(0))
	gen(t, sb, bridge.KeySpec{Alias: "u", Algorithm: bridge.AlgAES256, Encrypt: true, UnlockedOnly: true})
	gen(t, sb, bridge.KeySpec{Alias: "any", Algorithm: bridge.AlgAES256, Encrypt: true})
	sb.Lock()
	if _, err := sb.Encrypt("u", nil, nil); code(err) != bridge.CodeDeviceLocked {
		t.Errorf("StrongBox unlocked-only while locked: %v", err)
	}
	if _, err := sb.Encrypt("any", nil, nil); err != nil {
		t.Errorf("StrongBox key without the restriction: %v", err)
	}
}

func TestAuthentication(t *testing.T) {
	d := New(StrongBox(0))
	gen(t, d, bridge.KeySpec{Alias: "bio30", Algorithm: bridge.AlgAES256, Encrypt: true, Auth: bridge.AuthBiometric, AuthValiditySeconds: 30})
	gen(t, d, bridge.KeySpec{Alias: "peruse", Algorithm: bridge.AlgAES256, Encrypt: true, Auth: bridge.AuthBiometric | bridge.AuthDeviceCredential})
	use := func(alias string) string { _, err := d.Encrypt(alias, nil, nil); return code(err) }
	if c := use("bio30"); c != bridge.CodeAuthRequired {
		t.Fatalf("no authentication: %q", c)
	}
	d.UnlockWith(bridge.AuthDeviceCredential)
	if c := use("bio30"); c != bridge.CodeAuthRequired {
		t.Fatalf("a credential for a biometric-only key: %q", c)
	}
	d.Authenticate(bridge.AuthBiometric)
	if c := use("bio30"); c != "" {
		t.Fatalf("fresh biometric: %q", c)
	}
	d.Advance(31 * time.Second)
	if c := use("bio30"); c != bridge.CodeAuthRequired {
		t.Fatalf("after the window: %q", c)
	}
	d.AuthenticateAt(bridge.AuthBiometric, d.Now().Add(time.Hour))
	if c := use("bio30"); c != bridge.CodeAuthRequired {
		t.Fatalf("an authentication in the future: %q", c)
	}
	d.Authenticate(bridge.AuthDeviceCredential)
	if c := use("peruse"); c != "" {
		t.Fatalf("per-use key after authentication: %q", c)
	}
	if c := use("peruse"); c != bridge.CodeAuthRequired {
		t.Fatalf("per-use key used twice: %q", c)
	}
	d.Authenticate(bridge.AuthBiometric)
	d.Lock()
	//lint:ignore SA2001 Lock and Unlock are the simulated phone's screen lock, not a mutex: locking and unlocking is the test
	d.Unlock()
	if c := use("peruse"); c != bridge.CodeAuthRequired {
		t.Fatalf("a per-use authentication survived a lock: %q", c)
	}
	d.Authenticate(bridge.AuthBiometric)
	d.ChangeBiometrics()
	if c := use("bio30"); c != bridge.CodeKeyInvalidated {
		t.Fatalf("biometric-only key after re-enrolment: %q", c)
	}
	d.Authenticate(bridge.AuthBiometric)
	if c := use("peruse"); c != "" {
		t.Fatalf("biometric-or-credential key after re-enrolment: %q", c)
	}
}

// StrongBox is slow: every operation waits the injected delay, one at a
// time.
func TestDelay(t *testing.T) {
	d := New(StrongBox(20 * time.Millisecond))
	gen(t, d, bridge.KeySpec{Alias: "k", Algorithm: bridge.AlgAES256, Encrypt: true})
	start := time.Now()
	done := make(chan struct{})
	for i := 0; i < 2; i++ {
		go func() { d.Encrypt("k", nil, nil); done <- struct{}{} }()
	}
	<-done
	<-done
	if el := time.Since(start); el < 40*time.Millisecond {
		t.Fatalf("two operations took %v, want at least 2×20ms", el)
	}
	d.SetDelay(0)
	start = time.Now()
	d.Encrypt("k", nil, nil)
	if el := time.Since(start); el > 15*time.Millisecond {
		t.Fatalf("no delay, still took %v", el)
	}
	if d.Calls() != 4 {
		t.Fatalf("%d calls counted, want 4", d.Calls())
	}
}

func TestDeleteKeys(t *testing.T) {
	d := New(StrongBox(0))
	for _, a := range []string{"s1.a", "s1.b", "s2.a"} {
		gen(t, d, bridge.KeySpec{Alias: a, Algorithm: bridge.AlgAES256, Encrypt: true})
	}
	if n, err := d.DeleteKeys("s1."); n != 2 || err != nil {
		t.Fatalf("%d, %v", n, err)
	}
	if _, err := d.DeleteKeys(""); code(err) != bridge.CodeBadData {
		t.Fatalf("empty prefix: %v", err)
	}
	testkit.NoErr(t, d.DeleteKey("missing"))
	if d.KeyCount() != 1 {
		t.Fatal("wrong keys deleted")
	}
}
