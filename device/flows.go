package device

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/hybrid"
	"github.com/enigm/enigm/keystore"
	"github.com/enigm/enigm/lifecycle"
)

// InitOptions configure account setup on the first device.
type InitOptions struct {
	Account       string        // account name
	DeviceName    string        // this device's display name
	Invite        string        // organisation invite code (managed accounts)
	Org           string        // organisation id the invite must be for ("" = whatever it names)
	RecoveryDelay time.Duration // unmanaged accounts; 0 means the chain default (24h)
	// SetRecoveryDelay distinguishes "0 on purpose" from "not given".
	SetRecoveryDelay bool
}

// InitResult is what account setup produced.
type InitResult struct {
	Account      chain.AccountID
	Device       chain.DeviceID
	RecoveryCode *chain.RecoveryCode // show once; never stored
	Fingerprint  string
}

// Init sets up a new account with this device as its first device: keys,
// recovery code, genesis link, registration with Command.
func (a *Agent) Init(ctx context.Context, o InitOptions) (*InitResult, error) {
	if a.cfg.Account != "" || a.cfg.Status != StatusNone {
		return nil, fmt.Errorf("%w (%s)", ErrHasAccount, a.cfg.AccountName)
	}
	if err := checkName(o.Account); err != nil {
		return nil, err
	}
	cl, err := a.client()
	if err != nil {
		return nil, err
	}
	policy := chain.DefaultPolicy()
	if o.SetRecoveryDelay {
		policy.RecoveryDelay = o.RecoveryDelay
	}
	var org *chain.Org
	if o.Invite != "" {
		inv, err := cl.Invite(ctx, o.Invite)
		if err != nil {
			return nil, fmt.Errorf("device: invite: %w", err)
		}
		if o.Org != "" && inv.OrgID != o.Org {
			return nil, fmt.Errorf("device: the invite is for organisation %q, not %q", inv.OrgID, o.Org)
		}
		if inv.AccountName != o.Account {
			return nil, fmt.Errorf("device: the invite is for account %q, not %q", inv.AccountName, o.Account)
		}
		kb, err := decodeB64(inv.AdminKey)
		if err != nil {
			return nil, err
		}
		admin, err := hybrid.ParsePublicKey(kb)
		if err != nil {
			return nil, fmt.Errorf("device: the organisation's admin key: %w", err)
		}
		org = &chain.Org{ID: inv.OrgID, AdminKey: admin}
		policy = inv.Policy.Chain()
	}
	if err := a.ensureKeystore(ctx); err != nil {
		return nil, err
	}
	idk, kemk, err := a.newKeys(lifecycle.AccountSetup)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*InitResult, error) {
		a.ks.RetireKey(idk.ID, lifecycle.Retirement)
		a.ks.RetireKey(kemk.ID, lifecycle.Retirement)
		return nil, err
	}
	rc, err := chain.GenerateRecoveryCode(rand.Reader)
	if err != nil {
		return fail(err)
	}
	rk, err := rc.Key()
	if err != nil {
		return fail(err)
	}
	defer rk.Destroy()
	name := deviceName(o.DeviceName)
	rec, bs, err := a.record(name, idk, kemk, attestFor{Type: chain.TypeGenesis})
	if err != nil {
		return fail(err)
	}
	d, err := chain.NewGenesis(a.now(), &chain.Genesis{Device: rec, Recovery: rk.Public(), Policy: policy, Org: org})
	if err != nil {
		return fail(err)
	}
	if err := a.signSubject(d, idk.ID, bs); err != nil {
		return fail(err)
	}
	if err := d.Sign(chain.RoleNewRecovery, rk); err != nil {
		return fail(err)
	}
	g, err := d.Link()
	if err != nil {
		return fail(err)
	}
	acct, err := cl.CreateAccount(ctx, o.Account, g, o.Invite)
	if err != nil {
		return fail(fmt.Errorf("device: registering the account: %w", err))
	}
	if acct != chain.AccountID(g.Hash()) && org == nil {
		return fail(fmt.Errorf("device: the server registered account %s for a genesis whose hash is %s", acct, g.Hash()))
	}
	a.cfg.AccountName, a.cfg.Account = o.Account, hex.EncodeToString(acct[:])
	a.cfg.Identity, a.cfg.KEM, a.cfg.DeviceName = idk.ID.String(), kemk.ID.String(), name
	a.cfg.Server = cl.Server()
	a.cfg.Status = StatusEnrolling
	if err := a.db.save(a.cfg); err != nil {
		return nil, err
	}
	cl.SetIdentity(&client.Identity{Account: acct, Device: a.deviceID(), Sign: a.signAs})
	if _, err := a.Sync(ctx, acct); err != nil { // verifies the genesis (cosigned for managed accounts) and activates
		return nil, err
	}
	return &InitResult{Account: acct, Device: a.deviceID(), RecoveryCode: rc, Fingerprint: chain.Fingerprint(acct)}, nil
}

