package chain

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/internal/wire"
)

func TestApplyDoesNotMutateInput(t *testing.T) {
	for _, stmt := range []string{"add C by A", "revoke B by A", "rotate A", "replace B with D", "veto by A", "rotate-recovery by A", "wait 24h; recover R"} {
		w := newWorld("immut").script("genesis A; add B by A; request R")
		before := w.st
		snapDevices := fmt.Sprint(before.Devices())
		snapPending, _ := before.PendingRecovery()
		head := before.Head()
		w.run(t, stmt)
		if w.st == before {
			t.Fatalf("%s: Apply returned its input", stmt)
		}
		p, ok := before.PendingRecovery()
		if before.Head() != head || fmt.Sprint(before.Devices()) != snapDevices || !ok || p.Request != snapPending.Request {
			t.Fatalf("%s: Apply changed its input state", stmt)
		}
	}
}

func TestVerifyChainMatchesApply(t *testing.T) {
	w := newWorld("vc").script("genesis A; add B by A; add C by B; revoke B by C; rotate A; request R; wait 24h; recover R")
	// Verify in two steps: VerifyChain continues from a caller's state
	// without changing it.
	mid, err := VerifyChain(nil, w.links[:3], w.now)
	if err != nil {
		t.Fatal(err)
	}
	midHead, midActive := mid.Head(), len(mid.Active())
	end, err := VerifyChain(mid, w.links[3:], w.now)
	if err != nil {
		t.Fatal(err)
	}
	if end.Head() != w.st.Head() || len(end.Active()) != len(w.st.Active()) {
		t.Fatal("VerifyChain in steps differs from Apply")
	}
	if mid.Head() != midHead || len(mid.Active()) != midActive || !mid.IsActive(w.actor("B").id) {
		t.Fatal("VerifyChain changed its starting state")
	}
	// A failure names the link.
	_, err = VerifyChain(nil, append(w.links[:2:2], w.links[3]), w.now)
	var le *LinkError
	if !errors.As(err, &le) || le.Index != 2 || le.Seq != 3 || !errors.Is(err, ErrSequence) {
		t.Fatalf("err = %v, want a LinkError at index 2 wrapping ErrSequence", err)
	}
	if _, err := VerifyChain(nil, nil, w.now); !errors.Is(err, ErrNoGenesis) {
		t.Fatalf("empty chain: %v", err)
	}
	if _, err := VerifyChain(nil, make([]*Link, MaxLinksPerCall+1), w.now); !errors.Is(err, ErrChainTooLong) {
		t.Fatalf("long chain: %v", err)
	}
	if _, err := ParseChain(make([][]byte, MaxLinksPerCall+1)); !errors.Is(err, ErrChainTooLong) {
		t.Fatalf("long chain: %v", err)
	}
}

func TestStateAccessors(t *testing.T) {
	w := newWorld("acc").script("genesis A hw managed; add B by A; replace B with C; add D by A; revoke D by org")
	s := w.st
	a, c := w.actor("A"), w.actor("C")
	if org, ok := s.Org(); !ok || org.ID != "example.org" || !s.Managed() {
		t.Fatal("organisation missing")
	}
	if !s.RecoveryKey().Equal(w.recovery().Public()) {
		t.Fatal("recovery key")
	}
	ra, _ := s.Device(a.id)
	if ra.Level != LevelHardwareTPM || ra.Binding == nil || ra.ApprovedBy.Kind != ByGenesis || !ra.ApprovedBy.Org {
		t.Fatalf("genesis device record: %+v", ra.ApprovedBy)
	}
	rc, _ := s.Device(c.id)
	if rc.ApprovedBy.Kind != ByDevice || rc.ApprovedBy.Device != w.actor("B").id || rc.AddedBy != TypeReplaceDevice || rc.AddedSeq != 2 {
		t.Fatalf("replacement record: %+v", rc)
	}
	rb, _ := s.Device(w.actor("B").id)
	if rb.Status != StatusRetired || rb.ReplacedBy != c.id || rb.EndedSeq != 2 {
		t.Fatalf("retired record: %+v", rb)
	}
	rd, _ := s.Device(w.actor("D").id)
	if rd.Status != StatusRevoked || rd.EndedBy.Kind != ByOrg {
		t.Fatalf("revoked record: %+v", rd)
	}
	if len(s.Devices()) != 4 || len(s.Active()) != 2 || len(s.Revoked()) != 1 || len(s.Retired()) != 1 {
		t.Fatal("device lists")
	}
	if s.Time() != T0 || s.Head().Seq != 4 {
		t.Fatal("head")
	}
	if _, ok := s.Device(DeviceID{}); ok {
		t.Fatal("unknown device found")
	}
}

