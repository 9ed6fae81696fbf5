package device_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/enigm/enigm/attestation"
	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/tpm"
	"github.com/enigm/enigm/backend/tpm/attest"
	"github.com/enigm/enigm/command"
	"github.com/enigm/enigm/device"
	"github.com/enigm/enigm/internal/testenv"
	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/internal/tpmsim"
)

// An organisation that requires hardware-tpm devices with verified
// attestation: a TPM device's evidence (TPM2_Certify of its binding key,
// bound to its enrollment) travels in its chain record and is verified by
// Command and by the other devices; a software device is refused.
func TestOrganisationRequiresAttestation(t *testing.T) {
	ctx := context.Background()
	o := newAttestedOrg(t)
	a := o.agent("a")
	testkit.Must(a.Init(ctx, device.InitOptions{Account: "ivy", Invite: o.inv.Code, Org: o.org.ID}))
	b := o.agent("b")
	enroll(t, ctx, a, b, "ivy")
	_, devs, _ := check3(b.Devices(ctx, ""))
	if len(devs) != 2 || devs[0].Protection != "hardware-tpm" || devs[1].Protection != "hardware-tpm" {
		t.Fatalf("devices: %+v", devs)
	}
	// A software device (that verifies the chain with the same trust) is
	// refused by Command: its protection is below the organisation's minimum.
	so := o.w.softOptions(filepath.Join(t.TempDir(), "soft"), "pw")
	so.Poll, so.Attestation = 0, &attestation.TPM{Trusted: []attest.AK{o.ak}}
	s := o.w.open(so)
	if _, err := s.Enroll(ctx, device.EnrollOptions{Account: "ivy"}); err == nil || !strings.Contains(err.Error(), "policy_rejected") && !strings.Contains(err.Error(), "below") {
		t.Fatalf("a software device enrolled into an attestation-requiring org: %v", err)
	}
}

// attestedOrg is a world whose Command trusts the TPM simulator's
// attestation key, with organisation "vault" requiring hardware-tpm
// devices with verified attestation and an invite for account "ivy".
type attestedOrg struct {
	w   *world
	ak  attest.AK
	org *command.OrgCreated
	inv *command.Invited
}

// newAttestedOrg resets the TPM simulator (or reports it missing) and sets
// up the organisation.
func newAttestedOrg(t *testing.T) *attestedOrg {
	t.Helper()
	if err := tpmsim.Reset(); err != nil {
		testenv.Missing(t, "TPM simulator", err)
	}
	ctx := context.Background()
	tb, err := tpm.New(tpm.Options{Open: tpmsim.Open})
	if err != nil {
		t.Fatal(err)
	}
	ak, err := tb.AttestationKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	o := &attestedOrg{ak: ak}
	o.w = newWorldWith(t, func(c *command.Config) { c.AttestationVerifier = &attestation.TPM{Trusted: []attest.AK{ak}} })
	o.org = testkit.Must(command.CreateOrg(ctx, o.w.cfg, command.OrgSpec{Name: "vault", Policy: command.Policy{MinLevel: "hardware-tpm", RequireVerifiedAttestation: true}}))
	o.inv = testkit.Must(command.CreateInvite(ctx, o.w.cfg, "vault", "ivy", 0))
	return o
}

// agent opens a device agent named name on the TPM simulator, verifying
// attestation with the same trust as Command.
func (o *attestedOrg) agent(name string) *device.Agent {
	t := o.w.t
	t.Helper()
	tpmBackend := func(string) (backend.Backend, error) { return tpm.New(tpm.Options{Open: tpmsim.Open}) }
	opts := o.w.softOptions(filepath.Join(t.TempDir(), name), "pw "+name)
	opts.Backend, opts.NewBackend = tpmBackend, func() (backend.Backend, error) { return tpmBackend("tpm") }
	opts.Attestation = &attestation.TPM{Trusted: []attest.AK{o.ak}}
	return o.w.open(opts)
}