func checkName(n string) error {
	if len(n) == 0 || len(n) > 64 {
		return fmt.Errorf("device: account name must be 1-64 characters")
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("device: account name %q: use only a-z, 0-9, '.', '_' and '-'", n)
		}
	}
	return nil
}

func deviceName(n string) string {
	if n != "" {
		return n
	}
	if h, err := osHostname(); err == nil && h != "" {
		if len(h) > chain.MaxNameLen {
			h = h[:chain.MaxNameLen]
		}
		return h
	}
	return "device"
}

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
		return nil, fmt.Errorf("device: an enrollment is already pending (request %s); finish it with `enigm sync`", a.cfg.Pending.RequestID)
	}
	if a.cfg.Account != "" {
		return nil, fmt.Errorf("%w (%s)", ErrHasAccount, a.cfg.AccountName)
	}
	cl, err := a.client()
	if err != nil {
		return nil, err
	}
	acct, err := a.resolve(ctx, o.Account)
	if err != nil {
		return nil, err
	}
	st, err := a.chainState(ctx, acct)
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
		a.ks.RetireKey(idk.ID, lifecycle.Retirement)
		a.ks.RetireKey(kemk.ID, lifecycle.Retirement)
		return nil, fmt.Errorf("device: enrollment request: %w", err)
	}
	kind := "enroll"
	if typ == chain.TypeReplaceDevice {
		kind = "replace"
	}
	a.cfg.AccountName, a.cfg.Account = o.Account, hex.EncodeToString(acct[:])
	if _, err := client.ParseAccountID(o.Account); err == nil {
		a.cfg.AccountName = ""
	}
	a.cfg.Identity, a.cfg.KEM, a.cfg.DeviceName, a.cfg.Server = idk.ID.String(), kemk.ID.String(), name, cl.Server()
	a.cfg.Status = StatusEnrolling
	a.cfg.Pending = &pending{Kind: kind, RequestID: e.RequestID, Body: enc, PairingCode: code}
	if o.Replace != "" {
		a.cfg.Pending.Old = o.Replace
	}
	if err := a.db.save(a.cfg); err != nil {
		return nil, err
	}
	cl.SetIdentity(&client.Identity{Account: acct, Device: a.deviceID(), Sign: a.signAs})
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

// Pending describes a pending enrollment or recovery.
type Pending struct {
	Kind        string
	RequestID   string
	PairingCode string
	NotBefore   time.Time
}

// Pending returns the pending request, if any.
func (a *Agent) Pending() *Pending {
	if a.cfg.Pending == nil {
		return nil
	}
	p := a.cfg.Pending
	return &Pending{Kind: p.Kind, RequestID: p.RequestID, PairingCode: p.PairingCode, NotBefore: p.NotBefore}
}

// ErrWaiting means a pending request cannot finish yet.
var ErrWaiting = errors.New("device: still waiting")

