package device

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/lifecycle"
)

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
	l, err := a.subjectLink(d, idID, bs)
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
	var err error
	s := chain.Signature{Approval: stmt, Sig: ap.Signature}
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
