// Package envelope carries messages and call keys to the eligible devices
// of an account.
//
// A message is encrypted once under a fresh session key (AES-256-GCM,
// generated in the sender's keystore); the session key is sealed with HPKE
// (MLKEM768-X25519) to each recipient device's KEM key; the sender's device
// identity key signs each envelope. The session key's bytes never exist
// outside a keystore in the clear: the sender's keystore seals it to each
// device (keystore.SessionKey.SealTo) and the recipient's keystore installs it
// (keystore.KEMKey.OpenSession). A message key is destroyed right after use;
// a call key lives until the call ends or its TTL.
//
// # Format
//
//	Envelope  = {1: common (bstr), 2: recipient (bstr), 3: sealed key (bstr),
//	             4: body (bstr: AES-256-GCM nonce || ciphertext, AD = common), 5: signature (bstr)}
//	Common    = {1: version, 2: kind (1 message, 2 call), 3: message id (16),
//	             4: from account (32), 5: from device (16), 6: conversation account (32),
//	             7: sent at (Unix ms), 8: call id (text, calls only)}
//	Recipient = {1: account (32), 2: device (16), 3: SHA-256 of the KEM public key}
//
// The sealed key's HPKE info is fixed by the keystore for the kind:
// "enigm/v1/kem/message-key" (messages) or "enigm/v1/kem/call-key" (calls),
// then 0x00 || common || recipient; the recipient's keystore opens it only
// into a session key it keeps (keystore.Sealing). The signature is the sender identity key's hybrid signature,
// purpose "envelope", over SHA-256(common) || SHA-256(recipient) ||
// SHA-256(sealed key) || SHA-256(body).
//
// Who is eligible is decided from verified chain states only: senders seal
// to the active devices of the chains they verified, and recipients accept
// an envelope only from a device active in the sender's verified chain.
package envelope

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/internal/wire"
	"github.com/enigm/enigm/keystore"
)

// Kind of an envelope.
type Kind uint8

// Kinds.
const (
	KindMessage Kind = 1
	KindCall    Kind = 2
)