// Finish tries once to complete a pending enrollment, replacement or
// recovery. It returns ErrWaiting (wrapped, with the reason) when others
// still have to act or a waiting period runs.
func (a *Agent) Finish(ctx context.Context) error {
	p := a.cfg.Pending
	if p == nil {
		return nil
	}
	if p.Kind == "recover" {
		return a.finishRecovery(ctx)
	}
	cl, err := a.client()
	if err != nil {
		return err
	}
	e, err := cl.Enrollment(ctx, p.RequestID)
	if err != nil {
		return err
	}
	switch e.State {
	case "pending", "device_approved":
		return fmt.Errorf("%w: request %s is %s", ErrWaiting, p.RequestID, e.State)
	case "denied", "expired":
		a.abandon(ctx)
		return fmt.Errorf("device: the enrollment request was %s %s", e.State, e.Reason)
	case "completed":
		acct, _ := a.cfg.account()
		_, err := a.Sync(ctx, acct)
		return err
	case "approved":
	default:
		return fmt.Errorf("device: unknown enrollment state %q", e.State)
	}
	acct, _ := a.cfg.account()
	cst, err := a.chainState(ctx, acct)
	if err != nil {
		return err
	}
	head, ok := e.ApprovedHead()
	if !ok || head != cst.Head() {
		return fmt.Errorf("%w: the approval was made against another chain head; it must be approved again", ErrWaiting)
	}
	typ, err := e.LinkType()
	if err != nil {
		return err
	}
	body, err := chain.DecodeBody(typ, p.Body)
	if err != nil {
		return err
	}
	d, err := chain.NewDraft(cst, a.linkTime(cst), body)
	if err != nil {
		return err
	}
	stmt, _ := d.Approval()
	for _, ap := range e.Approvals {
		sig, err := approvalSignature(ap, &stmt)
		if err != nil {
			return err
		}
		d.AddSignature(sig)
	}
	idID, err := a.keyID(a.cfg.Identity)
	if err != nil {
		return err
	}
	if err := a.unlock(ctx); err != nil {
		return err
	}
	bs, err := a.binding()
	if err != nil {
		return err
	}
	if err := a.signSubject(d, idID, bs); err != nil {
		return err
	}
	l, err := d.Link()
	if err != nil {
		return err
	}
	if _, err := cl.CompleteEnrollment(ctx, p.RequestID, l); err != nil {
		if errors.Is(err, client.ErrConflict) {
			return fmt.Errorf("%w: the chain moved since the approval; approve the request again", ErrWaiting)
		}
		return err
	}
	_, err = a.Sync(ctx, acct)
	return err
}

func approvalSignature(ap client.Approval, stmt *chain.Approval) (chain.Signature, error) {
	sig, err := decodeB64(ap.Signature)
	if err != nil {
		return chain.Signature{}, err
	}
	s := chain.Signature{Approval: stmt, Sig: sig}
	switch ap.Role {
	case "device":
		s.Role = chain.RoleDevice
		if s.Signer, err = client.ParseDeviceID(ap.Signer); err != nil {
			return s, err
		}
	case "org":
		s.Role = chain.RoleOrg
	default:
		return s, fmt.Errorf("device: approval in unknown role %q", ap.Role)
	}
	return s, nil
}

// abandon forgets a pending request that can no longer complete and
// retires the keys generated for it.
func (a *Agent) abandon(ctx context.Context) {
	for _, h := range []string{a.cfg.Identity, a.cfg.KEM} {
		if id, err := a.keyID(h); err == nil {
			a.ks.RetireKey(id, lifecycle.Retirement)
		}
	}
	if acct, ok := a.cfg.account(); ok {
		a.db.forgetChain(acct)
		delete(a.verified, acct)
	}
	*a.cfg = config{Server: a.cfg.Server, Contacts: a.cfg.Contacts}
	a.db.save(a.cfg)
}

// Wait calls Finish until it completes, fails, or ctx ends.
func (a *Agent) Wait(ctx context.Context) error {
	for {
		err := a.Finish(ctx)
		if !errors.Is(err, ErrWaiting) {
			return err
		}
		a.progress("waiting: %v", strings.TrimPrefix(err.Error(), ErrWaiting.Error()+": "))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(a.opts.Poll):
		}
	}
}

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
	raw, err := e.BodyBytes()
	if err != nil {
		return nil, err
	}
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

// RevokeTarget describes a device about to be revoked, from this
// device's freshly verified chain.
type RevokeTarget struct {
	Device chain.DeviceID
	Name   string
	// Self: the target is this device; its keys are destroyed.
	Self bool
	// Last: the target is the account's last active device; afterwards only
	// the recovery code can bring the account back.
	Last bool
}

// RevokeOptions are the extra confirmations Revoke needs for the two
// revocations that cannot be undone from another device.
type RevokeOptions struct {
	ThisDevice bool // allow revoking this device itself
	LastDevice bool // allow revoking the account's last active device
}

// Errors of Revoke without the matching RevokeOptions.
var (
	// ErrRevokeThisDevice: the target is this device and
	// RevokeOptions.ThisDevice is not set.
	ErrRevokeThisDevice = errors.New("device: the device to revoke is this device (its keys will be destroyed)")
	// ErrRevokeLastDevice: the target is the account's last active device
	// and RevokeOptions.LastDevice is not set.
	ErrRevokeLastDevice = errors.New("device: the device to revoke is the account's last active device (only the recovery code can bring the account back)")
)

