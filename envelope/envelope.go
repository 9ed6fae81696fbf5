// Package envelope carries messages and call keys to the eligible devices
// of an account.
//
// A message is encrypted once under a fresh session key (AES-256-GCM,
// generated in the sender's keystore); the session key is sealed with HPKE
// (MLKEM768-X25519) to each recipient device's KEM key; the sender's device
// identity key signs the whole multi-recipient message once. The session
// key's bytes never exist outside a keystore in the clear: the sender's
// keystore seals it to each device (keystore.SessionKey.SealTo) and the
// recipient's keystore installs it (keystore.KEMKey.OpenSession). A message
// key is destroyed right after use; a call key lives until the call ends or
// its TTL.
//
// # Format (version 3)
//
// One message to N devices has one header, N recipient entries, one body
// and one signature. The relay delivers each device its own envelope: the
// shared parts, its own entry, and the digests of all N entries, so that it
// checks the one signature without the other devices' sealed keys.
//
//	Envelope  = {1: header (bstr), 2: recipient (bstr), 3: sealed key (bstr),
//	             4: body (bstr: AES-256-GCM nonce || ciphertext, AD = header),
//	             5: signature (bstr), 6: index of this entry (uint, omitted when 0),
//	             7: entry digests (bstr, N × 32)}
//	Header    = {1: version (3), 2: kind (1 message, 2 call), 3: message id (16),
//	             4: from account (32), 5: from device (16), 6: conversation account (32),
//	             7: sent at (Unix ms), 8: call id (text, calls only),
//	             9: heads used: [{1: account (32), 2: seq, 3: link hash (32)}], sorted by account}
//	Recipient = {1: account (32), 2: device (16), 3: SHA-256 of the KEM public key}
//
//	digest(i) = SHA-256(SHA-256(recipient i) || SHA-256(sealed key i))
//	signed    = "enigm/v1/envelope/v3" 0x00 || SHA-256(header) ||
//	            SHA-256(digest(0) || … || digest(N-1)) || SHA-256(body)
//
// The signature is the sender identity key's hybrid signature, purpose
// "envelope" (keystore.PurposeEnvelope), over signed. Every device's entry
// is named by account and device, so a device finds its own without trial
// decryption; the relay cannot add, drop, swap or reorder entries (the
// digests are signed), move an entry to another index (its digest would not
// match), or deliver one device's entry to another (the recipient part
// names the device, and is bound into the HPKE info). The heads are the
// (seq, hash) of every account chain the sender chose recipients from; each
// recipient's account must be among them.
//
// The sealed key's HPKE info is fixed by the keystore for the kind:
// "enigm/v1/kem/message-key" (messages) or "enigm/v1/kem/call-key" (calls),
// then 0x00 || header || recipient; the recipient's keystore opens it only
// into a session key it keeps (keystore.Sealing).
//
// # Version 2
//
// Version 2 (one signature per device) is still read, so that envelopes
// queued before an update open; Seal writes only version 3. A version 2
// envelope has keys 1-5 only (common, recipient, sealed key, body,
// signature; common is the header without 9) and its signature covers
// SHA-256(common) || SHA-256(recipient) || SHA-256(sealed key) ||
// SHA-256(body). Any other version is refused with ErrMalformed naming it.
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
	"slices"
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
	MaxBody = 64 << 10
	// MaxRecipients bounds the devices of one message (the relay's bound
	// on the envelopes of one send).
	MaxRecipients = 256
	// MaxHeads bounds the account chains one message names.
	MaxHeads    = 16
	MaxEnvelope = MaxBody + MaxRecipients*32 + 16<<10
	MaxCallID   = 64
	maxHeader   = 4096
	// version 3: one signature over the whole multi-recipient message
	// (version 2 signed each device's envelope; version 1 used
	// "enigm/v1/envelope-key" as HPKE info for both kinds).
	version   = 3
	versionV2 = 2
)

// signedLabel starts what a version 3 signature covers.
const signedLabel = "enigm/v1/envelope/v3\x00"

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

// wEnvelope is one device's envelope, of version 3 or 2 (fields 6 and 7
// are version 3 only).
type wEnvelope struct {
	Header    []byte `cbor:"1,keyasint"`
	Recipient []byte `cbor:"2,keyasint"`
	Sealed    []byte `cbor:"3,keyasint"`
	Body      []byte `cbor:"4,keyasint"`
	Sig       []byte `cbor:"5,keyasint"`
	Index     uint16 `cbor:"6,keyasint,omitempty"`
	Digests   []byte `cbor:"7,keyasint,omitempty"`
}