func TestMaxDevices(t *testing.T) {
	var b strings.Builder
	b.WriteString("genesis D0 delay=0s\n")
	for i := 1; i < MaxDevices; i++ {
		fmt.Fprintf(&b, "add D%d by D0\n", i)
	}
	b.WriteString("add X by D0 !ErrTooManyDevices\n")
	b.WriteString("request R; recover R !ErrTooManyDevices\n")
	b.WriteString("replace D1 with Y; revoke D2 by D0; recover R")
	newWorld("max").run(t, b.String())
}

type fakeAttester struct{ calls []AttestationInput }

func (f *fakeAttester) VerifyAttestation(in AttestationInput) error {
	f.calls = append(f.calls, in)
	if string(in.Device.Evidence.Data) != "good" {
		return errors.New("evidence does not verify")
	}
	return nil
}

func TestAttestation(t *testing.T) {
	w := newWorld("att").script("genesis A managed")
	good, bad := w.hw("G"), w.hw("B")
	good.ev = &Evidence{Type: "tpm2-certify", Data: []byte("good")}
	bad.ev = &Evidence{Type: "tpm2-certify", Data: []byte("forged")}

	// Without a verifier, evidence is carried but not judged.
	l := w.addLink(good, w.actor("A"), false)
	s, err := Apply(w.st, l, w.now)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := s.Device(good.id); r.AttestationVerified || r.Evidence == nil {
		t.Fatal("evidence judged without a verifier")
	}
	// With one, good evidence is verified and bound to the request.
	v := &fakeAttester{}
	s, err = Apply(w.st, l, w.now, WithAttestationVerifier(v))
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := s.Device(good.id); !r.AttestationVerified {
		t.Fatal("verified evidence not recorded")
	}
	if len(v.calls) != 1 || v.calls[0].Account != w.st.Account() || v.calls[0].Prev != w.st.Head().Hash || v.calls[0].Type != TypeAddDevice || len(v.calls[0].Nonce) != NonceSize {
		t.Fatalf("verifier input: %+v", v.calls)
	}
	if _, err := Apply(w.st, w.addLink(bad, w.actor("A"), false), w.now, WithAttestationVerifier(v)); !errors.Is(err, ErrAttestation) {
		t.Fatalf("forged evidence: %v", err)
	}
	// A policy that requires verified attestation fails closed.
	w.attest = v
	w.run(t, "policy attestation; add P by A !ErrAttestationRequired")
	if err := w.apply(w.addLink(good, w.actor("A"), false)); err != nil {
		t.Fatalf("attested device refused: %v", err)
	}
	w.attest = nil
	if err := w.apply(w.addLink(w.hw("H2"), w.actor("A"), false)); !errors.Is(err, ErrAttestationRequired) {
		t.Fatalf("no verifier: %v", err)
	}
}

func TestMaxAgeAndSkew(t *testing.T) {
	w := newWorld("age").script("genesis A")
	l := w.addLink(w.actor("B"), w.actor("A"), false)
	later := w.now.Add(2 * time.Hour)
	if _, err := Apply(w.st, l, later, WithMaxAge(time.Hour)); !errors.Is(err, ErrStale) {
		t.Fatalf("stale link: %v", err)
	}
	if _, err := Apply(w.st, l, later); err != nil {
		t.Fatalf("history verification refused an old link: %v", err)
	}
	if _, err := Apply(w.st, l, w.now.Add(-MaxClockSkew)); err != nil {
		t.Fatalf("link within the skew allowance: %v", err)
	}
	if _, err := Apply(w.st, l, w.now.Add(-MaxClockSkew-time.Second)); !errors.Is(err, ErrFutureTimestamp) {
		t.Fatalf("future link: %v", err)
	}
}

