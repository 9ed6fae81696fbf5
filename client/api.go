package client

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/chain"
)

// The API's bodies as this client returns them (package api).
type (
	Info       = api.Info
	Policy     = api.Policy
	Invite     = api.Invite
	Approval   = api.Approval
	Enrollment = api.Enrollment
	Recovery   = api.Recovery
	Envelope   = api.Envelope
	Rejected   = api.Rejected
)

// Info returns the server's parameters.
func (c *Client) Info(ctx context.Context) (Info, error) {
	var i Info
	return i, c.do(ctx, "GET", "/v1/info", false, nil, &i)
}

// LookupName maps an account name to its id. Names are hints: callers pin
// the id on first use.
func (c *Client) LookupName(ctx context.Context, name string) (chain.AccountID, error) {
	var r api.Name
	if err := c.do(ctx, "GET", "/v1/names/"+url.PathEscape(name), false, nil, &r); err != nil {
		return chain.AccountID{}, err
	}
	return api.ParseAccountID(r.AccountID)
}

// Invite looks up an organisation invite.
func (c *Client) Invite(ctx context.Context, code string) (Invite, error) {
	var i Invite
	return i, c.do(ctx, "GET", "/v1/invites/"+url.PathEscape(code), false, nil, &i)
}

// CreateAccount registers name with its genesis link.
func (c *Client) CreateAccount(ctx context.Context, name string, genesis *chain.Link, invite string) (chain.AccountID, error) {
	var r api.AccountCreated
	if err := c.doCBOR(ctx, "POST", "/v1/accounts", false, &api.CreateAccount{Name: name, Genesis: genesis.Bytes(), Invite: invite}, &r); err != nil {
		return chain.AccountID{}, err
	}
	return api.ParseAccountID(r.AccountID)
}

// View is a server's view of a chain: links after some seq and its head.
type View struct {
	Head  chain.Head
	Links [][]byte
}

func view(acct chain.AccountID, j *api.Chain) (View, error) {
	var v View
	if j.AccountID != hex.EncodeToString(acct[:]) {
		return v, fmt.Errorf("%w: the server answered for account %s", ErrFork, j.AccountID)
	}
	h, err := j.Head.Chain()
	if err != nil {
		return v, fmt.Errorf("client: malformed head from the server: %w", err)
	}
	return View{Head: h, Links: j.Links}, nil
}

// Chain fetches the links after seq after (all when after < 0), without
// asking the server to check the head it builds on: Sync uses ChainAfter.
func (c *Client) Chain(ctx context.Context, acct chain.AccountID, after int64) (View, error) {
	return c.chain(ctx, acct, api.ChainQuery{After: max(after, -1)})
}

// ChainAfter fetches the links after head, a head this device verified of
// acct: the server sends only the links after it, and refuses with 409
// not_on_chain when head is not on its chain, which is ErrRollback (the
// server's chain ends before head) or ErrFork (it holds another link at
// head's seq) — never a reason to fetch the whole chain again. The links
// are not verified here: Extend verifies them against the state of head.
func (c *Client) ChainAfter(ctx context.Context, acct chain.AccountID, head chain.Head) (View, error) {
	v, err := c.chain(ctx, acct, api.ChainQueryAfter(head))
	var ae *APIError
	if errors.As(err, &ae) && ae.Code == api.CodeNotOnChain {
		if ae.Head != nil && ae.Head.Seq < head.Seq {
			return View{}, fmt.Errorf("%w: account %s: the server's head is seq %d, this device verified seq %d: %w", ErrRollback, acct, ae.Head.Seq, head.Seq, err)
		}
		return View{}, fmt.Errorf("%w: account %s: the server's chain does not hold the link %d this device verified: %w", ErrFork, acct, head.Seq, err)
	}
	return v, err
}

func (c *Client) chain(ctx context.Context, acct chain.AccountID, q api.ChainQuery) (View, error) {
	var j api.Chain
	if err := c.do(ctx, "GET", "/v1/accounts/"+hex.EncodeToString(acct[:])+"/chain"+q.Encode(), false, nil, &j); err != nil {
		return View{}, err
	}
	return view(acct, &j)
}

