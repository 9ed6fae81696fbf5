package api

import (
	"errors"
	"fmt"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/hybrid"
)

// Enrollment types.
const (
	TypeAddDevice     = "add_device"
	TypeReplaceDevice = "replace_device"
)

// EnrollType returns the chain link type of an enrollment type.
func EnrollType(s string) (chain.LinkType, bool) {
	switch s {
	case TypeAddDevice:
		return chain.TypeAddDevice, true
	case TypeReplaceDevice:
		return chain.TypeReplaceDevice, true
	}
	return 0, false
}

// EnrollRequest is the body of POST /v1/accounts/{id}/enrollments: the new
// device's add_device or replace_device body (chain.EncodeBody). CBOR:
// {1: type, 2: bstr}.
type EnrollRequest struct {
	Type string `json:"type" cbor:"1,keyasint,omitempty"`
	Body []byte `json:"body" cbor:"2,keyasint,omitempty"`
}

func (EnrollRequest) cborBody() {}

// Validate checks the type and the body's presence and size.
func (q EnrollRequest) Validate() error {
	if _, ok := EnrollType(q.Type); !ok {
		return errors.New(`type must be "add_device" or "replace_device"`)
	}
	return checkBytes("body", q.Body, chain.MaxBodySize)
}

// ApproveRequest is the body of POST /v1/enrollments/{rid}/approve: the
// approving device's signature of the approval statement at head. CBOR:
// {1: Head, 2: bstr}.
type ApproveRequest struct {
	Head      Head   `json:"head" cbor:"1,keyasint"`
	Signature []byte `json:"signature" cbor:"2,keyasint,omitempty"`
}

func (ApproveRequest) cborBody() {}

// Validate checks the head and the signature's presence and size.
func (q ApproveRequest) Validate() error {
	if err := checkBytes("signature", q.Signature, hybrid.SignatureSize); err != nil {
		return err
	}
	return q.Head.Validate()
}

// Approval is one approval on an enrollment request. CBOR: {1: role, ? 2:
// signer, 3: bstr}.
type Approval struct {
	Role      string `json:"role" cbor:"1,keyasint,omitempty"` // "device" or "org"
	Signer    string `json:"signer,omitempty" cbor:"2,keyasint,omitempty"`
	Signature []byte `json:"signature" cbor:"3,keyasint,omitempty"`
}

// Validate checks the role, the signer of a device approval and the
// signature's size.
func (a Approval) Validate() error {
	switch a.Role {
	case "device":
		if err := checkHex("approvals[].signer", a.Signer, DeviceIDSize); err != nil {
			return err
		}
	case "org":
		if a.Signer != "" {
			return errors.New("an org approval names no signer")
		}
	default:
		return fmt.Errorf("approval in unknown role %q", a.Role)
	}
	return checkBytes("approvals[].signature", a.Signature, hybrid.SignatureSize)
}

// Enrollment is an enrollment request as the server reports it. CBOR:
// the fields in order from key 1 (request_id) to 13 (reason), times as
// Unix seconds, optional ones left out when empty.
type Enrollment struct {
	RequestID  string     `json:"request_id" cbor:"1,keyasint,omitempty"`
	AccountID  string     `json:"account_id" cbor:"2,keyasint,omitempty"`
	Type       string     `json:"type" cbor:"3,keyasint,omitempty"`
	State      string     `json:"state" cbor:"4,keyasint,omitempty"`
	Body       []byte     `json:"body" cbor:"5,keyasint,omitempty"`
	DeviceID   string     `json:"device_id" cbor:"6,keyasint,omitempty"`
	DeviceName string     `json:"device_name" cbor:"7,keyasint,omitempty"`
	Protection string     `json:"protection" cbor:"8,keyasint,omitempty"`
	CreatedAt  time.Time  `json:"created_at" cbor:"9,keyasint,omitzero"`
	ExpiresAt  time.Time  `json:"expires_at" cbor:"10,keyasint,omitzero"`
	Head       *Head      `json:"head,omitempty" cbor:"11,keyasint,omitempty"` // the head it was approved against
	Approvals  []Approval `json:"approvals" cbor:"12,keyasint,omitempty"`
	Reason     string     `json:"reason,omitempty" cbor:"13,keyasint,omitempty"`
}

// Validate checks the ids, the type, the body and every approval.
func (e Enrollment) Validate() error {
	if err := first(checkHex("request_id", e.RequestID, RequestIDSize), checkHex("account_id", e.AccountID, AccountIDSize),
		checkHex("device_id", e.DeviceID, DeviceIDSize)); err != nil {
		return err
	}
	if _, ok := EnrollType(e.Type); !ok {
		return fmt.Errorf("unknown enrollment type %q", e.Type)
	}
	if err := checkBytes("body", e.Body, chain.MaxBodySize); err != nil {
		return err
	}
	if e.Head != nil {
		if err := e.Head.Validate(); err != nil {
			return err
		}
	}
	return each(e.Approvals)
}

// LinkType returns the request's link type.
func (e *Enrollment) LinkType() (chain.LinkType, error) {
	t, ok := EnrollType(e.Type)
	if !ok {
		return 0, fmt.Errorf("unknown enrollment type %q", e.Type)
	}
	return t, nil
}

// ApprovedHead returns the head the request was approved against.
func (e *Enrollment) ApprovedHead() (chain.Head, bool) {
	if e.Head == nil {
		return chain.Head{}, false
	}
	h, err := e.Head.Chain()
	return h, err == nil
}

// EnrollmentList is the list of open requests.
type EnrollmentList struct {
	Enrollments []Enrollment `json:"enrollments"`
}

// Validate checks every request.
func (l EnrollmentList) Validate() error { return each(l.Enrollments) }
