package client

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/enigm/enigm/chain"
)

// Info is GET /v1/info.
type Info struct {
	Version                 int    `json:"version"`
	ServerID                string `json:"server_id"`
	MinRecoveryDelaySeconds int64  `json:"min_recovery_delay_seconds"`
	EnrollmentTTLSeconds    int64  `json:"enrollment_ttl_seconds"`
	TokenTTLSeconds         int64  `json:"token_ttl_seconds"`
}

// Info returns the server's parameters.
func (c *Client) Info(ctx context.Context) (Info, error) {
	var i Info
	return i, c.do(ctx, "GET", "/v1/info", false, nil, &i)
}

// LookupName maps an account name to its id. Names are hints: callers pin
// the id on first use.
func (c *Client) LookupName(ctx context.Context, name string) (chain.AccountID, error) {
	var r struct {
		AccountID string `json:"account_id"`
	}
	if err := c.do(ctx, "GET", "/v1/names/"+url.PathEscape(name), false, nil, &r); err != nil {
		return chain.AccountID{}, err
	}
	return ParseAccountID(r.AccountID)
}

// Policy is the JSON form of chain.Policy.
type Policy struct {
	RequireAdminApproval       bool   `json:"require_admin_approval"`
	RecoveryDelaySeconds       int64  `json:"recovery_delay_seconds"`
	RequireAdminReview         bool   `json:"require_admin_review"`
	MinLevel                   string `json:"min_level"`
	RequireVerifiedAttestation bool   `json:"require_verified_attestation"`
}

// Chain converts to chain.Policy.
func (p Policy) Chain() chain.Policy {
	return chain.Policy{RequireAdminApproval: p.RequireAdminApproval, RecoveryDelay: time.Duration(p.RecoveryDelaySeconds) * time.Second,
		RequireAdminReview: p.RequireAdminReview, MinLevel: chain.Level(p.MinLevel), RequireVerifiedAttestation: p.RequireVerifiedAttestation}
}

// Invite is GET /v1/invites/{code}.
type Invite struct {
	OrgID       string `json:"org_id"`
	OrgName     string `json:"org_name"`
	AccountName string `json:"account_name"`
	AdminKey    string `json:"admin_key"`
	Policy      Policy `json:"policy"`
}

// Invite looks up an organisation invite.
func (c *Client) Invite(ctx context.Context, code string) (Invite, error) {
	var i Invite
	return i, c.do(ctx, "GET", "/v1/invites/"+url.PathEscape(code), false, nil, &i)
}

// CreateAccount registers name with its genesis link.
func (c *Client) CreateAccount(ctx context.Context, name string, genesis *chain.Link, invite string) (chain.AccountID, error) {
	req := map[string]any{"name": name, "genesis": b64(genesis.Bytes())}
	if invite != "" {
		req["invite"] = invite
	}
	var r struct {
		AccountID string `json:"account_id"`
	}
	if err := c.do(ctx, "POST", "/v1/accounts", false, req, &r); err != nil {
		return chain.AccountID{}, err
	}
	return ParseAccountID(r.AccountID)
}

// View is a server's view of a chain: links after some seq and its head.
type View struct {
	Head  chain.Head
	Links [][]byte
}

type jChain struct {
	AccountID string   `json:"account_id"`
	Head      jHead    `json:"head"`
	Links     []string `json:"links"`
}

func (j *jChain) view(acct chain.AccountID) (View, error) {
	var v View
	if j.AccountID != hex.EncodeToString(acct[:]) {
		return v, fmt.Errorf("%w: the server answered for account %s", ErrFork, j.AccountID)
	}
	h, err := j.Head.head()
	if err != nil {
		return v, err
	}
	v.Head = h
	for _, s := range j.Links {
		b, err := unb64(s, "link")
		if err != nil {
			return v, err
		}
		v.Links = append(v.Links, b)
	}
	return v, nil
}