// AppendLink posts a device-signed link (revoke, rotate, veto, rotate
// recovery) and returns the new head.
func (c *Client) AppendLink(ctx context.Context, l *chain.Link) (chain.Head, error) {
	var r api.HeadResponse
	acct := l.Account()
	if err := c.doCBOR(ctx, "POST", "/v1/accounts/"+hex.EncodeToString(acct[:])+"/links", true, &api.LinkRequest{Link: l.Bytes()}, &r); err != nil {
		return chain.Head{}, err
	}
	return r.Head.Chain()
}

// CreateEnrollment posts a new device's add_device or replace_device body.
func (c *Client) CreateEnrollment(ctx context.Context, acct chain.AccountID, t chain.LinkType, body []byte) (Enrollment, error) {
	var e Enrollment
	err := c.doCBOR(ctx, "POST", "/v1/accounts/"+hex.EncodeToString(acct[:])+"/enrollments", false,
		&api.EnrollRequest{Type: t.String(), Body: body}, &e)
	return e, err
}

// Enrollments lists the pending requests of the caller's account.
func (c *Client) Enrollments(ctx context.Context, acct chain.AccountID) ([]Enrollment, error) {
	var r api.EnrollmentList
	err := c.do(ctx, "GET", "/v1/accounts/"+hex.EncodeToString(acct[:])+"/enrollments", true, nil, &r)
	return r.Enrollments, err
}

// Enrollment fetches one request; its id is the capability.
func (c *Client) Enrollment(ctx context.Context, rid string) (Enrollment, error) {
	var e Enrollment
	return e, c.doCBOR(ctx, "GET", "/v1/enrollments/"+url.PathEscape(rid), false, nil, &e)
}

// ApproveEnrollment sends this device's approval signature.
func (c *Client) ApproveEnrollment(ctx context.Context, rid string, head chain.Head, sig []byte) (Enrollment, error) {
	var e Enrollment
	return e, c.doCBOR(ctx, "POST", "/v1/enrollments/"+url.PathEscape(rid)+"/approve", true,
		&api.ApproveRequest{Head: api.HeadOf(head), Signature: sig}, &e)
}

// CompleteEnrollment sends the finished link.
func (c *Client) CompleteEnrollment(ctx context.Context, rid string, l *chain.Link) (chain.Head, error) {
	var r api.HeadResponse
	if err := c.doCBOR(ctx, "POST", "/v1/enrollments/"+url.PathEscape(rid)+"/complete", false, &api.LinkRequest{Link: l.Bytes()}, &r); err != nil {
		return chain.Head{}, err
	}
	return r.Head.Chain()
}

// CreateRecovery posts a recovery_request link.
func (c *Client) CreateRecovery(ctx context.Context, l *chain.Link) (Recovery, error) {
	var r Recovery
	acct := l.Account()
	return r, c.doCBOR(ctx, "POST", "/v1/accounts/"+hex.EncodeToString(acct[:])+"/recoveries", false, &api.LinkRequest{Link: l.Bytes()}, &r)
}

// Recovery fetches a recovery request.
func (c *Client) Recovery(ctx context.Context, rid string) (Recovery, error) {
	var r Recovery
	return r, c.doCBOR(ctx, "GET", "/v1/recoveries/"+url.PathEscape(rid), false, nil, &r)
}

// CompleteRecovery posts the recover link. The recovery's state is
// "completed" when the link was appended (201), "pending_review" when the
// organisation must review it first (202).
func (c *Client) CompleteRecovery(ctx context.Context, rid string, l *chain.Link) (Recovery, error) {
	var (
		done api.HeadResponse
		held Recovery
	)
	out := byStatus{http.StatusCreated: &done, http.StatusAccepted: &held}
	status, err := c.send(ctx, "POST", "/v1/recoveries/"+url.PathEscape(rid)+"/complete", false, true, &api.LinkRequest{Link: l.Bytes()}, out)
	if err != nil {
		return Recovery{}, err
	}
	if status == http.StatusCreated {
		return Recovery{RecoveryID: rid, State: api.RecoveryCompleted}, nil
	}
	return held, nil
}

// Fetch returns this device's queued envelopes.
func (c *Client) Fetch(ctx context.Context, limit int) ([]Envelope, error) {
	var r api.Envelopes
	err := c.do(ctx, "GET", "/v1/messages?limit="+strconv.Itoa(limit), true, nil, &r)
	return r.Envelopes, err
}

// Ack deletes delivered envelopes.
func (c *Client) Ack(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	return c.do(ctx, "POST", "/v1/messages/ack", true, &api.AckRequest{IDs: ids}, nil)
}