// CheckRevoke verifies the account's chain and describes target, so that a
// caller can ask for the confirmations Revoke will need.
func (a *Agent) CheckRevoke(ctx context.Context, target chain.DeviceID) (RevokeTarget, error) {
	_, st, err := a.own(ctx)
	if err != nil {
		return RevokeTarget{}, err
	}
	return revokeTarget(a, st, target)
}

func revokeTarget(a *Agent, st *chain.State, target chain.DeviceID) (RevokeTarget, error) {
	d, ok := st.Device(target)
	if !ok || d.Status != chain.StatusActive {
		return RevokeTarget{}, fmt.Errorf("device: %s is not an active device of this account", target)
	}
	return RevokeTarget{Device: target, Name: d.Name, Self: target == a.deviceID(), Last: st.ActiveCount() == 1}, nil
}

// Revoke revokes a device of this account (this device's signature). If it
// is this device, its keys are destroyed once the chain shows it. Revoking
// this device needs o.ThisDevice and revoking the last active device needs
// o.LastDevice (ErrRevokeThisDevice, ErrRevokeLastDevice), judged on the
// chain verified here, at the moment of signing.
func (a *Agent) Revoke(ctx context.Context, target chain.DeviceID, o RevokeOptions) (chain.Head, error) {
	var acct chain.AccountID
	head, err := a.retryOnConflict(ctx, func(st *chain.State) (chain.Head, error) {
		acct = st.Account()
		t, err := revokeTarget(a, st, target)
		if err != nil {
			return chain.Head{}, err
		}
		if t.Self && !o.ThisDevice {
			return chain.Head{}, ErrRevokeThisDevice
		}
		if t.Last && !o.LastDevice {
			return chain.Head{}, ErrRevokeLastDevice
		}
		return a.appendSigned(ctx, st, &chain.RevokeDevice{ID: target}, nil)
	})
	if err != nil {
		return head, err
	}
	if _, err := a.Sync(ctx, acct); err != nil && !errors.Is(err, ErrRevoked) {
		return head, err
	}
	return head, nil
}

// Rotate replaces this device's identity and KEM keys: new keys are
// created, the rotate_keys link is signed by the old identity key and the
// new one (and the binding key), and once Command accepted it the new keys
// become active and the old ones superseded.
func (a *Agent) Rotate(ctx context.Context) (identity, kem keystore.KeyID, err error) {
	acct, st, err := a.own(ctx)
	if err != nil {
		return identity, kem, err
	}
	if err := a.unlock(ctx); err != nil {
		return identity, kem, err
	}
	oldID, err := a.keyID(a.cfg.Identity)
	if err != nil {
		return identity, kem, err
	}
	oldKEM, err := a.keyID(a.cfg.KEM)
	if err != nil {
		return identity, kem, err
	}
	nid, nkem, err := a.newKeys(lifecycle.Rotation)
	if err != nil {
		return identity, kem, err
	}
	abort := func(err error) (keystore.KeyID, keystore.KeyID, error) {
		a.ks.RetireKey(nid.ID, lifecycle.Retirement)
		a.ks.RetireKey(nkem.ID, lifecycle.Retirement)
		return identity, kem, err
	}
	npub, err := hybrid.ParsePublicKey(nid.Public)
	if err != nil {
		return abort(err)
	}
	d, err := chain.NewDraft(st, a.linkTime(st), &chain.RotateKeys{ID: a.deviceID(), Identity: npub, KEM: nkem.Public})
	if err != nil {
		return abort(err)
	}
	ok, err := a.ks.Identity(oldID)
	if err != nil {
		return abort(err)
	}
	oldSigner, err := newSigner(ok, false)
	if err != nil {
		return abort(err)
	}
	if err := d.SignDevice(a.deviceID(), oldSigner); err != nil {
		return abort(err)
	}
	bs, err := a.binding()
	if err != nil {
		return abort(err)
	}
	if err := a.signSubject(d, nid.ID, bs); err != nil {
		return abort(err)
	}
	l, err := d.Link()
	if err != nil {
		return abort(err)
	}
	cl, _ := a.client()
	if _, err := cl.AppendLink(ctx, l); err != nil {
		return abort(a.checkServerRevoked(ctx, err))
	}
	// The chain now names the new keys: promote them locally.
	if err := a.ks.Promote(oldID, nid.ID, keystore.RotateOptions{}); err != nil {
		return identity, kem, err
	}
	if err := a.ks.Promote(oldKEM, nkem.ID, keystore.RotateOptions{}); err != nil {
		return identity, kem, err
	}
	a.cfg.Identity, a.cfg.KEM = nid.ID.String(), nkem.ID.String()
	if err := a.db.save(a.cfg); err != nil {
		return identity, kem, err
	}
	cl.SetIdentity(&client.Identity{Account: acct, Device: a.deviceID(), Sign: a.signAs})
	_, err = a.Sync(ctx, acct)
	return nid.ID, nkem.ID, err
}