// Chain fetches the links after seq after (all when after < 0).
func (c *Client) Chain(ctx context.Context, acct chain.AccountID, after int64) (View, error) {
	path := "/v1/accounts/" + hex.EncodeToString(acct[:]) + "/chain"
	if after >= 0 {
		path += "?after=" + strconv.FormatInt(after, 10)
	}
	var j jChain
	if err := c.do(ctx, "GET", path, false, nil, &j); err != nil {
		return View{}, err
	}
	return j.view(acct)
}

// AppendLink posts a device-signed link (revoke, rotate, veto, rotate
// recovery) and returns the new head.
func (c *Client) AppendLink(ctx context.Context, l *chain.Link) (chain.Head, error) {
	var r struct {
		Head jHead `json:"head"`
	}
	acct := l.Account()
	if err := c.do(ctx, "POST", "/v1/accounts/"+hex.EncodeToString(acct[:])+"/links", true, map[string]string{"link": b64(l.Bytes())}, &r); err != nil {
		return chain.Head{}, err
	}
	return r.Head.head()
}

// Approval is one approval on an enrollment request.
type Approval struct {
	Role      string `json:"role"`
	Signer    string `json:"signer,omitempty"`
	Signature string `json:"signature"`
}

// Enrollment is an enrollment request as the server reports it.
type Enrollment struct {
	RequestID  string     `json:"request_id"`
	AccountID  string     `json:"account_id"`
	Type       string     `json:"type"`
	State      string     `json:"state"`
	Body       string     `json:"body"`
	DeviceID   string     `json:"device_id"`
	DeviceName string     `json:"device_name"`
	Protection string     `json:"protection"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  time.Time  `json:"expires_at"`
	Head       *jHead     `json:"head,omitempty"`
	Approvals  []Approval `json:"approvals"`
	Reason     string     `json:"reason,omitempty"`
}

// ApprovedHead returns the head the request was approved against.
func (e *Enrollment) ApprovedHead() (chain.Head, bool) {
	if e.Head == nil {
		return chain.Head{}, false
	}
	h, err := e.Head.head()
	return h, err == nil
}

// LinkType returns the request's link type.
func (e *Enrollment) LinkType() (chain.LinkType, error) {
	switch e.Type {
	case "add_device":
		return chain.TypeAddDevice, nil
	case "replace_device":
		return chain.TypeReplaceDevice, nil
	}
	return 0, fmt.Errorf("client: unknown enrollment type %q", e.Type)
}

// BodyBytes decodes the body.
func (e *Enrollment) BodyBytes() ([]byte, error) { return unb64(e.Body, "enrollment body") }

// CreateEnrollment posts a new device's add_device or replace_device body.
func (c *Client) CreateEnrollment(ctx context.Context, acct chain.AccountID, t chain.LinkType, body []byte) (Enrollment, error) {
	var e Enrollment
	err := c.do(ctx, "POST", "/v1/accounts/"+hex.EncodeToString(acct[:])+"/enrollments", false,
		map[string]string{"type": t.String(), "body": b64(body)}, &e)
	return e, err
}

// Enrollments lists the pending requests of the caller's account.
func (c *Client) Enrollments(ctx context.Context, acct chain.AccountID) ([]Enrollment, error) {
	var r struct {
		Enrollments []Enrollment `json:"enrollments"`
	}
	err := c.do(ctx, "GET", "/v1/accounts/"+hex.EncodeToString(acct[:])+"/enrollments", true, nil, &r)
	return r.Enrollments, err
}

// Enrollment fetches one request; its id is the capability.
func (c *Client) Enrollment(ctx context.Context, rid string) (Enrollment, error) {
	var e Enrollment
	return e, c.do(ctx, "GET", "/v1/enrollments/"+url.PathEscape(rid), false, nil, &e)
}

// ApproveEnrollment sends this device's approval signature.
func (c *Client) ApproveEnrollment(ctx context.Context, rid string, head chain.Head, sig []byte) (Enrollment, error) {
	var e Enrollment
	return e, c.do(ctx, "POST", "/v1/enrollments/"+url.PathEscape(rid)+"/approve", true,
		map[string]any{"head": HeadJSON(head), "signature": b64(sig)}, &e)
}

// CompleteEnrollment sends the finished link.
func (c *Client) CompleteEnrollment(ctx context.Context, rid string, l *chain.Link) (chain.Head, error) {
	var r struct {
		Head jHead `json:"head"`
	}
	if err := c.do(ctx, "POST", "/v1/enrollments/"+url.PathEscape(rid)+"/complete", false, map[string]string{"link": b64(l.Bytes())}, &r); err != nil {
		return chain.Head{}, err
	}
	return r.Head.head()
}

// Recovery is a recovery request as the server reports it.
type Recovery struct {
	RecoveryID  string    `json:"recovery_id"`
	AccountID   string    `json:"account_id"`
	DeviceID    string    `json:"device_id"`
	State       string    `json:"state"`
	RequestedAt time.Time `json:"requested_at"`
	NotBefore   time.Time `json:"not_before"`
}

// CreateRecovery posts a recovery_request link.
func (c *Client) CreateRecovery(ctx context.Context, l *chain.Link) (Recovery, error) {
	var r Recovery
	acct := l.Account()
	return r, c.do(ctx, "POST", "/v1/accounts/"+hex.EncodeToString(acct[:])+"/recoveries", false, map[string]string{"link": b64(l.Bytes())}, &r)
}

// Recovery fetches a recovery request.
func (c *Client) Recovery(ctx context.Context, rid string) (Recovery, error) {
	var r Recovery
	return r, c.do(ctx, "GET", "/v1/recoveries/"+url.PathEscape(rid), false, nil, &r)
}

// CompleteRecovery posts the recover link. pending is true when the
// organisation must review it first (202).
func (c *Client) CompleteRecovery(ctx context.Context, rid string, l *chain.Link) (r Recovery, err error) {
	var raw struct {
		Recovery
		Head *jHead `json:"head"`
	}
	err = c.do(ctx, "POST", "/v1/recoveries/"+url.PathEscape(rid)+"/complete", false, map[string]string{"link": b64(l.Bytes())}, &raw)
	r = raw.Recovery
	if err == nil && raw.Head != nil && r.State == "" {
		r.State = "completed"
	}
	return r, err
}

// Envelope is one relayed envelope.
type Envelope struct {
	AccountID string `json:"account_id,omitempty"`
	DeviceID  string `json:"device_id,omitempty"`
	ID        string `json:"id,omitempty"`
	From      string `json:"from_account,omitempty"`
	FromDev   string `json:"from_device,omitempty"`
	Kind      string `json:"kind,omitempty"`
	CallID    string `json:"call_id,omitempty"`
	SentAt    string `json:"sent_at,omitempty"`
	Cipher    string `json:"ciphertext"`
}

// Rejected is an envelope the relay refused.
type Rejected struct {
	DeviceID string `json:"device_id"`
	Reason   string `json:"reason"`
}

// Send hands envelopes to the relay.
func (c *Client) Send(ctx context.Context, kind, callID string, envs []Envelope) (accepted []string, rejected []Rejected, err error) {
	req := map[string]any{"kind": kind, "envelopes": envs}
	if callID != "" {
		req["call_id"] = callID
	}
	var r struct {
		Accepted []string   `json:"accepted"`
		Rejected []Rejected `json:"rejected"`
	}
	err = c.do(ctx, "POST", "/v1/messages", true, req, &r)
	return r.Accepted, r.Rejected, err
}

// Fetch returns this device's queued envelopes.
func (c *Client) Fetch(ctx context.Context, limit int) ([]Envelope, error) {
	var r struct {
		Envelopes []Envelope `json:"envelopes"`
	}
	err := c.do(ctx, "GET", "/v1/messages?limit="+strconv.Itoa(limit), true, nil, &r)
	return r.Envelopes, err
}

// Ack deletes delivered envelopes.
func (c *Client) Ack(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	return c.do(ctx, "POST", "/v1/messages/ack", true, map[string]any{"ids": ids}, nil)
}

// Cipher decodes an envelope's ciphertext.
func (e *Envelope) CipherBytes() ([]byte, error) { return unb64(e.Cipher, "ciphertext") }
