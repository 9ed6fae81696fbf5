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
	// MaxMessageForm bounds the message form of one send: envelope's
	// MaxMessage (a 64 KiB body, 256 entries of at most 2,048 bytes, 16
	// KiB of header and signature); command's tests check that the two
	// agree.
	MaxMessageForm = 64<<10 + MaxEnvelopes*2048 + 16<<10
)

// Error codes of POST /v1/messages with a message form (besides the
// common ones): nothing of a message refused so is queued.
const (
	// CodeMalformedMessage (400): the message form does not decode or
	// breaks a rule envelope.Split checks (version, header, 1-256 entries,
	// sizes, a device named twice).
	CodeMalformedMessage = "malformed_message"
	// CodeSenderMismatch (403): the header names a sender other than the
	// authenticated device.
	CodeSenderMismatch = "sender_mismatch"
	// CodeUnknownRecipient (422): an entry names a device that is not in
	// its account's chain at all, or the header names an account the
	// server does not hold: no view of a chain this server serves has
	// that device, so no honest sender sealed to it.
	CodeUnknownRecipient = "unknown_recipient"
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

// SendMessage is the body of POST /v1/messages as application/cbor
// ({1: bstr}): one message in envelope's message form (version 4: the
// header, body and sender signature once, one entry per device), which
// Command splits into each device's envelope without any key
// (envelope.Split). The kind, call id, sender and recipients are read from
// the signed header and entries; nothing about them travels beside the
// message. This is what the device client sends.
type SendMessage struct {
	Message []byte `json:"message" cbor:"1,keyasint,omitempty"`
}

func (SendMessage) cborBody() {}

// Validate checks the message form's presence and size (its contents are
// checked by Command with envelope.Split).
func (q SendMessage) Validate() error { return checkBytes("message", q.Message, MaxMessageForm) }

// SendRequest is the body of POST /v1/messages as application/json: one
// ciphertext per device, as clients before the message form sent it
// (kept for them: Command still queues these as it did; see
// docs/design/command-api.md).
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
	DeviceID string `json:"device_id" cbor:"1,keyasint,omitempty"`
	Reason   string `json:"reason" cbor:"2,keyasint,omitempty"` // "not_active" or "unknown_account"
}

// Validate checks the device id.
func (r Rejected) Validate() error { return checkHex("rejected[].device_id", r.DeviceID, DeviceIDSize) }

// SendResult is the answer to POST /v1/messages.
type SendResult struct {
	Accepted []string   `json:"accepted" cbor:"1,keyasint,omitempty"`
	Rejected []Rejected `json:"rejected" cbor:"2,keyasint,omitempty"`
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