func (k Kind) String() string {
	switch k {
	case KindMessage:
		return "message"
	case KindCall:
		return "call"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Limits.
const (
	MaxBody     = 64 << 10
	MaxEnvelope = MaxBody + 8<<10
	MaxCallID   = 64
	// version 2: the sealed key's HPKE info became the keystore's
	// per-kind label (version 1 used "enigm/v1/envelope-key" for both).
	version = 2
)

// Errors.
var (
	ErrMalformed = errors.New("envelope: malformed")
	// ErrNotForMe: the envelope names another device.
	ErrNotForMe = errors.New("envelope: addressed to another device")
	// ErrSender: the sender device is not active in its verified chain, or
	// its signature does not verify.
	ErrSender = errors.New("envelope: sender not verified")
	// ErrNoKey: no KEM key of this device matches the envelope.
	ErrNoKey = errors.New("envelope: sealed to a KEM key this device does not hold")
)

type wEnvelope struct {
	Common    []byte `cbor:"1,keyasint"`
	Recipient []byte `cbor:"2,keyasint"`
	Sealed    []byte `cbor:"3,keyasint"`
	Body      []byte `cbor:"4,keyasint"`
	Sig       []byte `cbor:"5,keyasint"`
}

type wCommon struct {
	Version      uint8  `cbor:"1,keyasint"`
	Kind         uint8  `cbor:"2,keyasint"`
	ID           []byte `cbor:"3,keyasint"`
	FromAccount  []byte `cbor:"4,keyasint"`
	FromDevice   []byte `cbor:"5,keyasint"`
	Conversation []byte `cbor:"6,keyasint"`
	SentAt       int64  `cbor:"7,keyasint"`
	CallID       string `cbor:"8,keyasint,omitempty"`
}

type wRecipient struct {
	Account []byte `cbor:"1,keyasint"`
	Device  []byte `cbor:"2,keyasint"`
	KEM     []byte `cbor:"3,keyasint"`
}

// Recipient is one device to seal to, from a verified chain state.
type Recipient struct {
	Account chain.AccountID
	Device  chain.DeviceID
	KEM     []byte // HPKE public key
}

// Eligible returns the active devices of state except skip (the sender's
// own device) as recipients.
func Eligible(s *chain.State, skip chain.DeviceID) []Recipient {
	var out []Recipient
	for _, d := range s.Active() {
		if d.ID == skip {
			continue
		}
		out = append(out, Recipient{Account: s.Account(), Device: d.ID, KEM: append([]byte(nil), d.KEM...)})
	}
	return out
}

// From identifies the sending device and its identity key.
type From struct {
	Account  chain.AccountID
	Device   chain.DeviceID
	Identity *keystore.IdentityKey
}

// Sealed is one envelope for one device.
type Sealed struct {
	To    Recipient
	Bytes []byte
}

// Message is what Seal sends: its kind, conversation, call id and body.
type Message struct {
	Kind         Kind
	Conversation chain.AccountID // the peer account (for sync copies to own devices too)
	CallID       string          // calls only
	Body         []byte
	SentAt       time.Time
}

func checkCallID(id string) error {
	if len(id) == 0 || len(id) > MaxCallID {
		return fmt.Errorf("%w: call id of %d characters", ErrMalformed, len(id))
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("%w: call id has a character outside [A-Za-z0-9_-]", ErrMalformed)
		}
	}
	return nil
}

// Seal encrypts m for every recipient with session key sk (a session key
// in the sender's keystore) and signs each envelope with from.Identity.
func Seal(sk *keystore.SessionKey, from From, m Message, to []Recipient) ([]Sealed, error) {
	if len(m.Body) > MaxBody {
		return nil, fmt.Errorf("%w: body of %d bytes, limit %d", ErrMalformed, len(m.Body), MaxBody)
	}
	if (m.Kind == KindCall) != (m.CallID != "") {
		return nil, fmt.Errorf("%w: a call id goes with calls and only with calls", ErrMalformed)
	}
	if m.Kind == KindCall {
		if err := checkCallID(m.CallID); err != nil {
			return nil, err
		}
	}
	id := make([]byte, 16)
	rand.Read(id)
	common, err := wire.Marshal(&wCommon{Version: version, Kind: uint8(m.Kind), ID: id, FromAccount: from.Account[:],
		FromDevice: from.Device[:], Conversation: m.Conversation[:], SentAt: m.SentAt.UnixMilli(), CallID: m.CallID})
	if err != nil {
		return nil, err
	}
	body, err := sk.Seal(m.Body, common)
	if err != nil {
		return nil, err
	}
	var out []Sealed
	for _, r := range to {
		kh := sha256.Sum256(r.KEM)
		rb, err := wire.Marshal(&wRecipient{Account: r.Account[:], Device: r.Device[:], KEM: kh[:]})
		if err != nil {
			return nil, err
		}
		sealed, err := sk.SealTo(m.Kind.sealing(), r.KEM, binding(common, rb))
		if err != nil {
			return nil, fmt.Errorf("envelope: sealing to device %s: %w", r.Device, err)
		}
		sig, err := from.Identity.Sign(keystore.PurposeEnvelope, digest(common, rb, sealed, body))
		if err != nil {
			return nil, err
		}
		b, err := wire.Marshal(&wEnvelope{Common: common, Recipient: rb, Sealed: sealed, Body: body, Sig: sig})
		if err != nil {
			return nil, err
		}
		out = append(out, Sealed{To: r, Bytes: b})
	}
	return out, nil
}

// binding is what the sealed key's HPKE info binds after the keystore's
// label for the kind: common || recipient.
func binding(common, recipient []byte) []byte {
	return append(append([]byte(nil), common...), recipient...)
}

// sealing is the keystore sealing of a kind's session key.
func (k Kind) sealing() keystore.Sealing {
	if k == KindCall {
		return keystore.SealCallKey
	}
	return keystore.SealMessageKey
}

func digest(common, recipient, sealed, body []byte) []byte {
	var out []byte
	for _, p := range [][]byte{common, recipient, sealed, body} {
		h := sha256.Sum256(p)
		out = append(out, h[:]...)
	}
	return out
}

// Parsed is an envelope that decoded, not yet verified or opened.
type Parsed struct {
	Kind         Kind
	ID           [16]byte
	FromAccount  chain.AccountID
	FromDevice   chain.DeviceID
	Conversation chain.AccountID
	ToAccount    chain.AccountID
	ToDevice     chain.DeviceID
	KEMHash      [32]byte
	SentAt       time.Time
	CallID       string

	w wEnvelope
}

// Parse decodes an envelope strictly.
func Parse(b []byte) (*Parsed, error) {
	var p Parsed
	if err := wire.Unmarshal(b, &p.w, MaxEnvelope); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	var c wCommon
	if err := wire.Unmarshal(p.w.Common, &c, 1024); err != nil {
		return nil, fmt.Errorf("%w: common part: %v", ErrMalformed, err)
	}
	var r wRecipient
	if err := wire.Unmarshal(p.w.Recipient, &r, 256); err != nil {
		return nil, fmt.Errorf("%w: recipient part: %v", ErrMalformed, err)
	}
	switch {
	case c.Version != version:
		return nil, fmt.Errorf("%w: version %d, this build reads version %d (the sender must update)", ErrMalformed, c.Version, version)
	case c.Kind != uint8(KindMessage) && c.Kind != uint8(KindCall):
		return nil, fmt.Errorf("%w: kind %d", ErrMalformed, c.Kind)
	case len(c.ID) != 16 || len(c.FromAccount) != 32 || len(c.FromDevice) != 16 || len(c.Conversation) != 32:
		return nil, fmt.Errorf("%w: id of the wrong size", ErrMalformed)
	case len(r.Account) != 32 || len(r.Device) != 16 || len(r.KEM) != 32:
		return nil, fmt.Errorf("%w: recipient id of the wrong size", ErrMalformed)
	case (Kind(c.Kind) == KindCall) != (c.CallID != ""):
		return nil, fmt.Errorf("%w: call id on a message or missing on a call", ErrMalformed)
	}
	if c.CallID != "" {
		if err := checkCallID(c.CallID); err != nil {
			return nil, err
		}
	}
	p.Kind, p.SentAt, p.CallID = Kind(c.Kind), time.UnixMilli(c.SentAt).UTC(), c.CallID
	copy(p.ID[:], c.ID)
	copy(p.FromAccount[:], c.FromAccount)
	copy(p.FromDevice[:], c.FromDevice)
	copy(p.Conversation[:], c.Conversation)
	copy(p.ToAccount[:], r.Account)
	copy(p.ToDevice[:], r.Device)
	copy(p.KEMHash[:], r.KEM)
	return &p, nil
}

// Verify checks that the sender device is active in the sender's verified
// chain state and that its identity key signed the envelope.
func (p *Parsed) Verify(sender *chain.State) error {
	if sender == nil || sender.Account() != p.FromAccount {
		return fmt.Errorf("%w: no verified chain for account %s", ErrSender, p.FromAccount)
	}
	d, ok := sender.Device(p.FromDevice)
	if !ok || !sender.IsActive(p.FromDevice) {
		return fmt.Errorf("%w: device %s is not active in account %s", ErrSender, p.FromDevice, p.FromAccount)
	}
	err := keystore.Verify(keystore.AlgHybrid, d.Identity.Bytes(), keystore.PurposeEnvelope, digest(p.w.Common, p.w.Recipient, p.w.Sealed, p.w.Body), p.w.Sig)
	if err != nil {
		return fmt.Errorf("%w: signature: %v", ErrSender, err)
	}
	return nil
}

// OpenKey installs the envelope's session key in the recipient's keystore
// through the KEM key it was sealed to, and returns its handle (the key's
// bytes stay in the keystore). The sealing, and so the HPKE info, follows
// the envelope's kind. kems maps the SHA-256 of each KEM public key this
// device holds to its handle.
func (p *Parsed) OpenKey(kems map[[32]byte]*keystore.KEMKey, ttl time.Duration) (*keystore.SessionKey, error) {
	k, ok := kems[p.KEMHash]
	if !ok {
		return nil, ErrNoKey
	}
	return k.OpenSession(p.Kind.sealing(), binding(p.w.Common, p.w.Recipient), p.w.Sealed, keystore.SessionOptions{TTL: ttl})
}

// Fingerprint returns the fingerprint the two ends of a call compare:
// the call key's fingerprint (keystore.SessionKey.Fingerprint) bound to
// the call id, the calling account and device, and the called account.
// A call key re-sealed by a recipient to a third party — under a new call
// id, or the same one — shows that party another fingerprint: the caller
// differs, and so does the called account.
//
//	transcript = "enigm/v1/call" 0x00 || u8(len(call id)) || call id ||
//	             caller account (32) || caller device (16) || called account (32)
//
// The called device is not bound: the caller seals one call key to every
// eligible device of the called account and shows one fingerprint.
func Fingerprint(sk *keystore.SessionKey, callID string, caller chain.AccountID, callerDevice chain.DeviceID, called chain.AccountID) (string, error) {
	if err := checkCallID(callID); err != nil {
		return "", err
	}
	t := append([]byte("enigm/v1/call\x00"), byte(len(callID)))
	t = append(t, callID...)
	t = append(t, caller[:]...)
	t = append(t, callerDevice[:]...)
	t = append(t, called[:]...)
	return sk.Fingerprint(t)
}

// Fingerprint returns the call fingerprint of a call envelope opened with
// sk (see the function Fingerprint).
func (p *Parsed) Fingerprint(sk *keystore.SessionKey) (string, error) {
	if p.Kind != KindCall {
		return "", fmt.Errorf("%w: a %v has no call fingerprint", ErrMalformed, p.Kind)
	}
	return Fingerprint(sk, p.CallID, p.FromAccount, p.FromDevice, p.Conversation)
}

// OpenBody decrypts the body with the envelope's session key.
func (p *Parsed) OpenBody(sk *keystore.SessionKey) ([]byte, error) {
	return sk.Open(p.w.Body, p.w.Common)
}

// For checks that the envelope is addressed to this device.
func (p *Parsed) For(account chain.AccountID, device chain.DeviceID) error {
	if !bytes.Equal(p.ToAccount[:], account[:]) || p.ToDevice != device {
		return fmt.Errorf("%w: it names device %s of account %s", ErrNotForMe, p.ToDevice, p.ToAccount)
	}
	return nil
}
