package device

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"strings"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/lifecycle"
)

// EnrollOptions configure enrollment of this device into an account.
type EnrollOptions struct {
	Account    string // account name or id
	DeviceName string
	// Replace names the device this one replaces (replace_device): the old
	// device approves and ends retired.
	Replace string
}

// SASLine is the short authentication string this device shows for one
// possible approving device.
type SASLine struct {
	Device chain.DeviceID
	Name   string
	SAS    string
}

// EnrollResult is what a new device shows its user.
type EnrollResult struct {
	RequestID   string
	Account     chain.AccountID
	Device      chain.DeviceID
	PairingCode string
	SAS         []SASLine
}

// pairingEncoding is Crockford-like base32 without padding.
var pairingEncoding = base32.NewEncoding("0123456789ABCDEFGHJKMNPQRSTVWXYZ").WithPadding(base32.NoPadding)

// newPairingCode returns 80 random bits as 16 characters in groups of four.
// The code is shown on the new device and typed on the approving one; it
// never reaches the server (only its hash with the nonce does), and 80 bits
// make that hash useless for guessing it.
func newPairingCode() string {
	b := make([]byte, 10)
	rand.Read(b)
	s := pairingEncoding.EncodeToString(b)
	return s[0:4] + "-" + s[4:8] + "-" + s[8:12] + "-" + s[12:16]
}

// normalizePairing accepts lower case, spaces and dashes.
func normalizePairing(code string) string {
	r := strings.NewReplacer("-", "", " ", "", "O", "0", "I", "1", "L", "1")
	c := r.Replace(strings.ToUpper(code))
	if len(c) != 16 {
		return c
	}
	return c[0:4] + "-" + c[4:8] + "-" + c[8:12] + "-" + c[12:16]
}

// Enroll asks to join an account: this device's keys are generated here,
// and a request with its public record goes to Command. Another device
// of the account approves with the pairing code (Approve); then
// FinishEnrollment completes it.
func (a *Agent) Enroll(ctx context.Context, o EnrollOptions) (*EnrollResult, error) {
	if a.cfg.Status == StatusEnrolling && a.cfg.Pending != nil {
		return nil, fmt.Errorf("%w (request %s)", ErrEnrollmentPending, a.cfg.Pending.RequestID)
	}
	if a.cfg.Account != "" {
		return nil, fmt.Errorf("%w (%s)", ErrHasAccount, a.cfg.AccountName)
	}
	cl, acct, st, err := a.joinTarget(ctx, o.Account)
	if err != nil {
		return nil, err
	}
	typ, cause := chain.TypeAddDevice, lifecycle.DeviceEnrollment
	var old chain.DeviceID
	if o.Replace != "" {
		if old, err = client.ParseDeviceID(o.Replace); err != nil {
			return nil, err
		}
		if !st.IsActive(old) {
			return nil, fmt.Errorf("device: %s is not an active device of %s", old, o.Account)
		}
		typ, cause = chain.TypeReplaceDevice, lifecycle.Replacement
	}
	if err := a.ensureKeystore(ctx); err != nil {
		return nil, err
	}
	idk, kemk, err := a.newKeys(cause)
	if err != nil {
		return nil, err
	}
	name := deviceName(o.DeviceName)
	var nonce [chain.NonceSize]byte
	rand.Read(nonce[:])
	rec, _, err := a.record(name, idk, kemk, attestFor{Type: typ, Account: acct, Prev: st.Head().Hash, Nonce: nonce[:]})
	if err != nil {
		return nil, err
	}
	code := newPairingCode()
	ph := chain.PairingHash(nonce, code)
	var body chain.Body = &chain.AddDevice{Device: rec, Nonce: nonce, PairingHash: ph}
	if typ == chain.TypeReplaceDevice {
		body = &chain.ReplaceDevice{Old: old, Device: rec, Nonce: nonce, PairingHash: ph}
	}
	enc, err := chain.EncodeBody(body)
	if err != nil {
		return nil, err
	}
	e, err := cl.CreateEnrollment(ctx, acct, typ, enc)
	if err != nil {
		a.dropNewKeys(idk, kemk)
		return nil, fmt.Errorf("device: enrollment request: %w", err)
	}
	kind := "enroll"
	if typ == chain.TypeReplaceDevice {
		kind = "replace"
	}
	p := &pending{Kind: kind, RequestID: e.RequestID, Body: enc, PairingCode: code, Old: o.Replace}
	if err := a.saveJoin(cl, o.Account, acct, idk, kemk, name, StatusEnrolling, p); err != nil {
		return nil, err
	}
	res := &EnrollResult{RequestID: e.RequestID, Account: acct, Device: a.deviceID(), PairingCode: code}
	for _, d := range st.Active() {
		if typ == chain.TypeReplaceDevice && d.ID != old {
			continue
		}
		dd := d.Device
		sas, err := chain.SAS(acct, &dd, &rec, nonce, ph)
		if err != nil {
			return nil, err
		}
		res.SAS = append(res.SAS, SASLine{Device: d.ID, Name: d.Name, SAS: sas})
	}
	return res, nil
}