type wHeader struct {
	Version      uint8   `cbor:"1,keyasint"`
	Kind         uint8   `cbor:"2,keyasint"`
	ID           []byte  `cbor:"3,keyasint"`
	FromAccount  []byte  `cbor:"4,keyasint"`
	FromDevice   []byte  `cbor:"5,keyasint"`
	Conversation []byte  `cbor:"6,keyasint"`
	SentAt       int64   `cbor:"7,keyasint"`
	CallID       string  `cbor:"8,keyasint,omitempty"`
	Heads        []wHead `cbor:"9,keyasint,omitempty"`
}

type wHead struct {
	Account []byte `cbor:"1,keyasint"`
	Seq     uint64 `cbor:"2,keyasint"`
	Hash    []byte `cbor:"3,keyasint"`
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
	KEM     []byte     // HPKE public key
	Head    chain.Head // the head of the verified chain the device was taken from
}

// Eligible returns the active devices of state except skip (the sender's
// own device) as recipients, each with the state's head.
func Eligible(s *chain.State, skip chain.DeviceID) []Recipient {
	var out []Recipient
	for _, d := range s.Active() {
		if d.ID == skip {
			continue
		}
		out = append(out, Recipient{Account: s.Account(), Device: d.ID, KEM: append([]byte(nil), d.KEM...), Head: s.Head()})
	}
	return out
}

// From identifies the sending device and its identity key.
type From struct {
	Account  chain.AccountID
	Device   chain.DeviceID
	Identity *keystore.IdentityKey
}

// Sealed is one device's envelope of a message.
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

// heads returns the distinct heads of the recipients' accounts, sorted by
// account, refusing two heads for one account (recipients taken from two
// views of one chain) and a missing head.
func heads(to []Recipient) ([]wHead, error) {
	seen := map[chain.AccountID]chain.Head{}
	for _, r := range to {
		if r.Head.Hash == (chain.Hash{}) {
			return nil, fmt.Errorf("%w: recipient device %s has no chain head (take recipients from a verified state with Eligible)", ErrMalformed, r.Device)
		}
		if h, ok := seen[r.Account]; ok && h != r.Head {
			return nil, fmt.Errorf("%w: recipients of account %s come from two chain heads (%d and %d)", ErrMalformed, r.Account, h.Seq, r.Head.Seq)
		}
		seen[r.Account] = r.Head
	}
	if len(seen) > MaxHeads {
		return nil, fmt.Errorf("%w: recipients in %d accounts, limit %d", ErrMalformed, len(seen), MaxHeads)
	}
	out := make([]wHead, 0, len(seen))
	for a, h := range seen {
		out = append(out, wHead{Account: a[:], Seq: h.Seq, Hash: h.Hash[:]})
	}
	slices.SortFunc(out, func(x, y wHead) int { return bytes.Compare(x.Account, y.Account) })
	return out, nil
}

