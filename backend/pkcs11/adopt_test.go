//go:build cgo

package pkcs11

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	p11 "github.com/miekg/pkcs11"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/backendtest"
	"github.com/enigm/enigm/backend/pkcs11/pkcs11test"
)

// A store on a key the user made with an outside tool (a PIV slot's key,
// made with ykman or yubico-piv-tool; here OpenSC's pkcs11-tool on the
// EC-only SoftHSM2 module), adopted by its CKA_ID.

var setupAdopted = &setup{pkcs11test.ECAdopted, schemeECDHAdopted}

// adoptedToken is a fresh EC-only token on which pkcs11-tool made a P-256
// key pair with CKA_ID 03, and a backend that adopts it.
func adoptedToken(t *testing.T) (string, *Backend) {
	t.Helper()
	su := setupAdopted
	su.Need(t)
	label := su.Token(t)
	return label, su.backend(t, Options{TokenLabel: label, AdoptKeyID: su.AdoptID}, nil)
}

// tokenObjects counts every object on the token a logged-in session sees.
func tokenObjects(t *testing.T, su *pkcs11test.Setup, label string) int {
	t.Helper()
	ctx, sh, done := su.Session(t, label)
	defer done()
	if err := ctx.FindObjectsInit(sh, nil); err != nil {
		t.Fatal(err)
	}
	defer ctx.FindObjectsFinal(sh)
	hs, _, err := ctx.FindObjects(sh, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return len(hs)
}

func TestAdoptedKeyConformance(t *testing.T) {
	label, b := adoptedToken(t)
	su := setupAdopted.Setup
	caps := b.Capabilities()
	if caps.Enforces(backend.GateDestroy) || len(caps.Resident) != 0 {
		t.Fatalf("capabilities of an adopted key: %+v; want no destroy gate and no resident keys", caps)
	}
	if !caps.Enforces(backend.GateUnlockSecret) || !caps.Enforces(backend.GateNonExportable) {
		t.Fatalf("capabilities of an adopted key: %+v; want unlock_secret and non_exportable", caps)
	}
	before := tokenObjects(t, su, label)
	st, err := b.Provision(bg, su.PIN())
	if err != nil {
		t.Fatal(err)
	}
	s := mustState(t, st)
	if s.Scheme != schemeECDHAdopted || !bytes.Equal(s.KeyID, []byte{0x03}) {
		t.Fatalf("state: scheme %d, key id %x; want 4 and 03", s.Scheme, s.KeyID)
	}
	// The point recorded is the one pkcs11-tool's public key object has.
	if out := su.Tool(t, label, "--list-objects", "--type", "pubkey"); !strings.Contains(out, "EC_POINT:   0441"+hex.EncodeToString(s.Public)) {
		t.Fatalf("recorded point %x is not the token's public key:\n%s", s.Public, out)
	}
	sess, err := b.Open(bg, st, su.PIN())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := sess.(backend.BindingKeys); ok {
		t.Fatal("a session on an adopted key offers binding keys (it would generate a key on the token)")
	}
	sealed, err := sess.Seal(bg, "enigm/kek/identity", []byte("wrapping key"))
	if err != nil {
		t.Fatal(err)
	}
	if sealed[0] != sealAdoptedVersion {
		t.Fatalf("sealed data version %d", sealed[0])
	}
	if pt, err := sess.Unseal(bg, "enigm/kek/identity", sealed); err != nil || string(pt) != "wrapping key" {
		t.Fatalf("unseal: %q, %v", pt, err)
	}
	sess.Close()
	// Nothing was created on the token, and Destroy deletes nothing
	// there: the adopted key stays and the state still opens (the
	// backend does not claim the destroy gate).
	if n := tokenObjects(t, su, label); n != before {
		t.Fatalf("the token has %d objects after Provision, Open and Seal; %d before", n, before)
	}
	testNoErr(t, b.Destroy(bg, st))
	testNoErr(t, b.Purge(bg, st, su.PIN()))
	if n := tokenObjects(t, su, label); n != before {
		t.Fatalf("Destroy and Purge changed the token: %d objects, %d before", n, before)
	}
	again, err := b.Open(bg, st, su.PIN())
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := again.Unseal(bg, "enigm/kek/identity", sealed); err != nil || string(pt) != "wrapping key" {
		t.Fatalf("unseal after Destroy: %q, %v (the adopted key stays, as documented)", pt, err)
	}
	again.Close()
	backendtest.RunSecret(t, su.PIN(), func(t *testing.T) backend.Backend {
		return setupAdopted.backend(t, Options{TokenLabel: label, AdoptKeyID: su.AdoptID}, nil)
	})
}

func testNoErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Keys that cannot be adopted are refused with ErrAdoptedKey, a message
// that says why, and nothing created on the token.
func TestAdoptedKeyRefused(t *testing.T) {
	su := setupAdopted.Setup
	for _, tc := range []struct {
		desc  string
		id    []byte
		prep  func(t *testing.T, label string)
		wants []string
	}{
		{"wrong id", []byte{0x09}, nil,
			[]string{"no private key with CKA_ID 09", `id 03 label "adopted by enigm"`}},
		{"two keys with the id", []byte{0x03}, func(t *testing.T, label string) {
			su.Tool(t, label, "--keypairgen", "--key-type", "EC:prime256v1", "--id", "03", "--label", "second")
		}, []string{"2 private keys", "CKA_ID 03"}},
		{"extractable key", []byte{0x05}, func(t *testing.T, label string) {
			su.Tool(t, label, "--keypairgen", "--key-type", "EC:prime256v1", "--id", "05", "--extractable")
		}, []string{"CKA_EXTRACTABLE=01", "can be exported"}},
		{"imported key", []byte{0x06}, func(t *testing.T, label string) {
			k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			testNoErr(t, err)
			der, err := x509.MarshalPKCS8PrivateKey(k)
			testNoErr(t, err)
			f := filepath.Join(t.TempDir(), "key.der")
			testNoErr(t, os.WriteFile(f, der, 0o600))
			su.Tool(t, label, "--write-object", f, "--type", "privkey", "--id", "06")
		}, []string{"CKA_ALWAYS_SENSITIVE=00", "readable once"}},
		{"PIN before every use", []byte{0x08}, func(t *testing.T, label string) {
			su.Tool(t, label, "--keypairgen", "--key-type", "EC:prime256v1", "--id", "08", "--always-auth")
		}, []string{"CKA_ALWAYS_AUTHENTICATE", `PIN policy "once"`}},
		{"no public key or certificate", []byte{0x03}, func(t *testing.T, label string) {
			su.Tool(t, label, "--delete-object", "--type", "pubkey", "--id", "03")
		}, []string{"neither a public key nor a certificate with CKA_ID 03"}},
		{"public key of another key", []byte{0x03}, func(t *testing.T, label string) {
			// The private half of 03 moves to 07; another pair's public
			// half takes its place: the probe derivation catches it.
			su.Tool(t, label, "--type", "pubkey", "--id", "03", "--set-id", "0a")
			su.Tool(t, label, "--keypairgen", "--key-type", "EC:prime256v1", "--id", "07")
			su.Tool(t, label, "--type", "pubkey", "--id", "07", "--set-id", "03")
			su.Tool(t, label, "--type", "privkey", "--id", "07", "--set-id", "0b")
		}, []string{"does not compute ECDH with its public key"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			su.Need(t)
			label := su.Token(t)
			if tc.prep != nil {
				tc.prep(t, label)
			}
			before := tokenObjects(t, su, label)
			b := setupAdopted.backend(t, Options{TokenLabel: label, AdoptKeyID: tc.id}, nil)
			_, err := b.Provision(bg, su.PIN())
			if err == nil {
				t.Fatal("Provision adopted the key")
			}
			if !errors.Is(err, ErrAdoptedKey) {
				t.Fatalf("err = %v, want ErrAdoptedKey", err)
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if n := tokenObjects(t, su, label); n != before {
				t.Fatalf("a refused Provision changed the token: %d objects, %d before", n, before)
			}
		})
	}
	// An RSA key under the id (on the full SoftHSM2 module, which makes
	// RSA keys; it has CKM_ECDH1_DERIVE, so the adoption itself is possible).
	t.Run("RSA key", func(t *testing.T) {
		full := pkcs11test.Full
		full.Need(t)
		label := full.Token(t)
		full.Tool(t, label, "--keypairgen", "--key-type", "rsa:2048", "--id", "03")
		b := setupFull.backend(t, Options{TokenLabel: label, AdoptKeyID: []byte{3}}, nil)
		_, err := b.Provision(bg, full.PIN())
		if !errors.Is(err, ErrAdoptedKey) || !strings.Contains(err.Error(), "is an RSA key, not EC P-256") {
			t.Fatalf("err = %v, want ErrAdoptedKey naming the RSA key", err)
		}
	})
	t.Run("options", func(t *testing.T) {
		su.Need(t)
		label := su.Token(t)
		for _, o := range []Options{
			{TokenLabel: label, AdoptKeyID: make([]byte, maxAdoptIDSize+1)},
			{TokenLabel: label, AdoptKeyID: []byte{3}, Scheme: SchemeAESGCM},
		} {
			if _, err := setupAdopted.backend(t, o, nil).Provision(bg, su.PIN()); err == nil {
				t.Fatalf("Provision with %+v succeeded", o)
			}
		}
	})
}

// A different key put under the adopted id after init (the slot
// regenerated) makes Open fail clearly; nothing is lost: with the
// original key back under the id, the store opens and unseals what it
// sealed before.
func TestAdoptedKeySwapped(t *testing.T) {
	label, b := adoptedToken(t)
	su := setupAdopted.Setup
	st, err := b.Provision(bg, su.PIN())
	if err != nil {
		t.Fatal(err)
	}
	sess, err := b.Open(bg, st, su.PIN())
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := sess.Seal(bg, "L", []byte("kept"))
	testNoErr(t, err)
	sess.Close()

	move := func(from, to string) {
		su.Tool(t, label, "--type", "privkey", "--id", from, "--set-id", to)
		su.Tool(t, label, "--type", "pubkey", "--id", from, "--set-id", to)
	}
	move("03", "09") // the original, out of the way
	su.Tool(t, label, "--keypairgen", "--key-type", "EC:prime256v1", "--id", "03", "--label", "regenerated")
	_, err = b.Open(bg, st, su.PIN())
	if !errors.Is(err, ErrAdoptedKey) || !strings.Contains(err.Error(), "is not the one this store adopted") {
		t.Fatalf("Open with another key under the id: err = %v, want ErrAdoptedKey saying so", err)
	}
	// Only the private half replaced (its old public key left in place):
	// the recorded point still matches, and Unseal fails instead.
	su.Tool(t, label, "--type", "pubkey", "--id", "03", "--set-id", "0a")
	su.Tool(t, label, "--type", "pubkey", "--id", "09", "--set-id", "03")
	if s2, err := b.Open(bg, st, su.PIN()); err == nil {
		_, err = s2.Unseal(bg, "L", sealed)
		s2.Close()
		if !errors.Is(err, backend.ErrSealedData) || !strings.Contains(err.Error(), "was replaced on the token") {
			t.Fatalf("Unseal with the private key replaced: err = %v", err)
		}
	} else if !errors.Is(err, ErrAdoptedKey) {
		t.Fatalf("Open with the private key replaced: err = %v", err)
	}
	su.Tool(t, label, "--type", "privkey", "--id", "03", "--set-id", "0a")
	su.Tool(t, label, "--type", "privkey", "--id", "09", "--set-id", "03")
	sess, err = b.Open(bg, st, su.PIN())
	if err != nil {
		t.Fatalf("Open with the original key back: %v", err)
	}
	defer sess.Close()
	if pt, err := sess.Unseal(bg, "L", sealed); err != nil || string(pt) != "kept" {
		t.Fatalf("Unseal with the original key back: %q, %v", pt, err)
	}
}

// Capabilities of a backend built without Options.AdoptKeyID (a later
// command that only has the module and token) follow the store once an
// adopted store is opened: no destroy gate, no resident keys.
func TestAdoptedCapabilitiesAfterOpen(t *testing.T) {
	label, b := adoptedToken(t)
	su := setupAdopted.Setup
	st, err := b.Provision(bg, su.PIN())
	testNoErr(t, err)
	plain := setupAdopted.backend(t, Options{TokenLabel: label}, nil)
	if !plain.Capabilities().Enforces(backend.GateDestroy) {
		t.Fatal("an EC-only token's backend without AdoptKeyID does not claim destroy (the test premise changed)")
	}
	// From the state alone (a locked keystore's status), before any Open.
	if c := plain.CapabilitiesOf(st); c.Enforces(backend.GateDestroy) || len(c.Resident) != 0 {
		t.Fatalf("CapabilitiesOf an adopted store: %+v", c)
	}
	other, err := plain.Provision(bg, su.PIN()) // a store of scheme 3 on the same token
	testNoErr(t, err)
	if c := plain.CapabilitiesOf(other); !c.Enforces(backend.GateDestroy) {
		t.Fatalf("CapabilitiesOf a p256-ecdh store: %+v", c)
	}
	sess, err := plain.Open(bg, st, su.PIN())
	testNoErr(t, err)
	defer sess.Close()
	if c := plain.Capabilities(); c.Enforces(backend.GateDestroy) || len(c.Resident) != 0 {
		t.Fatalf("after Open of an adopted store: %+v", c)
	}
}

// The ECDH the backend asks a PIV token for: ykcs11 (yubico-piv-tool
// 2.x, ykcs11.c C_DeriveKey and mechanisms.c validate_derive_key_attribute)
// takes CKD_NULL with no shared data and a 65-byte public point, accepts
// in the template only CKA_TOKEN=false, CKA_CLASS=CKO_SECRET_KEY,
// CKA_KEY_TYPE=CKK_GENERIC_SECRET and CKA_EXTRACTABLE=true (others
// ignored), and returns the secret as a session object whose CKA_VALUE
// is readable. The template conn.ecdh sends must satisfy those rules.
func TestECDHTemplateFitsYKCS11(t *testing.T) {
	var got []*p11.Attribute
	var mech []*p11.Mechanism
	rec := func(tk token) token {
		return &deriveRecorder{token: tk, tmpl: &got, mech: &mech}
	}
	su := setupAdopted
	su.Need(t)
	label := su.Token(t)
	b := su.backend(t, Options{TokenLabel: label, AdoptKeyID: su.AdoptID}, rec)
	if _, err := b.Provision(bg, su.PIN()); err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 || len(mech) != 1 || mech[0].Mechanism != p11.CKM_ECDH1_DERIVE {
		t.Fatalf("no ECDH derivation recorded: %v", mech)
	}
	for _, a := range got {
		switch a.Type {
		case p11.CKA_TOKEN:
			if !bytes.Equal(a.Value, []byte{0}) {
				t.Errorf("CKA_TOKEN %x: ykcs11 wants false", a.Value)
			}
		case p11.CKA_EXTRACTABLE:
			if !bytes.Equal(a.Value, []byte{1}) {
				t.Errorf("CKA_EXTRACTABLE %x: ykcs11 wants true", a.Value)
			}
		case p11.CKA_CLASS:
			if v, _ := ulong(a.Value); v != p11.CKO_SECRET_KEY {
				t.Errorf("CKA_CLASS %d: ykcs11 wants CKO_SECRET_KEY", v)
			}
		case p11.CKA_KEY_TYPE:
			if v, _ := ulong(a.Value); v != p11.CKK_GENERIC_SECRET {
				t.Errorf("CKA_KEY_TYPE %d: ykcs11 wants CKK_GENERIC_SECRET", v)
			}
		}
	}
}

type deriveRecorder struct {
	token
	tmpl *[]*p11.Attribute
	mech *[]*p11.Mechanism
}

func (d *deriveRecorder) DeriveKey(sh p11.SessionHandle, m []*p11.Mechanism, base p11.ObjectHandle, a []*p11.Attribute) (p11.ObjectHandle, error) {
	*d.tmpl, *d.mech = a, m
	return d.token.DeriveKey(sh, m, base, a)
}

// ykcs11 keeps one derived-secret object per slot (C_DeriveKey stores the
// secret as slot data and always answers the same handle), so two
// sessions deriving at once would read each other's secret. The backend
// derives one at a time per module: concurrent unseals through two
// sessions on a token double that behaves like that all succeed.
func TestConcurrentDerivationsOnOneSecretObject(t *testing.T) {
	su := setupAdopted
	su.Need(t)
	label := su.Token(t)
	one := &oneSecretObject{}
	b := su.backend(t, Options{TokenLabel: label, AdoptKeyID: su.AdoptID}, func(tk token) token { one.token = tk; return one })
	st, err := b.Provision(bg, su.PIN())
	testNoErr(t, err)
	var sessions []backend.Session
	for range 2 {
		s, err := b.Open(bg, st, su.PIN())
		testNoErr(t, err)
		defer s.Close()
		sessions = append(sessions, s)
	}
	// Two blobs (two ephemeral keys): their ECDH secrets differ.
	var sealed [2][]byte
	for i := range sealed {
		sealed[i], err = sessions[0].Seal(bg, "L", []byte("k"))
		testNoErr(t, err)
	}
	errs := make(chan error, 8)
	for i := range 8 {
		go func() {
			var err error
			for range 5 {
				if _, e := sessions[i%2].Unseal(bg, "L", sealed[i%2]); e != nil {
					err = e
				}
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent unseal: %v", err)
		}
	}
}

// oneSecretObject models ykcs11's derived secret: one object per slot,
// overwritten by every derivation.
type oneSecretObject struct {
	token
	mu   sync.Mutex
	data []byte
}

const secretObject p11.ObjectHandle = 0x7fff0001

func (o *oneSecretObject) DeriveKey(sh p11.SessionHandle, m []*p11.Mechanism, base p11.ObjectHandle, a []*p11.Attribute) (p11.ObjectHandle, error) {
	h, err := o.token.DeriveKey(sh, m, base, a)
	if err != nil {
		return 0, err
	}
	v, err := o.token.GetAttributeValue(sh, h, []*p11.Attribute{p11.NewAttribute(p11.CKA_VALUE, nil)})
	o.token.DestroyObject(sh, h)
	if err != nil {
		return 0, err
	}
	o.mu.Lock()
	o.data = v[0].Value
	o.mu.Unlock()
	time.Sleep(time.Millisecond) // another session's derivation would land here
	return secretObject, nil
}

func (o *oneSecretObject) GetAttributeValue(sh p11.SessionHandle, h p11.ObjectHandle, a []*p11.Attribute) ([]*p11.Attribute, error) {
	if h != secretObject {
		return o.token.GetAttributeValue(sh, h, a)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return []*p11.Attribute{p11.NewAttribute(p11.CKA_VALUE, bytes.Clone(o.data))}, nil
}

func (o *oneSecretObject) DestroyObject(sh p11.SessionHandle, h p11.ObjectHandle) error {
	if h == secretObject {
		return nil
	}
	return o.token.DestroyObject(sh, h)
}

// A derivation the token refuses at Provision (ykcs11 answers
// CKR_FUNCTION_FAILED when the card does; a touch not given, say) is
// reported as such, not as a key mismatch, and adopts nothing.
func TestAdoptedKeyDeriveRefused(t *testing.T) {
	su := setupAdopted
	su.Need(t)
	label := su.Token(t)
	b := su.backend(t, Options{TokenLabel: label, AdoptKeyID: su.AdoptID}, func(tk token) token { return failingDerive{tk} })
	_, err := b.Provision(bg, su.PIN())
	if !errors.Is(err, ErrAdoptedKey) || !strings.Contains(err.Error(), "failed") || strings.Contains(err.Error(), "another key") ||
		strings.Contains(err.Error(), "CKA_DERIVE") {
		t.Fatalf("err = %v, want ErrAdoptedKey saying the ECDH failed", err)
	}
	// A key without CKA_DERIVE (which ykcs11 reports for every key, and
	// which does not stop the adoption by itself): the error says so.
	su.Tool(t, label, "--keypairgen", "--key-type", "EC:prime256v1", "--id", "0c", "--usage-sign")
	b = su.backend(t, Options{TokenLabel: label, AdoptKeyID: []byte{0x0c}}, func(tk token) token { return failingDerive{tk} })
	if _, err := b.Provision(bg, su.PIN()); !errors.Is(err, ErrAdoptedKey) || !strings.Contains(err.Error(), "CKA_DERIVE=false") {
		t.Fatalf("err = %v, want ErrAdoptedKey naming CKA_DERIVE=false", err)
	}
}

type failingDerive struct{ token }

func (failingDerive) DeriveKey(p11.SessionHandle, []*p11.Mechanism, p11.ObjectHandle, []*p11.Attribute) (p11.ObjectHandle, error) {
	return 0, p11.Error(p11.CKR_FUNCTION_FAILED)
}
