package device_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/enigm/enigm/attestation"
	"github.com/enigm/enigm/device"
	"github.com/enigm/enigm/internal/testkit"
)

// A TPM device's evidence is bound to the head its enrollment request was
// made at. When the chain moves before the approval, the approving device
// refuses to sign an approval that could not complete, and says that the
// request must be filed again. (Before, the evidence did not cover the
// head, and the approval went through.)
func TestBindAttestedRequestAtMovedHead(t *testing.T) {
	ctx := context.Background()
	o := newAttestedOrg(t)
	a := o.agent("a")
	testkit.Must(a.Init(ctx, device.InitOptions{Account: "ivy", Invite: o.inv.Code, Org: o.org.ID}))
	b := o.agent("b")
	r := testkit.Must(b.Enroll(ctx, device.EnrollOptions{Account: "ivy", DeviceName: "b"}))
	// The chain moves: a rotates its keys.
	if _, _, err := a.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := a.Approve(ctx, r.RequestID, r.PairingCode, nil)
	if !errors.Is(err, attestation.ErrEvidence) || !strings.Contains(err.Error(), "file it again") {
		t.Fatalf("approval at a moved head: %v, want the attestation refused with a hint to file the request again", err)
	}
}