// Seal encrypts m for every recipient with session key sk (a session key
// in the sender's keystore), signs the whole message once with
// from.Identity, and returns each recipient's envelope.
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
	if len(to) == 0 || len(to) > MaxRecipients {
		return nil, fmt.Errorf("%w: %d recipients, 1-%d allowed", ErrMalformed, len(to), MaxRecipients)
	}
	type dev struct {
		a chain.AccountID
		d chain.DeviceID
	}
	dup := make(map[dev]bool, len(to))
	for _, r := range to {
		if dup[dev{r.Account, r.Device}] {
			return nil, fmt.Errorf("%w: device %s of account %s is a recipient twice", ErrMalformed, r.Device, r.Account)
		}
		dup[dev{r.Account, r.Device}] = true
	}
	hs, err := heads(to)
	if err != nil {
		return nil, err
	}
	id := make([]byte, 16)
	rand.Read(id)
	header, err := wire.Marshal(&wHeader{Version: version, Kind: uint8(m.Kind), ID: id, FromAccount: from.Account[:],
		FromDevice: from.Device[:], Conversation: m.Conversation[:], SentAt: m.SentAt.UnixMilli(), CallID: m.CallID, Heads: hs})
	if err != nil {
		return nil, err
	}
	body, err := sk.Seal(m.Body, header)
	if err != nil {
		return nil, err
	}
	rbs := make([][]byte, len(to))
	sealed := make([][]byte, len(to))
	digests := make([]byte, 0, 32*len(to))
	for i, r := range to {
		kh := sha256.Sum256(r.KEM)
		if rbs[i], err = wire.Marshal(&wRecipient{Account: r.Account[:], Device: r.Device[:], KEM: kh[:]}); err != nil {
			return nil, err
		}
		if sealed[i], err = sk.SealTo(m.Kind.sealing(), r.KEM, binding(header, rbs[i])); err != nil {
			return nil, fmt.Errorf("envelope: sealing to device %s: %w", r.Device, err)
		}
		d := entryDigest(rbs[i], sealed[i])
		digests = append(digests, d[:]...)
	}
	sig, err := from.Identity.Sign(keystore.PurposeEnvelope, signed(header, digests, body))
	if err != nil {
		return nil, err
	}
	out := make([]Sealed, len(to))
	for i, r := range to {
		b, err := wire.Marshal(&wEnvelope{Header: header, Recipient: rbs[i], Sealed: sealed[i], Body: body, Sig: sig,
			Index: uint16(i), Digests: digests})
		if err != nil {
			return nil, err
		}
		out[i] = Sealed{To: r, Bytes: b}
	}
	return out, nil
}

// binding is what the sealed key's HPKE info binds after the keystore's
// label for the kind: header || recipient.
func binding(header, recipient []byte) []byte {
	return append(append([]byte(nil), header...), recipient...)
}

// sealing is the keystore sealing of a kind's session key.
func (k Kind) sealing() keystore.Sealing {
	if k == KindCall {
		return keystore.SealCallKey
	}
	return keystore.SealMessageKey
}

// entryDigest is digest(i) of the format: SHA-256(SHA-256(recipient) ||
// SHA-256(sealed key)).
func entryDigest(recipient, sealed []byte) [32]byte {
	r, s := sha256.Sum256(recipient), sha256.Sum256(sealed)
	return sha256.Sum256(append(r[:], s[:]...))
}

// signed is what a version 3 signature covers.
func signed(header, digests, body []byte) []byte {
	out := make([]byte, 0, len(signedLabel)+3*32)
	out = append(out, signedLabel...)
	for _, p := range [][]byte{header, digests, body} {
		h := sha256.Sum256(p)
		out = append(out, h[:]...)
	}
	return out
}

// digestV2 is what a version 2 signature covers.
func digestV2(common, recipient, sealed, body []byte) []byte {
	var out []byte
	for _, p := range [][]byte{common, recipient, sealed, body} {
		h := sha256.Sum256(p)
		out = append(out, h[:]...)
	}
	return out
}

// Parsed is an envelope that decoded, not yet verified or opened.
type Parsed struct {
	Version      int // 3, or 2 for an envelope queued before the update
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
	// Recipients is how many devices the message was sealed to (version
	// 3; 1 for version 2, whose envelopes were signed one by one).
	Recipients int
	// Heads are the chain heads the sender chose recipients from, by
	// account (version 3; empty for version 2). Signed with the message:
	// a recipient can compare the head of its own account with its chain.
	Heads map[chain.AccountID]chain.Head

	w wEnvelope
}

