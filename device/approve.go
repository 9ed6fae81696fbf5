package device

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"fmt"

	"github.com/enigm/enigm/chain"
)

// ApproveResult is what the approving device shows.
type ApproveResult struct {
	RequestID  string
	State      string
	Device     chain.DeviceID
	DeviceName string
	SAS        string
}

// Approve checks the pairing code against a request, computes the SAS and
// signs this device's approval against the current verified head.
// confirm, when not nil, sees the SAS and the joining device's name before
// the approval is signed and may refuse.
func (a *Agent) Approve(ctx context.Context, requestID, code string, confirm func(sas, name string) error) (*ApproveResult, error) {
	acct, st, err := a.own(ctx)
	if err != nil {
		return nil, err
	}
	cl, _ := a.client()
	e, err := cl.Enrollment(ctx, requestID)
	if err != nil {
		return nil, err
	}
	if e.AccountID != hex.EncodeToString(acct[:]) {
		return nil, fmt.Errorf("device: request %s is for another account", requestID)
	}
	if e.State != "pending" {
		return nil, fmt.Errorf("device: request %s is %s, not pending", requestID, e.State)
	}
	typ, err := e.LinkType()
	if err != nil {
		return nil, err
	}
	raw := e.Body
	body, err := chain.DecodeBody(typ, raw)
	if err != nil {
		return nil, fmt.Errorf("device: the request's body: %w", err)
	}
	var joining chain.Device
	var nonce [chain.NonceSize]byte
	var ph [chain.PairingHashSize]byte
	switch b := body.(type) {
	case *chain.AddDevice:
		joining, nonce, ph = b.Device, b.Nonce, b.PairingHash
	case *chain.ReplaceDevice:
		if b.Old != a.deviceID() {
			return nil, fmt.Errorf("device: request %s replaces device %s; only that device may approve it", requestID, b.Old)
		}
		joining, nonce, ph = b.Device, b.Nonce, b.PairingHash
	}
	want := chain.PairingHash(nonce, normalizePairing(code))
	if subtle.ConstantTimeCompare(want[:], ph[:]) != 1 {
		return nil, fmt.Errorf("%w: do not approve; the request may not come from the device you hold", ErrPairingCode)
	}
	// Evidence is bound to the head the request was made at: judge it now
	// rather than sign an approval that cannot complete.
	if joining.Evidence != nil && a.opts.Attestation != nil {
		in := chain.AttestationInput{Account: acct, Type: typ, Prev: st.Head().Hash, Nonce: nonce[:], Device: &joining}
		if err := a.opts.Attestation.VerifyAttestation(in); err != nil {
			return nil, fmt.Errorf("device: the joining device's attestation evidence is not accepted at the current chain head (if the chain moved since the request, the device must file it again): %w", err)
		}
	}
	me, _ := st.Device(a.deviceID())
	mine := me.Device
	sas, err := chain.SAS(acct, &mine, &joining, nonce, ph)
	if err != nil {
		return nil, err
	}
	if confirm != nil {
		if err := confirm(sas, joining.Name); err != nil {
			return nil, err
		}
	}
	if err := a.unlock(ctx); err != nil {
		return nil, err
	}
	k, err := a.identity()
	if err != nil {
		return nil, err
	}
	signer, err := newSigner(k, false)
	if err != nil {
		return nil, err
	}
	stmt := chain.Approval{Account: acct, Head: st.Head(), Nonce: nonce, PairingHash: ph, Body: chain.BodyHash(raw)}
	sig, err := chain.SignApproval(stmt, typ, chain.RoleDevice, a.deviceID(), signer)
	if err != nil {
		return nil, err
	}
	out, err := cl.ApproveEnrollment(ctx, requestID, st.Head(), sig.Sig)
	if err != nil {
		return nil, a.checkServerRevoked(ctx, err)
	}
	return &ApproveResult{RequestID: requestID, State: out.State, Device: joining.ID, DeviceName: joining.Name, SAS: sas}, nil
}
