package chain

import (
	"bytes"
	"errors"
	"testing"

	"github.com/enigm/enigm/internal/testkit"
)

// A body survives EncodeBody/DecodeBody and is the body a link carries.
func TestEncodeDecodeBody(t *testing.T) {
	w := newWorld("compose")
	w.run(t, "genesis A; add B by A")
	l := w.links[len(w.links)-1]
	enc, err := EncodeBody(l.Body())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc, l.bodyRaw) {
		t.Fatal("EncodeBody differs from the body in the link")
	}
	back, err := DecodeBody(TypeAddDevice, enc)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := EncodeBody(back)
	if !bytes.Equal(again, enc) {
		t.Fatal("round trip changed the body")
	}
	if _, err := DecodeBody(TypeRevokeDevice, enc); err == nil {
		t.Fatal("decoded an add_device body as revoke_device")
	}
	if _, err := DecodeBody(LinkType(99), enc); !errors.Is(err, ErrUnknownType) {
		t.Fatalf("unknown type: %v", err)
	}
}

// Command counter-signs links the devices built: a managed genesis, and an
// add_device whose policy requires admin approval.
func TestCosign(t *testing.T) {
	w := newWorld("cosign")
	a := w.actor("A")
	p := DefaultPolicy()
	p.RequireAdminApproval = true
	g := &Genesis{Device: a.device(), Recovery: w.recovery().Public(), Policy: p, Org: &Org{ID: "example.org", AdminKey: w.org().Public()}}
	d := testkit.Must(NewGenesis(w.now, g))
	check(d.Sign(RoleSubject, a.key()))
	check(d.Sign(RoleNewRecovery, w.recovery()))
	unsigned := testkit.Must(d.Link())
	if _, err := Apply(nil, unsigned, w.now); err == nil {
		t.Fatal("managed genesis without the organisation's signature applied")
	}
	signed, err := unsigned.Cosign(RoleOrg, w.org())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.apply(signed); err != nil {
		t.Fatalf("cosigned genesis: %v", err)
	}
	// add_device approved by A; the organisation's approval is added after.
	b := w.actor("B")
	ad := w.addDraft(b)
	check(ad.SignDevice(a.id, a.key()))
	check(ad.Sign(RoleSubject, b.key()))
	l := testkit.Must(ad.Link())
	if _, err := Apply(w.st, l, w.now); !errors.Is(err, ErrAdminApprovalRequired) {
		t.Fatalf("without admin approval: %v", err)
	}
	l2, err := l.Cosign(RoleOrg, w.org())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.apply(l2); err != nil {
		t.Fatalf("cosigned add_device: %v", err)
	}
	// The wrong key in the organisation role is refused.
	if _, err := l.Cosign(RoleOrg, a.key()); err != nil {
		t.Fatal(err)
	}
	bad, _ := l.Cosign(RoleOrg, a.key())
	if _, err := Apply(w.st, bad, w.now); err == nil {
		t.Fatal("an organisation approval by a device key applied")
	}
	if _, err := l.Cosign(RoleDevice, a.key()); err == nil {
		t.Fatal("Cosign made a device-role signature")
	}
}

// VerifyApproval accepts exactly the approval SignApproval made, for its
// statement, role, link type and key.
func TestVerifyApproval(t *testing.T) {
	w := newWorld("verify-approval")
	w.run(t, "genesis A")
	a, b := w.actor("A"), w.actor("B")
	d := w.addDraft(b)
	st, _ := d.Approval()
	sg, err := SignApproval(st, TypeAddDevice, RoleDevice, a.id, a.key())
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyApproval(st, TypeAddDevice, RoleDevice, a.key().Public(), sg.Sig); err != nil {
		t.Fatalf("good approval: %v", err)
	}
	other := st
	other.Head.Seq++
	short := append([]byte(nil), sg.Sig[:64]...)
	flipped := append([]byte(nil), sg.Sig...)
	flipped[100] ^= 1
	for _, tc := range []struct {
		desc    string
		a       Approval
		typ     LinkType
		role    Role
		sig     []byte
		wantErr error
	}{
		{"other statement", other, TypeAddDevice, RoleDevice, sg.Sig, ErrBadSignature},
		{"other link type", st, TypeReplaceDevice, RoleDevice, sg.Sig, ErrBadSignature},
		{"other role", st, TypeAddDevice, RoleOrg, sg.Sig, ErrBadSignature},
		{"role without approvals", st, TypeAddDevice, RoleSubject, sg.Sig, ErrUnexpectedSignature},
		{"type without approvals", st, TypeRevokeDevice, RoleDevice, sg.Sig, ErrUnexpectedSignature},
		{"classical half only", st, TypeAddDevice, RoleDevice, short, ErrMissingPQ},
		{"truncated", st, TypeAddDevice, RoleDevice, sg.Sig[:100], ErrMalformed},
		{"flipped bit", st, TypeAddDevice, RoleDevice, flipped, ErrBadSignature},
	} {
		if err := VerifyApproval(tc.a, tc.typ, tc.role, a.key().Public(), tc.sig); !errors.Is(err, tc.wantErr) {
			t.Errorf("%s: got %v, want %v", tc.desc, err, tc.wantErr)
		}
	}
	if err := VerifyApproval(st, TypeAddDevice, RoleDevice, b.key().Public(), sg.Sig); !errors.Is(err, ErrBadSignature) {
		t.Errorf("other key: %v", err)
	}
}
