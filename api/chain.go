package api

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/translog"
)

// Head is a chain head: {"seq": 7, "hash": "<64 hex>"}.
type Head struct {
	Seq  uint64 `json:"seq" cbor:"1,keyasint,omitempty"`
	Hash string `json:"hash" cbor:"2,keyasint,omitempty"`
}

// HeadOf returns the API form of h.
func HeadOf(h chain.Head) Head { return Head{Seq: h.Seq, Hash: h.Hash.String()} }

// Validate checks the hash.
func (h Head) Validate() error { return checkHex("head.hash", h.Hash, chain.HashSize) }

// Chain returns h as a chain.Head.
func (h Head) Chain() (chain.Head, error) {
	var out chain.Head
	if err := h.Validate(); err != nil {
		return out, err
	}
	out.Seq = h.Seq
	hex.Decode(out.Hash[:], []byte(h.Hash))
	return out, nil
}

// Policy is the organisation and account policy as the API carries it
// (and as an organisation's policy is stored: keep the tags).
type Policy struct {
	RequireAdminApproval       bool   `json:"require_admin_approval"`
	RecoveryDelaySeconds       int64  `json:"recovery_delay_seconds"`
	RequireAdminReview         bool   `json:"require_admin_review"`
	MinLevel                   string `json:"min_level"`
	RequireVerifiedAttestation bool   `json:"require_verified_attestation"`
	// WitnessPolicy is the organisation's c2sp.org/tlog-policy text
	// (chain.Policy.WitnessPolicy), WitnessMaxAgeSeconds its bound on
	// the cosignatures' age; absent when there is none.
	WitnessPolicy        string `json:"witness_policy,omitempty"`
	WitnessMaxAgeSeconds int64  `json:"witness_max_age_seconds,omitempty"`
}

// ChainPolicy converts p to the chain's policy.
func (p Policy) ChainPolicy() chain.Policy {
	return chain.Policy{
		RequireAdminApproval:       p.RequireAdminApproval,
		RecoveryDelay:              time.Duration(p.RecoveryDelaySeconds) * time.Second,
		RequireAdminReview:         p.RequireAdminReview,
		MinLevel:                   chain.Level(p.MinLevel),
		RequireVerifiedAttestation: p.RequireVerifiedAttestation,
		WitnessPolicy:              p.WitnessPolicy,
		WitnessMaxAge:              time.Duration(p.WitnessMaxAgeSeconds) * time.Second,
	}
}

// PolicyFromChain converts a chain policy to the API's.
func PolicyFromChain(p chain.Policy) Policy {
	return Policy{
		RequireAdminApproval:       p.RequireAdminApproval,
		RecoveryDelaySeconds:       int64(p.RecoveryDelay / time.Second),
		RequireAdminReview:         p.RequireAdminReview,
		MinLevel:                   string(p.MinLevel),
		RequireVerifiedAttestation: p.RequireVerifiedAttestation,
		WitnessPolicy:              p.WitnessPolicy,
		WitnessMaxAgeSeconds:       int64(p.WitnessMaxAge / time.Second),
	}
}

// Validate checks p as the chain would: a recovery delay in [0,
// chain.MaxRecoveryDelay], a known protection level (or none), and a
// witness policy (or none) in the chain's form that parses as a
// c2sp.org/tlog-policy (translog.ParsePolicy: the chain checks the form
// only, devices parse it), with a maximum age in [0,
// chain.MaxWitnessMaxAge] only beside it.
func (p Policy) Validate() error {
	if p.RecoveryDelaySeconds < 0 || p.RecoveryDelaySeconds > int64(chain.MaxRecoveryDelay/time.Second) {
		return fmt.Errorf("recovery delay must be in [0, %v]", chain.MaxRecoveryDelay)
	}
	if l := chain.Level(p.MinLevel); l != "" && !l.Valid() {
		return fmt.Errorf("unknown protection level %q (software, hardware-tpm, hardware-pkcs11, hardware-platform)", p.MinLevel)
	}
	if p.WitnessPolicy != "" {
		if err := chain.CheckWitnessPolicyText(p.WitnessPolicy); err != nil {
			return err
		}
		if _, err := translog.ParsePolicy([]byte(p.WitnessPolicy)); err != nil {
			return fmt.Errorf("witness_policy: %w", err)
		}
	}
	if p.WitnessMaxAgeSeconds < 0 || p.WitnessMaxAgeSeconds > int64(chain.MaxWitnessMaxAge/time.Second) {
		return fmt.Errorf("witness maximum age must be in [0, %v]", chain.MaxWitnessMaxAge)
	}
	if p.WitnessMaxAgeSeconds != 0 && p.WitnessPolicy == "" {
		return errors.New("a witness maximum age needs a witness policy")
	}
	return nil
}