// RecoverOptions configure recovery on a new device.
type RecoverOptions struct {
	Account    string
	DeviceName string
	Code       string // the recovery code
}

// RecoverResult describes a started recovery.
type RecoverResult struct {
	RecoveryID string
	Account    chain.AccountID
	Device     chain.DeviceID
	NotBefore  time.Time
}

// Recover starts account recovery on this (new) device with the recovery
// code: a recovery_request link signed by the recovery key and this
// device's new keys. The account's devices can veto it during the waiting
// period; afterwards Finish completes it. Recovery restores the account's
// device association, never message keys: this device can read only what is
// sent to it after it joins.
func (a *Agent) Recover(ctx context.Context, o RecoverOptions) (*RecoverResult, error) {
	if a.cfg.Account != "" {
		return nil, fmt.Errorf("%w (%s)", ErrHasAccount, a.cfg.AccountName)
	}
	rc, err := chain.ParseRecoveryCode(o.Code)
	if err != nil {
		return nil, fmt.Errorf("device: recovery code: %w", err)
	}
	defer rc.Destroy()
	rk, err := rc.Key()
	if err != nil {
		return nil, err
	}
	defer rk.Destroy()
	cl, err := a.client()
	if err != nil {
		return nil, err
	}
	acct, err := a.resolve(ctx, o.Account)
	if err != nil {
		return nil, err
	}
	st, err := a.chainState(ctx, acct)
	if err != nil {
		return nil, err
	}
	if !st.RecoveryKey().Equal(rk.Public()) {
		return nil, ErrWrongRecoveryCode
	}
	if err := a.ensureKeystore(ctx); err != nil {
		return nil, err
	}
	idk, kemk, err := a.newKeys(lifecycle.Recovery)
	if err != nil {
		return nil, err
	}
	name := deviceName(o.DeviceName)
	rec, bs, err := a.record(name, idk, kemk, attestFor{Type: chain.TypeRecoveryRequest, Account: acct, Prev: st.Head().Hash})
	if err != nil {
		return nil, err
	}
	d, err := chain.NewDraft(st, a.linkTime(st), &chain.RecoveryRequest{Device: rec})
	if err != nil {
		return nil, err
	}
	if err := d.Sign(chain.RoleRecovery, rk); err != nil {
		return nil, err
	}
	if err := a.signSubject(d, idk.ID, bs); err != nil {
		return nil, err
	}
	l, err := d.Link()
	if err != nil {
		return nil, err
	}
	r, err := cl.CreateRecovery(ctx, l)
	if err != nil {
		a.ks.RetireKey(idk.ID, lifecycle.Retirement)
		a.ks.RetireKey(kemk.ID, lifecycle.Retirement)
		return nil, fmt.Errorf("device: recovery request: %w", err)
	}
	a.cfg.AccountName, a.cfg.Account = o.Account, hex.EncodeToString(acct[:])
	if _, err := client.ParseAccountID(o.Account); err == nil {
		a.cfg.AccountName = ""
	}
	a.cfg.Identity, a.cfg.KEM, a.cfg.DeviceName, a.cfg.Server = idk.ID.String(), kemk.ID.String(), name, cl.Server()
	a.cfg.Status = StatusRecovering
	a.cfg.Pending = &pending{Kind: "recover", RequestID: r.RecoveryID, NotBefore: r.NotBefore}
	if err := a.db.save(a.cfg); err != nil {
		return nil, err
	}
	cl.SetIdentity(&client.Identity{Account: acct, Device: a.deviceID(), Sign: a.signAs})
	return &RecoverResult{RecoveryID: r.RecoveryID, Account: acct, Device: a.deviceID(), NotBefore: r.NotBefore}, nil
}