// WithMaxSkew narrows the future bound for the party that appends links;
// it never widens it.
func TestWithMaxSkew(t *testing.T) {
	w := newWorld("skew").script("genesis A")
	l := w.addLink(w.actor("B"), w.actor("A"), false) // dated w.now
	for _, c := range []struct {
		now  time.Time
		skew time.Duration
		want error
	}{
		{w.now.Add(-time.Minute), 0, nil},                                       // default: 5 min
		{w.now.Add(-time.Minute), 30 * time.Second, ErrFutureTimestamp},         // a minute ahead of a 30 s bound
		{w.now.Add(-30 * time.Second), 30 * time.Second, nil},                   // exactly at the bound
		{w.now.Add(-31 * time.Second), 30 * time.Second, ErrFutureTimestamp},    // one second beyond
		{w.now.Add(-MaxClockSkew - time.Second), time.Hour, ErrFutureTimestamp}, // cannot widen MaxClockSkew
	} {
		_, err := Apply(w.st, l, c.now, WithMaxSkew(c.skew))
		if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("link %v ahead, skew %v: err = %v, want %v", w.now.Sub(c.now), c.skew, err, c.want)
		}
	}
}

// The time model of docs/design/chain.md §3.1 at the chain level: a link
// dated ahead of the clock (within the skew) blocks a revocation dated at
// the clock (ErrTimeRegression: the stolen-device attack when signers date
// links with their own clock), and never one dated at max(now, head time),
// which is how devices date their links.
func TestRevocationAfterFutureDatedHead(t *testing.T) {
	w := newWorld("future-head").script("genesis A; add B by A")
	now := w.now
	w.now = now.Add(MaxClockSkew) // B's clock runs ahead
	if err := w.apply(w.rotateLink(w.actor("B"), false, true)); err != nil {
		t.Fatalf("rotation within the skew: %v", err)
	}
	w.now = now
	if err := w.apply(w.revokeLink(w.actor("B"), RoleDevice, w.actor("A"))); !errors.Is(err, ErrTimeRegression) {
		t.Fatalf("revocation dated before the head: err = %v, want ErrTimeRegression", err)
	}
	w.now = w.st.Time() // max(now, head time)
	l := w.revokeLink(w.actor("B"), RoleDevice, w.actor("A"))
	if _, err := Apply(w.st, l, now); err != nil {
		t.Fatalf("revocation dated at the head's time: %v", err)
	}
}

func TestCheckView(t *testing.T) {
	w := newWorld("view").script("genesis A; add B by A; add C by A; add D by A")
	ls := w.links
	head := func(i int) Head { return Head{Seq: ls[i].Seq(), Hash: ls[i].Hash()} }
	other := newWorld("view").script("genesis A; add B by A; add E by A").links
	cases := []struct {
		desc string
		old  Head
		view []*Link
		want error
	}{
		{"same chain", head(3), ls, nil},
		{"extends", head(1), ls, nil},
		{"suffix after head", head(1), ls[2:], nil},
		{"suffix including head", head(1), ls[1:], nil},
		{"rollback", head(3), ls[:3], ErrRollback},
		{"empty", head(0), nil, ErrRollback},
		{"fork at head", head(2), other, ErrFork},
		{"suffix not connecting", head(2), other[2:], ErrFork},
		{"gap", head(0), ls[2:], ErrFork},
		{"not a chain", head(0), []*Link{ls[0], ls[2]}, ErrPrevHash},
	}
	for _, c := range cases {
		if err := CheckView(c.old, c.view); !errors.Is(err, c.want) || (c.want == nil && err != nil) {
			t.Errorf("%s: err = %v, want %v", c.desc, err, c.want)
		}
	}
}

