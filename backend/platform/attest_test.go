package platform

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"testing"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/platform/bridge"
	"github.com/enigm/enigm/backend/platform/internal/keymint"
	"github.com/enigm/enigm/backend/platform/simulated"
	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/internal/wire"
)

// withBindingKey opens a session on a fresh simulated device of profile p
// and creates a binding key in it.
func withBindingKey(t *testing.T, p simulated.Profile) (*simulated.Device, backend.Session, []byte, crypto.Signer) {
	t.Helper()
	d := newDevice(p)
	b := newBackend(t, d, withAuth)
	s := open(t, b, provision(t, b))
	blob, key := testkit.BindingKey(t, s)
	return d, s, blob, key
}

func TestAttestRoundTrip(t *testing.T) {
	d, s, blob, key := withBindingKey(t, simulated.StrongBox(0))
	nonce := bytes.Repeat([]byte{0x42}, 32)
	ev := testkit.Attest(t, s, blob, nonce)
	a, err := VerifyEvidence(ev, nonce, d.AttestationRoots(), d.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !a.Public.Equal(key.Public()) {
		t.Fatal("evidence attests another key")
	}
	if a.SecurityLevel != bridge.LevelStrongBox || !a.UnlockedDeviceRequired || a.UserAuthType != 3 || a.AuthTimeoutSeconds != 60 {
		t.Fatalf("attested %+v", a)
	}

	// Another nonce, other roots, a tampered byte: refused.
	if _, err := VerifyEvidence(ev, bytes.Repeat([]byte{0x43}, 32), d.AttestationRoots(), d.Now()); !errors.Is(err, ErrNonce) {
		t.Fatalf("other nonce: err = %v", err)
	}
	other := simulated.New(simulated.StrongBox(0))
	if _, err := VerifyEvidence(ev, nonce, other.AttestationRoots(), d.Now()); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("other roots: err = %v", err)
	}
	if _, err := VerifyEvidence(ev, nonce, nil, d.Now()); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("no roots: err = %v", err)
	}
	for _, i := range []int{0, 5, len(ev.Data) / 3, len(ev.Data) / 2, len(ev.Data) - 5, len(ev.Data) - 1} {
		bad := backend.Evidence{Type: ev.Type, Data: bytes.Clone(ev.Data)}
		bad.Data[i] ^= 0x01
		if _, err := VerifyEvidence(bad, nonce, d.AttestationRoots(), d.Now()); err == nil {
			t.Fatalf("evidence with byte %d flipped verified", i)
		}
	}
	if _, err := VerifyEvidence(backend.Evidence{Type: "tpm2-certify", Data: ev.Data}, nonce, d.AttestationRoots(), d.Now()); !errors.Is(err, ErrEvidence) {
		t.Fatalf("wrong type: err = %v", err)
	}
	if _, err := s.(backend.Attester).Attest(bg, blob, []byte("short")); err == nil {
		t.Fatal("short nonce accepted")
	}
}

// The nonce signature is what makes old evidence useless: a chain alone,
// replayed with a signature over another nonce, does not verify.
func TestAttestReplay(t *testing.T) {
	d, s, blob, _ := withBindingKey(t, simulated.StrongBox(0))
	n1, n2 := bytes.Repeat([]byte{1}, 16), bytes.Repeat([]byte{2}, 16)
	ev1 := testkit.Attest(t, s, blob, n1)
	if _, err := VerifyEvidence(ev1, n2, d.AttestationRoots(), d.Now()); !errors.Is(err, ErrNonce) {
		t.Fatalf("replayed evidence: err = %v", err)
	}
}

// A chain that attests a key whose KeyDescription says software, or an
// imported key, is refused; so is a leaf without the extension.
func TestAttestKeyDescriptionChecks(t *testing.T) {
	// A TEE-level profile yields level "tee".
	p := simulated.StrongBox(0)
	p.Level = bridge.LevelTEE
	d, s, blob, _ := withBindingKey(t, p)
	nonce := bytes.Repeat([]byte{9}, 20)
	ev := testkit.Attest(t, s, blob, nonce)
	a, err := VerifyEvidence(ev, nonce, d.AttestationRoots(), d.Now())
	if err != nil || a.SecurityLevel != bridge.LevelTEE {
		t.Fatalf("%+v, %v", a, err)
	}
	// Swap the leaf for the batch certificate (no KeyDescription).
	var e evidence
	testkit.NoErr(t, wire.Unmarshal(ev.Data, &e, 0))
	certs, _ := x509.ParseCertificates(e.Chain)
	e.Chain = append(bytes.Clone(certs[1].Raw), certs[1].Raw...)
	data, _ := wire.Marshal(e)
	if _, err := VerifyEvidence(backend.Evidence{Type: ev.Type, Data: data}, nonce, d.AttestationRoots(), d.Now()); !errors.Is(err, ErrEvidence) {
		t.Fatalf("leaf without extension: err = %v", err)
	}
}

