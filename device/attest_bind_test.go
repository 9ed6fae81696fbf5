package device_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// A TPM device's evidence is bound to the head its enrollment request was
// made at. When the chain moves before the approval, the approving device
// refuses to sign an approval that could not complete, and says that the
// request must be filed again. (Before, the evidence did not cover the
// head, and the approval went through.)
func TestBindAttestedRequestAtMovedHead(t *testing.T) {
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
	verifier := &attestation.TPM{Trusted: []attest.AK{ak}}
	w := newWorldWith(t, func(c *command.Config) { c.AttestationVerifier = verifier })
	org := testkit.Must(command.CreateOrg(ctx, w.cfg, command.OrgSpec{Name: "vault", Policy: command.Policy{MinLevel: "hardware-tpm", RequireVerifiedAttestation: true}}))
	inv := testkit.Must(command.CreateInvite(ctx, w.cfg, "vault", "ivy", 0))
	tpmBackend := func(string) (backend.Backend, error) { return tpm.New(tpm.Options{Open: tpmsim.Open}) }
	agent := func(name string) *device.Agent {
		a, err := device.Open(device.Options{Home: filepath.Join(t.TempDir(), name), Server: w.url,
			Passphrase: func(bool) ([]byte, error) { return []byte("pw " + name), nil },
			Backend:    tpmBackend, NewBackend: func() (backend.Backend, error) { return tpmBackend("tpm") },
			Clock: w.clock.Now, Poll: time.Millisecond, Attestation: verifier})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close() })
		return a
	}
	a := agent("a")
	testkit.Must(a.Init(ctx, device.InitOptions{Account: "ivy", Invite: inv.Code, Org: org.ID}))
	b := agent("b")
	r := testkit.Must(b.Enroll(ctx, device.EnrollOptions{Account: "ivy", DeviceName: "b"}))
	// The chain moves: a rotates its keys.
	if _, _, err := a.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = a.Approve(ctx, r.RequestID, r.PairingCode, nil)
	if !errors.Is(err, attestation.ErrEvidence) || !strings.Contains(err.Error(), "file it again") {
		t.Fatalf("approval at a moved head: %v, want the attestation refused with a hint to file the request again", err)
	}
}
