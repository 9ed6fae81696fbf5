package device

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/lifecycle"
)

// ErrNoPendingRecovery: the account's verified chain has no recovery
// request pending (none was made, or it was vetoed, completed or cancelled
// by a rotate_recovery).
var ErrNoPendingRecovery = errors.New("device: no recovery is pending in this account's verified chain")

// RecoveryInfo is a recovery request pending in an account's verified
// chain: a recovery_request link not yet vetoed, completed or cancelled.
// Every field comes from links this device verified, never from a server
// field.
type RecoveryInfo struct {
	// RequestID names the request (the hex hash of the recovery_request
	// link): what `enigm veto` names.
	RequestID string
	// Device and Name are the device the recovery would add. The name is
	// chosen by whoever holds the recovery code.
	Device chain.DeviceID
	Name   string
	// Seq is the request link's sequence number.
	Seq uint64
	// RequestedAt is the request link's time.
	RequestedAt time.Time
	// NotBefore is the earliest time a recover link can be appended under
	// the chain's rules: RequestedAt plus the waiting period (the longer of
	// the one in force at the request and the current policy's). Command
	// may hold the completion longer; never shorter.
	NotBefore time.Time
	// Witnessed: this device's witness policy requires witnesses, so a
	// recover link is accepted only on witnessed time (translog.md,
	// "Recovery on witnessed time"). WitnessedAt is when the request was
	// first public under a checkpoint the policy's quorum cosigned, and
	// WitnessedNotBefore that plus the waiting period: no recover link is
	// accepted under a checkpoint witnessed earlier. Both are zero until
	// the server offers evidence this device verifies (WitnessError says
	// why not); they are filled in by online operations (Status online).
	Witnessed          bool
	WitnessedAt        time.Time
	WitnessedNotBefore time.Time
	WitnessError       string
}

// recoveryInfo returns st's pending recovery, or nil.
func recoveryInfo(st *chain.State) *RecoveryInfo {
	if st == nil {
		return nil
	}
	pr, ok := st.PendingRecovery()
	if !ok {
		return nil
	}
	delay := max(pr.Delay, st.Policy().RecoveryDelay)
	return &RecoveryInfo{RequestID: hex.EncodeToString(pr.Request[:]), Device: pr.Device.ID, Name: pr.Device.Name,
		Seq: pr.Seq, RequestedAt: pr.Time, NotBefore: pr.Time.Add(delay)}
}

// PendingRecovery returns the recovery pending in acct's chain as this
// process last verified it (by Sync, Devices, Status or any operation on the
// account), or nil when none is pending or the chain was not verified yet.
func (a *Agent) PendingRecovery(acct chain.AccountID) *RecoveryInfo {
	return recoveryInfo(a.verified[acct])
}

// Veto cancels a pending recovery of this account (any active device). An
// empty recoveryID names the request pending in the verified chain; the
// chain admits at most one pending request at a time (a second
// recovery_request is refused with chain.ErrRecoveryPending), so the
// choice is never ambiguous. A recoveryID that is not the pending one is
// refused, naming the one that is.
func (a *Agent) Veto(ctx context.Context, recoveryID string) (*RecoveryInfo, chain.Head, error) {
	var ri *RecoveryInfo
	head, err := a.retryOnConflict(ctx, func(st *chain.State) (chain.Head, error) {
		ri = recoveryInfo(st)
		switch {
		case ri == nil && recoveryID == "":
			return chain.Head{}, ErrNoPendingRecovery
		case ri == nil:
			return chain.Head{}, fmt.Errorf("%w (not %s)", ErrNoPendingRecovery, recoveryID)
		case recoveryID != "" && ri.RequestID != strings.ToLower(recoveryID):
			return chain.Head{}, fmt.Errorf("%w: %s is not it; the pending request is %s (device %q)", ErrNoPendingRecovery, recoveryID, ri.RequestID, ri.Name)
		}
		pr, _ := st.PendingRecovery()
		return a.appendSigned(ctx, st, &chain.RecoveryVeto{Request: pr.Request}, nil)
	})
	if err != nil {
		return ri, head, err
	}
	acct, _ := a.cfg.account()
	_, err = a.Sync(ctx, acct)
	return ri, head, err
}

// RotateRecovery replaces the account's recovery code: it draws a new code
// and appends a rotate_recovery link signed by this device's identity key
// and by the new recovery key (its proof of possession). From the moment
// Command accepts the link the old code derives a key the chain no longer
// trusts, so a recovery_request signed with it is refused; a pending
// recovery request is cancelled by the same link. The new code is returned
// once and never stored; the caller shows it and destroys it.
func (a *Agent) RotateRecovery(ctx context.Context) (*chain.RecoveryCode, chain.Head, error) {
	acct, st, err := a.own(ctx)
	if err != nil {
		return nil, chain.Head{}, err
	}
	rc, err := chain.GenerateRecoveryCode(rand.Reader)
	if err != nil {
		return nil, chain.Head{}, err
	}
	rk, err := rc.Key()
	if err != nil {
		rc.Destroy()
		return nil, chain.Head{}, err
	}
	defer rk.Destroy()
	head, err := a.appendSigned(ctx, st, &chain.RotateRecovery{Recovery: rk.Public()},
		func(d *chain.Draft) error { return d.Sign(chain.RoleNewRecovery, rk) })
	if err != nil {
		// The answer may have been lost after Command stored the link: if
		// the verified chain now holds the new key, the new code is the
		// account's only code and must be shown.
		if st2, serr := a.chainState(ctx, acct); serr == nil && st2.RecoveryKey().Equal(rk.Public()) {
			return rc, st2.Head(), nil
		}
		rc.Destroy()
		return nil, head, err
	}
	if _, err := a.Sync(ctx, acct); err != nil {
		// The link is accepted: the new code is the account's code even if
		// this sync failed, so it must still be shown.
		return rc, head, err
	}
	return rc, head, nil
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
	cl, acct, st, err := a.joinTarget(ctx, o.Account)
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
	l, err := a.subjectLink(d, idk.ID, bs)
	if err != nil {
		return nil, err
	}
	r, err := cl.CreateRecovery(ctx, l)
	if err != nil {
		a.dropNewKeys(idk, kemk)
		return nil, fmt.Errorf("device: recovery request: %w", err)
	}
	p := &pending{Kind: "recover", RequestID: r.RecoveryID, NotBefore: r.NotBefore}
	if err := a.saveJoin(cl, o.Account, acct, idk, kemk, name, StatusRecovering, p); err != nil {
		return nil, err
	}
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
	if err := a.waitWitnessed(ctx, acct, st); err != nil {
		return err
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
	l, err := a.subjectLink(d, idID, nil)
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