// PolicyUpdate is the body of POST /v1/admin/accounts/{id}/policy: a
// partial update. Each field given replaces the account's current value;
// a field left out (or null) keeps it.
type PolicyUpdate struct {
	RequireAdminApproval       *bool   `json:"require_admin_approval,omitempty"`
	RecoveryDelaySeconds       *int64  `json:"recovery_delay_seconds,omitempty"`
	RequireAdminReview         *bool   `json:"require_admin_review,omitempty"`
	MinLevel                   *string `json:"min_level,omitempty"`
	RequireVerifiedAttestation *bool   `json:"require_verified_attestation,omitempty"`
	// WitnessPolicy "" removes the witness policy, and with it its
	// maximum age unless WitnessMaxAgeSeconds is given too.
	WitnessPolicy        *string `json:"witness_policy,omitempty"`
	WitnessMaxAgeSeconds *int64  `json:"witness_max_age_seconds,omitempty"`
}

// Empty reports whether u changes nothing.
func (u PolicyUpdate) Empty() bool { return u == PolicyUpdate{} }

// Validate refuses an update that changes nothing, and values no policy
// may hold.
func (u PolicyUpdate) Validate() error {
	if u.Empty() {
		return errors.New("no policy field given: send the fields to change (the others keep their value)")
	}
	if u.RecoveryDelaySeconds != nil && *u.RecoveryDelaySeconds < 0 {
		return errors.New("recovery_delay_seconds must not be negative")
	}
	if u.WitnessMaxAgeSeconds != nil && *u.WitnessMaxAgeSeconds < 0 {
		return errors.New("witness_max_age_seconds must not be negative")
	}
	return nil
}

// Apply returns p with the fields u gives replaced.
func (u PolicyUpdate) Apply(p Policy) Policy {
	if u.RequireAdminApproval != nil {
		p.RequireAdminApproval = *u.RequireAdminApproval
	}
	if u.RecoveryDelaySeconds != nil {
		p.RecoveryDelaySeconds = *u.RecoveryDelaySeconds
	}
	if u.RequireAdminReview != nil {
		p.RequireAdminReview = *u.RequireAdminReview
	}
	if u.MinLevel != nil {
		p.MinLevel = *u.MinLevel
	}
	if u.RequireVerifiedAttestation != nil {
		p.RequireVerifiedAttestation = *u.RequireVerifiedAttestation
	}
	if u.WitnessPolicy != nil {
		p.WitnessPolicy = *u.WitnessPolicy
		if p.WitnessPolicy == "" {
			p.WitnessMaxAgeSeconds = 0
		}
	}
	if u.WitnessMaxAgeSeconds != nil {
		p.WitnessMaxAgeSeconds = *u.WitnessMaxAgeSeconds
	}
	return p
}

// Device is one device of the server's view of a verified chain.
type Device struct {
	DeviceID   string `json:"device_id"`
	Name       string `json:"name"`
	State      string `json:"state"`
	Protection string `json:"protection"`
	// ApprovedBy is the approving device's id, or "org", "recovery",
	// "genesis".
	ApprovedBy string    `json:"approved_by"`
	AddedAt    time.Time `json:"added_at"`
	AddedSeq   uint64    `json:"added_seq"`
	EndedAt    time.Time `json:"ended_at,omitzero"`
}

// DeviceOf returns the API form of a chain's device record.
func DeviceOf(r chain.DeviceRecord) Device {
	d := Device{
		DeviceID: r.ID.String(), Name: r.Name, State: r.Status.String(), Protection: string(r.Level),
		AddedAt: Seconds(r.AddedAt), AddedSeq: r.AddedSeq,
	}
	switch r.ApprovedBy.Kind {
	case chain.ByGenesis:
		d.ApprovedBy = "genesis"
	case chain.ByDevice:
		d.ApprovedBy = r.ApprovedBy.Device.String()
	case chain.ByRecovery:
		d.ApprovedBy = "recovery"
	case chain.ByOrg:
		d.ApprovedBy = "org"
	}
	if r.Status != chain.StatusActive {
		d.EndedAt = Seconds(r.EndedAt)
	}
	return d
}

