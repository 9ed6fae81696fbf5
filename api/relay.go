package api

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Relay limits.
const (
	MaxEnvelopes  = 256       // per send
	MaxCiphertext = 256 << 10 // bytes per envelope
	MaxAck        = 1000      // ids per acknowledgement
)

// Envelope kinds.
const (
	KindMessage = "message"
	KindCall    = "call"
)

// OutgoingEnvelope is one envelope of POST /v1/messages: the ciphertext
// for one device.
type OutgoingEnvelope struct {
	AccountID  string `json:"account_id"`
	DeviceID   string `json:"device_id"`
	Ciphertext []byte `json:"ciphertext"`
}

// Validate checks the ids and the ciphertext's presence and size.
func (e OutgoingEnvelope) Validate() error {
	return first(checkHex("envelopes[].account_id", e.AccountID, AccountIDSize), checkHex("envelopes[].device_id", e.DeviceID, DeviceIDSize),
		checkBytes("envelopes[].ciphertext", e.Ciphertext, MaxCiphertext))
}

// SendRequest is the body of POST /v1/messages.
type SendRequest struct {
	Kind      string             `json:"kind"`
	CallID    string             `json:"call_id,omitempty"`
	Envelopes []OutgoingEnvelope `json:"envelopes"`
}

// Validate checks the kind, the call id and every envelope.
func (q SendRequest) Validate() error {
	switch q.Kind {
	case KindMessage:
		if q.CallID != "" {
			return errors.New("call_id goes with kind call only")
		}
	case KindCall:
		if !ValidCallID(q.CallID) {
			return errors.New("a call envelope needs call_id: 1-64 of [A-Za-z0-9_-]")
		}
	default:
		return errors.New(`kind must be "message" or "call"`)
	}
	if len(q.Envelopes) == 0 || len(q.Envelopes) > MaxEnvelopes {
		return fmt.Errorf("1-%d envelopes per request", MaxEnvelopes)
	}
	return each(q.Envelopes)
}

// Rejected is an envelope the relay refused.
type Rejected struct {
	DeviceID string `json:"device_id"`
	Reason   string `json:"reason"` // "not_active" or "unknown_account"
}

// Validate checks the device id.
func (r Rejected) Validate() error { return checkHex("rejected[].device_id", r.DeviceID, DeviceIDSize) }

// SendResult is the answer to POST /v1/messages.
type SendResult struct {
	Accepted []string   `json:"accepted"`
	Rejected []Rejected `json:"rejected"`
}

// Validate checks the device ids.
func (r SendResult) Validate() error {
	for _, d := range r.Accepted {
		if err := checkHex("accepted[]", d, DeviceIDSize); err != nil {
			return err
		}
	}
	return each(r.Rejected)
}

// Envelope is one queued envelope of GET /v1/messages.
type Envelope struct {
	ID          string    `json:"id"` // opaque (decimal digits)
	FromAccount string    `json:"from_account"`
	FromDevice  string    `json:"from_device"`
	Kind        string    `json:"kind"`
	CallID      string    `json:"call_id,omitempty"`
	SentAt      time.Time `json:"sent_at"`
	Ciphertext  []byte    `json:"ciphertext"`
}

// Validate checks the id, the sender's ids and the ciphertext's size.
func (e Envelope) Validate() error {
	if e.ID == "" {
		return errors.New("envelope id is missing")
	}
	return first(checkHex("from_account", e.FromAccount, AccountIDSize), checkHex("from_device", e.FromDevice, DeviceIDSize),
		checkBytes("ciphertext", e.Ciphertext, MaxCiphertext))
}

// Envelopes is the answer to GET /v1/messages.
type Envelopes struct {
	Envelopes []Envelope `json:"envelopes"`
}

// Validate checks every envelope.
func (l Envelopes) Validate() error { return each(l.Envelopes) }

// AckRequest is the body of POST /v1/messages/ack.
type AckRequest struct {
	IDs []string `json:"ids"`
}

// Validate checks the number of ids and that each is one a server issues.
func (q AckRequest) Validate() error {
	if len(q.IDs) > MaxAck {
		return fmt.Errorf("at most %d ids per acknowledgement", MaxAck)
	}
	for _, s := range q.IDs {
		if id, err := strconv.ParseInt(s, 10, 64); err != nil || id <= 0 {
			return fmt.Errorf("envelope id %q is not one this server issued", s)
		}
	}
	return nil
}

// AckResult is the answer to POST /v1/messages/ack.
type AckResult struct {
	Deleted int64 `json:"deleted"`
}

// Validate accepts every count.
func (AckResult) Validate() error { return nil }