func (a *Agent) finishRecovery(ctx context.Context) error {
	p := a.cfg.Pending
	cl, err := a.client()
	if err != nil {
		return err
	}
	acct, _ := a.cfg.account()
	r, err := cl.Recovery(ctx, p.RequestID)
	if err != nil {
		return err
	}
	switch r.State {
	case "vetoed", "denied":
		a.abandon(ctx)
		return fmt.Errorf("device: the recovery request was %s", r.State)
	case "completed":
		_, err := a.Sync(ctx, acct)
		return err
	case "pending_review":
		return fmt.Errorf("%w: the organisation's admin has to review the recovery", ErrWaiting)
	}
	if a.now().Before(r.NotBefore) {
		return fmt.Errorf("%w: the waiting period ends at %s", ErrWaiting, r.NotBefore.UTC().Format(time.RFC3339))
	}
	st, err := a.chainState(ctx, acct)
	if err != nil {
		return err
	}
	pr, ok := st.PendingRecovery()
	if !ok || hex.EncodeToString(pr.Request[:]) != p.RequestID {
		a.abandon(ctx)
		return fmt.Errorf("device: the account's chain no longer has this recovery request pending (vetoed or replaced)")
	}
	// Command counts the waiting period from when it accepted the request
	// (r.NotBefore); the chain counts it on link times, from the request's
	// (within Command's skew of the accepted time). Wait for both rather
	// than date the recover link ahead.
	if end := pr.Time.Add(max(pr.Delay, st.Policy().RecoveryDelay)); a.now().Before(end) {
		return fmt.Errorf("%w: the waiting period ends at %s", ErrWaiting, end.UTC().Format(time.RFC3339))
	}
	if err := a.unlock(ctx); err != nil {
		return err
	}
	d, err := chain.NewDraft(st, a.linkTime(st), &chain.Recover{Request: pr.Request})
	if err != nil {
		return err
	}
	idID, err := a.keyID(a.cfg.Identity)
	if err != nil {
		return err
	}
	k, err := a.ks.Identity(idID)
	if err != nil {
		return err
	}
	s, err := newSigner(k, true)
	if err != nil {
		return err
	}
	if err := d.Sign(chain.RoleSubject, s); err != nil {
		return err
	}
	l, err := d.Link()
	if err != nil {
		return err
	}
	res, err := cl.CompleteRecovery(ctx, p.RequestID, l)
	if err != nil {
		var ae *client.APIError
		if errors.As(err, &ae) && ae.Code == "too_early" {
			return fmt.Errorf("%w: %s", ErrWaiting, ae.Message)
		}
		return err
	}
	if res.State == "pending_review" {
		return fmt.Errorf("%w: the organisation's admin has to review the recovery", ErrWaiting)
	}
	_, err = a.Sync(ctx, acct)
	return err
}

// appendSigned builds a link with body at the head of st, signs it with
// this device's identity key (and with extra, when not nil) and appends it
// through Command.
// conflictRetries is how often a revocation or veto is rebuilt on a newer
// head after losing the compare-and-append to another link: a device that
// keeps appending (Command bounds how fast, RateLimits.LinkPerDevice)
// cannot keep the owner's revocation or veto out.
const conflictRetries = 5

// retryOnConflict runs build on this account's freshly synced, verified
// state (own), and again on a newer one each time Command answers that the
// head moved (409 conflict), at most conflictRetries more times.
func (a *Agent) retryOnConflict(ctx context.Context, build func(st *chain.State) (chain.Head, error)) (chain.Head, error) {
	for try := 0; ; try++ {
		_, st, err := a.own(ctx)
		if err != nil {
			return chain.Head{}, err
		}
		head, err := build(st)
		if !errors.Is(err, client.ErrConflict) || try == conflictRetries {
			return head, err
		}
	}
}

func (a *Agent) appendSigned(ctx context.Context, st *chain.State, body chain.Body, extra func(*chain.Draft) error) (chain.Head, error) {
	if err := a.unlock(ctx); err != nil {
		return chain.Head{}, err
	}
	k, err := a.identity()
	if err != nil {
		return chain.Head{}, err
	}
	signer, err := newSigner(k, false)
	if err != nil {
		return chain.Head{}, err
	}
	d, err := chain.NewDraft(st, a.linkTime(st), body)
	if err != nil {
		return chain.Head{}, err
	}
	if err := d.SignDevice(a.deviceID(), signer); err != nil {
		return chain.Head{}, err
	}
	if extra != nil {
		if err := extra(d); err != nil {
			return chain.Head{}, err
		}
	}
	l, err := d.Link()
	if err != nil {
		return chain.Head{}, err
	}
	cl, _ := a.client()
	head, err := cl.AppendLink(ctx, l)
	if err != nil {
		return head, a.checkServerRevoked(ctx, err)
	}
	return head, nil
}