func explicitTag(t *testing.T, tag int, v any, params string) []byte {
	t.Helper()
	inner, err := asn1.MarshalWithParams(v, params)
	if err != nil {
		t.Fatal(err)
	}
	b, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: tag, IsCompound: true, Bytes: inner})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Each KeyDescription that does not show a hardware-generated P-256
// signing key is refused.
func TestKeyDescriptionRules(t *testing.T) {
	good := func(t *testing.T) map[string][]byte {
		return map[string][]byte{
			"1purpose":   explicitTag(t, 1, []int{2}, "set"),
			"2algorithm": explicitTag(t, 2, 3, ""),
			"3curve":     explicitTag(t, 10, 1, ""),
			"4unlocked":  explicitTag(t, 509, asn1.NullRawValue, ""),
			"5origin":    explicitTag(t, 702, 0, ""),
		}
	}
	build := func(t *testing.T, attLevel, kmLevel int, fields map[string][]byte, extra ...[]byte) *x509.Certificate {
		var body []byte
		for _, k := range []string{"1purpose", "2algorithm", "3curve", "4unlocked", "5origin"} {
			body = append(body, fields[k]...)
		}
		for _, e := range extra {
			body = append(body, e...)
		}
		kd := keymint.KeyDescription{AttestationVersion: 300, AttestationSecurityLevel: asn1.Enumerated(attLevel), KeyMintVersion: 300,
			KeyMintSecurityLevel: asn1.Enumerated(kmLevel), AttestationChallenge: []byte("c"), UniqueID: []byte{},
			SoftwareEnforced: asn1.RawValue{Tag: asn1.TagSequence, IsCompound: true},
			HardwareEnforced: asn1.RawValue{Tag: asn1.TagSequence, IsCompound: true, Bytes: body}}
		ext, err := asn1.Marshal(kd)
		if err != nil {
			t.Fatal(err)
		}
		return &x509.Certificate{Extensions: []pkix.Extension{{Id: keymint.OID, Value: ext}}}
	}
	if a, err := parseKeyDescription(build(t, 2, 2, good(t))); err != nil || !a.UnlockedDeviceRequired || a.SecurityLevel != bridge.LevelStrongBox {
		t.Fatalf("good description: %+v, %v", a, err)
	}
	for _, tc := range []struct {
		desc    string
		att, km int
		edit    func(map[string][]byte)
		extra   [][]byte
	}{
		{desc: "software level", att: 0, km: 0},
		{desc: "levels differ", att: 2, km: 1},
		{desc: "imported key", att: 2, km: 2, edit: func(m map[string][]byte) { m["5origin"] = explicitTag(t, 702, 2, "") }},
		{desc: "no origin", att: 2, km: 2, edit: func(m map[string][]byte) { delete(m, "5origin") }},
		{desc: "RSA", att: 2, km: 2, edit: func(m map[string][]byte) { m["2algorithm"] = explicitTag(t, 2, 1, "") }},
		{desc: "other curve", att: 2, km: 2, edit: func(m map[string][]byte) { m["3curve"] = explicitTag(t, 10, 2, "") }},
		{desc: "decrypt only", att: 2, km: 2, edit: func(m map[string][]byte) { m["1purpose"] = explicitTag(t, 1, []int{1}, "set") }},
		{desc: "NULL with content", att: 2, km: 2, edit: func(m map[string][]byte) { m["4unlocked"] = explicitTag(t, 509, 1, "") }},
		{desc: "purpose not a set", att: 2, km: 2, edit: func(m map[string][]byte) { m["1purpose"] = explicitTag(t, 1, 2, "") }},
		{desc: "repeated tag", att: 2, km: 2, extra: [][]byte{explicitTag(t, 702, 0, "")}},
		{desc: "implicit element", att: 2, km: 2, extra: [][]byte{{0x81, 0x01, 0x00}}},
	} {
		f := good(t)
		if tc.edit != nil {
			tc.edit(f)
		}
		if a, err := parseKeyDescription(build(t, tc.att, tc.km, f, tc.extra...)); !errors.Is(err, ErrEvidence) {
			t.Errorf("%s: %+v, err = %v", tc.desc, a, err)
		}
	}
	if _, err := parseKeyDescription(&x509.Certificate{}); !errors.Is(err, ErrEvidence) {
		t.Errorf("no extension: %v", err)
	}
	two := build(t, 2, 2, good(t))
	two.Extensions = append(two.Extensions, two.Extensions[0])
	if _, err := parseKeyDescription(two); !errors.Is(err, ErrEvidence) {
		t.Errorf("two extensions: %v", err)
	}
}