// Validate checks the device id and that the state is one of the chain's.
func (d Device) Validate() error {
	if err := checkHex("device_id", d.DeviceID, DeviceIDSize); err != nil {
		return err
	}
	switch d.State {
	case "active", "revoked", "retired":
		return nil
	}
	return fmt.Errorf("device %s: unknown state %q", d.DeviceID, d.State)
}

// Chain is GET /v1/accounts/{id}/chain: the links after some seq, as
// the server verified them, and its head.
type Chain struct {
	AccountID string   `json:"account_id"`
	Head      Head     `json:"head"`
	Links     [][]byte `json:"links"`
}

// Validate checks the ids and that no link is empty or beyond the chain's
// size limit.
func (c Chain) Validate() error {
	if err := checkHex("account_id", c.AccountID, AccountIDSize); err != nil {
		return err
	}
	if err := c.Head.Validate(); err != nil {
		return err
	}
	for i, l := range c.Links {
		if err := checkLink(fmt.Sprintf("links[%d]", i), l); err != nil {
			return err
		}
	}
	return nil
}

// DeviceList is GET /v1/accounts/{id}/devices: the chain and the server's
// view of its device list (devices recompute it from the links).
type DeviceList struct {
	Chain
	Devices []Device `json:"devices"`
}

// Validate checks the chain and every device.
func (d DeviceList) Validate() error {
	if err := d.Chain.Validate(); err != nil {
		return err
	}
	return each(d.Devices)
}

// LinkRequest is the body of POST /v1/accounts/{id}/links,
// /v1/enrollments/{rid}/complete, /v1/accounts/{id}/recoveries and
// /v1/recoveries/{rid}/complete: one link's canonical bytes
// (chain.Link.Bytes). CBOR: {1: bstr}.
type LinkRequest struct {
	Link []byte `json:"link" cbor:"1,keyasint,omitempty"`
}

func (LinkRequest) cborBody() {}

// Validate checks that the link is there and within the chain's size
// limit (it is parsed by chain.ParseLink).
func (q LinkRequest) Validate() error { return checkLink("link", q.Link) }

// HeadResponse is the answer to an append: the new head. CBOR: {1: Head}.
type HeadResponse struct {
	Head Head `json:"head" cbor:"1,keyasint"`
}

// Validate checks the head.
func (r HeadResponse) Validate() error { return r.Head.Validate() }

// CodeNotOnChain is the error code of a 409 answer to a chain or device
// list fetched after a head that is not on the account's chain: the server
// has no link at that seq, or another one. For a client that verified that
// head, it is a fork or rollback alarm, never a reason to fetch the whole
// chain again. The answer carries the server's head.
const CodeNotOnChain = "not_on_chain"

// ChainQuery is the query of GET /v1/accounts/{id}/chain and
// /v1/accounts/{id}/devices: after=SEQ&hash=HASH. With After < 0 (the
// parameters absent) the answer holds every link. With After ≥ 0 it holds
// the links with seq > After; with Hash as well (the hash of the link at
// seq After that the caller verified), the server first checks that the
// link at seq After has that hash and answers 409 CodeNotOnChain if it
// does not, or if its chain ends before After.
type ChainQuery struct {
	After int64  `query:"after"`
	Hash  string `query:"hash"`
}

// ChainQueryAfter returns the query for the links after the verified head h.
func ChainQueryAfter(h chain.Head) ChainQuery {
	return ChainQuery{After: int64(h.Seq), Hash: h.Hash.String()}
}

// Validate checks that After is -1 (all links) or a seq, that Hash is a
// link hash when given, and that it comes with a seq.
func (q ChainQuery) Validate() error {
	if q.After < -1 || q.After > chain.MaxSeq {
		return fmt.Errorf("after must be -1 (all links) or a seq in [0, %d]", chain.MaxSeq)
	}
	if q.Hash == "" {
		return nil
	}
	if q.After < 0 {
		return errors.New("hash is the hash of the link at seq after: give after as well")
	}
	return checkHex("hash", q.Hash, chain.HashSize)
}

// Encode returns the query string ("" for every link).
func (q ChainQuery) Encode() string {
	if q.After < 0 {
		return ""
	}
	s := "?after=" + strconv.FormatInt(q.After, 10)
	if q.Hash != "" {
		s += "&hash=" + q.Hash
	}
	return s
}