// Parse decodes an envelope strictly.
func Parse(b []byte) (*Parsed, error) {
	var p Parsed
	if err := wire.Unmarshal(b, &p.w, MaxEnvelope); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	var c wHeader
	if err := wire.Unmarshal(p.w.Header, &c, maxHeader); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	var r wRecipient
	if err := wire.Unmarshal(p.w.Recipient, &r, 256); err != nil {
		return nil, fmt.Errorf("%w: recipient part: %v", ErrMalformed, err)
	}
	switch {
	case c.Version == version:
		n := len(p.w.Digests) / 32
		switch {
		case n == 0 || n > MaxRecipients || len(p.w.Digests)%32 != 0:
			return nil, fmt.Errorf("%w: %d bytes of entry digests, want 32 for each of 1-%d devices", ErrMalformed, len(p.w.Digests), MaxRecipients)
		case int(p.w.Index) >= n:
			return nil, fmt.Errorf("%w: entry %d of %d", ErrMalformed, p.w.Index, n)
		case len(c.Heads) == 0 || len(c.Heads) > MaxHeads:
			return nil, fmt.Errorf("%w: %d chain heads, 1-%d allowed", ErrMalformed, len(c.Heads), MaxHeads)
		}
		p.Recipients = n
		p.Heads = make(map[chain.AccountID]chain.Head, len(c.Heads))
		for i, h := range c.Heads {
			if len(h.Account) != 32 || len(h.Hash) != 32 {
				return nil, fmt.Errorf("%w: chain head of the wrong size", ErrMalformed)
			}
			if i > 0 && bytes.Compare(c.Heads[i-1].Account, h.Account) >= 0 {
				return nil, fmt.Errorf("%w: chain heads not sorted by account, or an account twice", ErrMalformed)
			}
			var a chain.AccountID
			var hh chain.Hash
			copy(a[:], h.Account)
			copy(hh[:], h.Hash)
			p.Heads[a] = chain.Head{Seq: h.Seq, Hash: hh}
		}
	case c.Version == versionV2:
		if p.w.Index != 0 || p.w.Digests != nil || c.Heads != nil {
			return nil, fmt.Errorf("%w: a version 2 envelope with version 3 fields", ErrMalformed)
		}
		p.Recipients = 1
	default:
		return nil, fmt.Errorf("%w: version %d, this build reads versions %d and %d (the sender must update, or this device)", ErrMalformed, c.Version, versionV2, version)
	}
	switch {
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
	p.Version, p.Kind, p.SentAt, p.CallID = int(c.Version), Kind(c.Kind), time.UnixMilli(c.SentAt).UTC(), c.CallID
	copy(p.ID[:], c.ID)
	copy(p.FromAccount[:], c.FromAccount)
	copy(p.FromDevice[:], c.FromDevice)
	copy(p.Conversation[:], c.Conversation)
	copy(p.ToAccount[:], r.Account)
	copy(p.ToDevice[:], r.Device)
	copy(p.KEMHash[:], r.KEM)
	if p.Version == version {
		if _, ok := p.Heads[p.ToAccount]; !ok {
			return nil, fmt.Errorf("%w: no chain head for the recipient's account %s", ErrMalformed, p.ToAccount)
		}
	}
	return &p, nil
}

// Verify checks that the sender device is active in the sender's verified
// chain state and that its identity key signed the message, including this
// device's entry.
func (p *Parsed) Verify(sender *chain.State) error {
	if sender == nil || sender.Account() != p.FromAccount {
		return fmt.Errorf("%w: no verified chain for account %s", ErrSender, p.FromAccount)
	}
	d, ok := sender.Device(p.FromDevice)
	if !ok || !sender.IsActive(p.FromDevice) {
		return fmt.Errorf("%w: device %s is not active in account %s", ErrSender, p.FromDevice, p.FromAccount)
	}
	var msg []byte
	if p.Version == versionV2 {
		msg = digestV2(p.w.Header, p.w.Recipient, p.w.Sealed, p.w.Body)
	} else {
		own := entryDigest(p.w.Recipient, p.w.Sealed)
		i := int(p.w.Index) * 32
		if !bytes.Equal(p.w.Digests[i:i+32], own[:]) {
			return fmt.Errorf("%w: this device's entry is not the one the message lists at index %d", ErrSender, p.w.Index)
		}
		msg = signed(p.w.Header, p.w.Digests, p.w.Body)
	}
	if err := keystore.Verify(keystore.AlgHybrid, d.Identity.Bytes(), keystore.PurposeEnvelope, msg, p.w.Sig); err != nil {
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
	return k.OpenSession(p.Kind.sealing(), binding(p.w.Header, p.w.Recipient), p.w.Sealed, keystore.SessionOptions{TTL: ttl})
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
	return sk.Open(p.w.Body, p.w.Header)
}

// For checks that the envelope is addressed to this device.
func (p *Parsed) For(account chain.AccountID, device chain.DeviceID) error {
	if !bytes.Equal(p.ToAccount[:], account[:]) || p.ToDevice != device {
		return fmt.Errorf("%w: it names device %s of account %s", ErrNotForMe, p.ToDevice, p.ToAccount)
	}
	return nil
}