func TestRecoveryCode(t *testing.T) {
	c, err := GenerateRecoveryCode(bytes.NewReader(bytes.Repeat([]byte{0xa7, 0x13, 0x5e}, 20)))
	if err != nil {
		t.Fatal(err)
	}
	shown := c.Reveal()
	if len(shown) != 8*4+7 || strings.Count(shown, "-") != 7 {
		t.Fatalf("code %q is not eight groups of four", shown)
	}
	k1, err := c.Key()
	if err != nil {
		t.Fatal(err)
	}
	// Typed back sloppily: lower case, spaces, O for 0, l for 1.
	typed := strings.ToLower(strings.ReplaceAll(shown, "-", " "))
	typed = strings.ReplaceAll(strings.ReplaceAll(typed, "0", "o"), "1", "l")
	c2, err := ParseRecoveryCode(typed)
	if err != nil {
		t.Fatalf("sloppy but correct code refused: %v", err)
	}
	k2, _ := c2.Key()
	if !k1.Public().Equal(k2.Public()) {
		t.Fatal("the same code derived different keys")
	}
	// Every single-symbol substitution is caught by the checksum.
	raw := strings.ReplaceAll(shown, "-", "")
	for i := 0; i < len(raw); i++ {
		for _, r := range crockford {
			if byte(r) == raw[i] {
				continue
			}
			typo := raw[:i] + string(r) + raw[i+1:]
			if _, err := ParseRecoveryCode(typo); !errors.Is(err, ErrRecoveryCode) {
				t.Fatalf("typo at %d (%c) accepted", i, r)
			}
		}
	}
	for _, bad := range []string{"", raw[:31], raw + "0", raw[:10] + "U" + raw[11:], raw[:10] + "!" + raw[11:]} {
		if _, err := ParseRecoveryCode(bad); !errors.Is(err, ErrRecoveryCode) {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
	other, _ := GenerateRecoveryCode(bytes.NewReader(bytes.Repeat([]byte{1, 2, 3}, 20)))
	k3, _ := other.Key()
	if k3.Public().Equal(k1.Public()) {
		t.Fatal("different codes derived the same key")
	}
	for _, verb := range []string{"%v", "%s", "%x", "%+v", "%#v", "%q"} {
		if out := fmt.Sprintf(verb, c); strings.Contains(out, raw[:4]) || !strings.Contains(out, "redacted") {
			t.Errorf("%s printed %q", verb, out)
		}
	}
	if _, err := GenerateRecoveryCode(bytes.NewReader(nil)); err == nil {
		t.Fatal("short randomness accepted")
	}
}

// The recovery key derivation is part of the format: a code typed on a new
// device must derive the key whose public half is in the chain. Pin it.
func TestRecoveryKeyDerivationGolden(t *testing.T) {
	c := &RecoveryCode{}
	for i := range c.data {
		c.data[i] = byte(i)
	}
	k, _ := c.Key()
	fp := k.Public().Fingerprint()
	if got := fmt.Sprintf("%s %x", c.Reveal(), fp[:8]); got != recoveryGolden {
		t.Fatalf("recovery code / key fingerprint = %q, want %q", got, recoveryGolden)
	}
}

func TestSASAndFingerprint(t *testing.T) {
	w := newWorld("sas").script("genesis A")
	a, b := w.actor("A").device(), w.actor("B").device()
	n := nonceFor("sas")
	ph := PairingHash(n, "123456")
	s1, err := SAS(w.st.Account(), &a, &b, n, ph)
	if err != nil {
		t.Fatal(err)
	}
	if len(s1) != 7 || s1[3] != ' ' {
		t.Fatalf("SAS %q is not six digits", s1)
	}
	n2 := n
	n2[0] ^= 1
	c := w.actor("C").device()
	variants := map[string]func() (string, error){
		"other nonce":   func() (string, error) { return SAS(w.st.Account(), &a, &b, n2, ph) },
		"other device":  func() (string, error) { return SAS(w.st.Account(), &a, &c, n, ph) },
		"other pairing": func() (string, error) { return SAS(w.st.Account(), &a, &b, n, PairingHash(n, "000000")) },
		"other account": func() (string, error) { return SAS(AccountID{1}, &a, &b, n, ph) },
		"swapped roles": func() (string, error) { return SAS(w.st.Account(), &b, &a, n, ph) },
	}
	// Six digits collide with probability 10^-6 per pair; these inputs
	// are fixed, so the test is deterministic.
	for name, f := range variants {
		s2, err := f()
		if err != nil || s2 == s1 {
			t.Errorf("%s: SAS %q (err %v) equals %q", name, s2, err, s1)
		}
	}
	fp := Fingerprint(w.st.Account())
	if len(fp) != 12*5+11 || fp == Fingerprint(AccountID{}) {
		t.Fatalf("fingerprint %q", fp)
	}
	if fp != Fingerprint(w.st.Account()) {
		t.Fatal("fingerprint is not deterministic")
	}
}

func TestDraftRefusesBadInput(t *testing.T) {
	w := newWorld("draft").script("genesis A")
	if _, err := NewDraft(nil, T0, &RevokeDevice{}); !errors.Is(err, ErrNoGenesis) {
		t.Errorf("draft without state: %v", err)
	}
	if _, err := NewDraft(w.st, T0, &Genesis{}); !errors.Is(err, ErrGenesisNotFirst) {
		t.Errorf("genesis draft on a state: %v", err)
	}
	if _, err := NewDraft(w.st, time.Unix(-1, 0), &RevokeDevice{}); !errors.Is(err, ErrMalformed) {
		t.Errorf("negative time: %v", err)
	}
	if _, err := NewDraft(w.st, T0, &AddDevice{}); !errors.Is(err, ErrMalformed) {
		t.Errorf("device without keys: %v", err)
	}
	d := testkit.Must(NewDraft(w.st, T0, &RevokeDevice{ID: w.actor("A").id}))
	if err := d.Sign(RoleDevice, w.actor("A").key()); !errors.Is(err, ErrUnexpectedSignature) {
		t.Errorf("Sign in role device: %v", err)
	}
	if _, err := SignApproval(Approval{}, TypeRevokeDevice, RoleDevice, DeviceID{}, w.actor("A").key()); !errors.Is(err, ErrUnexpectedSignature) {
		t.Errorf("approval on revoke: %v", err)
	}
	if SigningContext(0, RoleDevice) != "" || ApprovalContext(TypeAddDevice, 0) != "" {
		t.Error("contexts for unknown types or roles")
	}
	if got := SigningContext(TypeAddDevice, RoleSubject); got != "enigm/v1/link/add_device/subject" {
		t.Errorf("context = %q", got)
	}
}

func TestPolicyValidation(t *testing.T) {
	for _, c := range []struct {
		p       Policy
		managed bool
		ok      bool
	}{
		{DefaultPolicy(), false, true},
		{Policy{}, false, true},
		{Policy{RequireAdminApproval: true}, false, false},
		{Policy{RequireAdminReview: true}, true, true},
		{Policy{RecoveryDelay: MaxRecoveryDelay + time.Second}, true, false},
		{Policy{RecoveryDelay: 1500 * time.Millisecond}, true, false},
		{Policy{RecoveryDelay: -time.Second}, true, false},
		{Policy{MinLevel: "hardware-magic"}, true, false},
		{Policy{MinLevel: LevelHardwarePlatform}, true, true},
		{Policy{WitnessPolicy: goldenWitnessPolicy}, true, true},
		{Policy{WitnessPolicy: goldenWitnessPolicy, WitnessMaxAge: MaxWitnessMaxAge}, true, true},
		{Policy{WitnessPolicy: goldenWitnessPolicy}, false, false},
		{Policy{WitnessPolicy: goldenWitnessPolicy, WitnessMaxAge: MaxWitnessMaxAge + time.Second}, true, false},
		{Policy{WitnessPolicy: goldenWitnessPolicy, WitnessMaxAge: 1500 * time.Millisecond}, true, false},
		{Policy{WitnessPolicy: goldenWitnessPolicy, WitnessMaxAge: -time.Second}, true, false},
		{Policy{WitnessMaxAge: time.Hour}, true, false},
		{Policy{WitnessPolicy: strings.Repeat("#\n", MaxWitnessPolicySize/2)}, true, true},
		{Policy{WitnessPolicy: strings.Repeat("#\n", MaxWitnessPolicySize/2) + "\n"}, true, false},
		{Policy{WitnessPolicy: "quorum none"}, true, false},
		{Policy{WitnessPolicy: "quorum\tnone\n"}, true, true},
		{Policy{WitnessPolicy: "quorum none\r\n"}, true, false},
		{Policy{WitnessPolicy: "quorum none\n\x00"}, true, false},
		{Policy{WitnessPolicy: "# \x7f\nquorum none\n"}, true, false},
		{Policy{WitnessPolicy: "# \xc3\nquorum none\n"}, true, false},
		{Policy{WitnessPolicy: "# témoin\nquorum none\n"}, true, true},
	} {
		if err := c.p.validate(c.managed); (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrPolicy)) {
			t.Errorf("%+v managed=%v: err = %v", c.p, c.managed, err)
		}
	}
	if !levelMeets(LevelHardwarePKCS11, LevelHardwareTPM) || levelMeets(LevelSoftware, LevelHardwareTPM) || !levelMeets(LevelSoftware, "") {
		t.Error("level ranks")
	}
}

// recoveryGolden pins the code for data symbols 0..27 and the first bytes
// of the fingerprint of the recovery public key it derives.
const recoveryGolden = "0123-4567-89AB-CDEF-GHJK-MNPQ-RSTV-E92R 0fb3761d85b4cb06"

// checkKEMKey must accept exactly what crypto/hpke accepts.
func TestKEMKeyCheckMatchesHPKE(t *testing.T) {
	good := testKEM("kemcheck").Bytes()
	setCoeff := func(b []byte, k int, v uint16) []byte {
		c := bytes.Clone(b)
		o := (k / 2) * 3
		if k%2 == 0 {
			c[o], c[o+1] = byte(v), c[o+1]&0xf0|byte(v>>8)
		} else {
			c[o+1], c[o+2] = c[o+1]&0x0f|byte(v<<4), byte(v>>4)
		}
		return c
	}
	cases := [][]byte{good, good[:100], append(bytes.Clone(good), 0), nil}
	for _, k := range []int{0, 1, 255, 256, 511, 766, 767} {
		for _, v := range []uint16{3328, 3329, 4095} {
			cases = append(cases, setCoeff(good, k, v))
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 300; i++ {
		c := bytes.Clone(good)
		c[rng.IntN(len(c))] = byte(rng.Uint32())
		cases = append(cases, c)
	}
	for i := 0; i < 20; i++ {
		c := make([]byte, KEMKeySize)
		for j := range c {
			c[j] = byte(rng.Uint32())
		}
		cases = append(cases, c)
	}
	accepted := 0
	for i, c := range cases {
		_, herr := kemSuite.NewPublicKey(c)
		cerr := checkKEMKey(c)
		if (herr == nil) != (cerr == nil) {
			t.Fatalf("case %d: hpke says %v, checkKEMKey says %v", i, herr, cerr)
		}
		if cerr != nil && !errors.Is(cerr, ErrBadKey) {
			t.Fatalf("case %d: %v is not ErrBadKey", i, cerr)
		}
		if cerr == nil {
			accepted++
		}
	}
	if accepted < 2 || accepted == len(cases) {
		t.Fatalf("accepted %d of %d cases: the cases do not exercise both outcomes", accepted, len(cases))
	}
	d := Device{ID: DeviceID{1}, KEM: good}
	if k, err := d.KEMPublicKey(); err != nil || !bytes.Equal(k.Bytes(), good) {
		t.Fatalf("KEMPublicKey: %v", err)
	}
}

func TestLinkWithoutSignatures(t *testing.T) {
	w := newWorld("nosig").script("genesis A")
	d := testkit.Must(NewDraft(w.st, w.now, &RevokeDevice{ID: w.actor("A").id}))
	if _, err := d.Link(); !errors.Is(err, ErrMissingSignature) {
		t.Fatalf("link without signatures: %v", err)
	}
}

// TestWitnessPolicyInChain: the organisation's witness policy survives the
// encoding of genesis and set_policy links exactly, is the state's policy
// from the link that sets it, and goes only with a set_policy signed by
// the organisation.
func TestWitnessPolicyInChain(t *testing.T) {
	w := newWorld("wp").script("genesis A managed witness witness-age=30m")
	if p := w.st.Policy(); p.WitnessPolicy != goldenWitnessPolicy || p.WitnessMaxAge != 30*time.Minute {
		t.Fatalf("genesis policy %+v", p)
	}
	gl, err := ParseLink(w.links[0].Bytes())
	testkit.NoErr(t, err)
	if g := gl.Body().(*Genesis); g.Policy != w.st.Policy() {
		t.Fatalf("genesis parsed back as %+v", g.Policy)
	}
	want := Policy{RecoveryDelay: time.Hour, WitnessPolicy: "witness w1 witness2.example+799c3b6d+BPdIhnuArgWn4VmKKS0i13aTDz6CVHsmrjSA4Fzylffg\nquorum w1\n"}
	l := w.policyLink(want, w.org())
	back, err := ParseLink(l.Bytes())
	testkit.NoErr(t, err)
	if got := back.Body().(*SetPolicy).Policy; got != want {
		t.Fatalf("set_policy parsed back as %+v, want %+v", got, want)
	}
	w.run(t, "policy-by A witness !ErrBadSignature")
	if w.st.Policy().WitnessPolicy != goldenWitnessPolicy {
		t.Fatal("a device key changed the witness policy")
	}
	w.run(t, "policy delay=1h")
	if p := w.st.Policy(); p.WitnessPolicy != "" || p.WitnessMaxAge != 0 {
		t.Fatalf("set_policy without a witness policy left %+v", p)
	}
	d := testkit.Must(NewDraft(w.st, w.now, &SetPolicy{Policy: Policy{WitnessPolicy: "quorum none"}}))
	testkit.NoErr(t, d.Sign(RoleOrg, w.org()))
	if _, err := d.Link(); !errors.Is(err, ErrPolicy) {
		t.Fatalf("a set_policy with a witness policy without its newline: %v", err)
	}
}

// TestWitnessPolicyOldDecoder: a decoder from before keys 6 and 7 (a
// device built before the witness policy) refuses a policy that carries
// them, as the strict decoder refuses every unknown field, and reads every
// policy without them exactly as before.
func TestWitnessPolicyOldDecoder(t *testing.T) {
	type wPolicyV1 struct {
		AdminApproval bool   `cbor:"1,keyasint,omitempty"`
		RecoveryDelay uint64 `cbor:"2,keyasint,omitempty"`
		AdminReview   bool   `cbor:"3,keyasint,omitempty"`
		MinLevel      string `cbor:"4,keyasint,omitempty"`
		Attestation   bool   `cbor:"5,keyasint,omitempty"`
	}
	type wSetPolicyV1 struct {
		Policy wPolicyV1 `cbor:"1,keyasint"`
	}
	old := testkit.Must(wire.Marshal(&wSetPolicy{Policy: wPolicy{AdminReview: true, RecoveryDelay: 3600}}))
	var v1 wSetPolicyV1
	testkit.NoErr(t, wire.Unmarshal(old, &v1, MaxBodySize))
	if again := testkit.Must(wire.Marshal(&v1)); !bytes.Equal(again, old) {
		t.Fatalf("a policy without keys 6 and 7 encodes differently: %x, %x", again, old)
	}
	for _, p := range []wPolicy{{WitnessPolicy: goldenWitnessPolicy}, {WitnessPolicy: goldenWitnessPolicy, WitnessMaxAge: 60}} {
		b := testkit.Must(wire.Marshal(&wSetPolicy{Policy: p}))
		if err := wire.Unmarshal(b, &v1, MaxBodySize); err == nil {
			t.Fatalf("the old decoder accepted %x", b)
		}
	}
}
