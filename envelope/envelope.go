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
// # Format (version 4)
//
// One message to N devices has one header, one body, one signature and N
// entries. Everything the devices share is at the message level; an entry
// carries only what differs per device: which of the header's accounts
// (an index into its heads), which device, which of its KEM keys, and the
// sealed key. A message has two encodings. The message form carries every
// part once (what a relay that fans one message out takes, SealMessage);
// each device's envelope carries the shared parts, its own entry and the
// digests of all N entries, so that it checks the one signature without the
// other devices' sealed keys (Split turns the message form into the N
// envelopes; it needs no key, and everything it rearranges is signed).
//
//	Message   = {0: version (4), 1: header (bstr), 2: body (bstr), 3: signature (bstr),
//	             4: entries [bstr, …] (N, in the sender's order)}
//	Envelope  = {0: version (4), 1: header (bstr), 2: body (bstr), 3: signature (bstr),
//	             4: this device's entry (bstr), 5: its index (uint, omitted when 0),
//	             6: entry digests (bstr, N × 32)}
//	Header    = {1: version (4), 2: kind (1 message, 2 call), 3: message id (16),
//	             4: from account (32), 5: from device (16), 6: conversation account (32),
//	             7: sent at (Unix ms), 8: call id (text, calls only),
//	             9: heads used: [{1: account (32), 2: seq, 3: link hash (32)}], sorted by account}
//	Entry     = {1: account (uint: index into the header's heads), 2: device (16),
//	             3: SHA-256 of the KEM public key (32), 4: sealed key (bstr)}
//	body      = AES-256-GCM nonce (12) || ciphertext || tag (16), additional data = header
//
//	digest(i) = SHA-256(entry i)
//	signed    = "enigm/v1/envelope/v4" 0x00 || SHA-256(header) ||
//	            SHA-256(digest(0) || … || digest(N-1)) || SHA-256(body)
//
// The signature is the sender identity key's hybrid signature, purpose
// "envelope" (keystore.PurposeEnvelope), over signed. Every entry names its
// device by account and device id, so a device finds its own without trial
// decryption; the relay cannot add, drop, swap or reorder entries (the
// digests are signed), move an entry to another index (its digest would not
// match), or deliver one device's entry to another (the entry names the
// device, and the name is bound into the HPKE info). The heads are the
// (seq, hash) of every account chain the sender chose recipients from; an
// entry's account is one of them by construction.
//
// The sealed key's HPKE info is fixed by the keystore for the kind:
// "enigm/v1/kem/message-key" (messages) or "enigm/v1/kem/call-key" (calls),
// then 0x00 || header || account (32) || device (16) || KEM hash (32); the
// recipient's keystore opens it only into a session key it keeps
// (keystore.Sealing).
//
// # Versions 3 and 2
//
// Envelopes queued before an update still open: Parse reads versions 3
// and 2 (legacy.go); Seal writes only version 4. A version 4 envelope
// starts with key 0 (the version); versions 3 and 2 have no key 0 and carry
// their version in the header. Any other version is refused with
// ErrMalformed naming it.
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
	MaxHeads = 16
	// MaxEnvelope bounds one device's envelope.
	MaxEnvelope = MaxBody + MaxRecipients*32 + 16<<10
	// MaxMessage bounds the message form (every entry once).
	MaxMessage = MaxBody + MaxRecipients*maxEntry + 16<<10
	MaxCallID  = 64
	maxHeader  = 4096
	// maxEntry bounds one entry: the sealed key of MLKEM768-X25519 is
	// 1,168 bytes, its names 53.
	maxEntry = 2048
	// version 4: shared parts at the message level, compact entries
	// (version 3 repeated the account in every entry and had no message
	// form; version 2 signed each device's envelope; version 1 used
	// "enigm/v1/envelope-key" as HPKE info for both kinds).
	version = 4
)

// signedLabel starts what a version 4 signature covers.
const signedLabel = "enigm/v1/envelope/v4\x00"

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

// wMessage is the message form of version 4.
type wMessage struct {
	Version uint8    `cbor:"0,keyasint"`
	Header  []byte   `cbor:"1,keyasint"`
	Body    []byte   `cbor:"2,keyasint"`
	Sig     []byte   `cbor:"3,keyasint"`
	Entries [][]byte `cbor:"4,keyasint"`
}

// wEnvelope is one device's envelope of version 4.
type wEnvelope struct {
	Version uint8  `cbor:"0,keyasint"`
	Header  []byte `cbor:"1,keyasint"`
	Body    []byte `cbor:"2,keyasint"`
	Sig     []byte `cbor:"3,keyasint"`
	Entry   []byte `cbor:"4,keyasint"`
	Index   uint16 `cbor:"5,keyasint,omitempty"`
	Digests []byte `cbor:"6,keyasint"`
}

// wHeader is the header of versions 4 and 3 (version 2 has no key 9).
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

// wEntry is one device's entry of version 4.
type wEntry struct {
	Account uint8  `cbor:"1,keyasint"` // index into the header's heads
	Device  []byte `cbor:"2,keyasint"`
	KEM     []byte `cbor:"3,keyasint"`
	Sealed  []byte `cbor:"4,keyasint"`
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

// Outgoing is a sealed message in both of its encodings.
type Outgoing struct {
	// Message is the message form: the shared parts once and one entry
	// per device, what a relay that fans the message out takes.
	Message []byte
	// Envelopes are the devices' envelopes, in the order of the
	// recipients (Split of Message).
	Envelopes []Sealed
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

// checkSeal refuses what Seal must not write: a body over the limit, a
// call id on a message or none on a call, no or too many recipients, one
// device twice.
func checkSeal(m Message, to []Recipient) error {
	if len(m.Body) > MaxBody {
		return fmt.Errorf("%w: body of %d bytes, limit %d", ErrMalformed, len(m.Body), MaxBody)
	}
	if (m.Kind == KindCall) != (m.CallID != "") {
		return fmt.Errorf("%w: a call id goes with calls and only with calls", ErrMalformed)
	}
	if m.Kind == KindCall {
		if err := checkCallID(m.CallID); err != nil {
			return err
		}
	}
	if len(to) == 0 || len(to) > MaxRecipients {
		return fmt.Errorf("%w: %d recipients, 1-%d allowed", ErrMalformed, len(to), MaxRecipients)
	}
	type dev struct {
		a chain.AccountID
		d chain.DeviceID
	}
	dup := make(map[dev]bool, len(to))
	for _, r := range to {
		if dup[dev{r.Account, r.Device}] {
			return fmt.Errorf("%w: device %s of account %s is a recipient twice", ErrMalformed, r.Device, r.Account)
		}
		dup[dev{r.Account, r.Device}] = true
	}
	return nil
}

// Seal encrypts m for every recipient with session key sk (a session key
// in the sender's keystore), signs the whole message once with
// from.Identity, and returns each recipient's envelope.
func Seal(sk *keystore.SessionKey, from From, m Message, to []Recipient) ([]Sealed, error) {
	o, err := seal(sk, from, m, to, false)
	if err != nil {
		return nil, err
	}
	return o.Envelopes, nil
}

// SealMessage is Seal, returning the message form as well as the
// devices' envelopes.
func SealMessage(sk *keystore.SessionKey, from From, m Message, to []Recipient) (*Outgoing, error) {
	return seal(sk, from, m, to, true)
}

// seal is Seal, encoding the message form too when form is set.
func seal(sk *keystore.SessionKey, from From, m Message, to []Recipient, form bool) (*Outgoing, error) {
	if err := checkSeal(m, to); err != nil {
		return nil, err
	}
	hs, err := heads(to)
	if err != nil {
		return nil, err
	}
	index := make(map[chain.AccountID]uint8, len(hs))
	for i, h := range hs {
		index[chain.AccountID(h.Account)] = uint8(i)
	}
	header, err := newHeader(version, from, m, hs)
	if err != nil {
		return nil, err
	}
	body, err := sk.Seal(m.Body, header)
	if err != nil {
		return nil, err
	}
	entries := make([][]byte, len(to))
	digests := make([]byte, 0, 32*len(to))
	for i, r := range to {
		kh := sha256.Sum256(r.KEM)
		sealed, err := sk.SealTo(m.Kind.sealing(), r.KEM, binding(header, r.Account, r.Device, kh))
		if err != nil {
			return nil, fmt.Errorf("envelope: sealing to device %s: %w", r.Device, err)
		}
		if entries[i], err = wire.Marshal(&wEntry{Account: index[r.Account], Device: r.Device[:], KEM: kh[:], Sealed: sealed}); err != nil {
			return nil, err
		}
		d := sha256.Sum256(entries[i])
		digests = append(digests, d[:]...)
	}
	sig, err := from.Identity.Sign(keystore.PurposeEnvelope, signed(header, digests, body))
	if err != nil {
		return nil, err
	}
	out := &Outgoing{Envelopes: make([]Sealed, len(to))}
	if form {
		if out.Message, err = wire.Marshal(&wMessage{Version: version, Header: header, Body: body, Sig: sig, Entries: entries}); err != nil {
			return nil, err
		}
	}
	for i, r := range to {
		b, err := wire.Marshal(&wEnvelope{Version: version, Header: header, Body: body, Sig: sig, Entry: entries[i], Index: uint16(i), Digests: digests})
		if err != nil {
			return nil, err
		}
		out.Envelopes[i] = Sealed{To: r, Bytes: b}
	}
	return out, nil
}

// newHeader encodes the header of a new message of version v, with a
// fresh random message id.
func newHeader(v uint8, from From, m Message, hs []wHead) ([]byte, error) {
	id := make([]byte, 16)
	rand.Read(id)
	return wire.Marshal(&wHeader{Version: v, Kind: uint8(m.Kind), ID: id, FromAccount: from.Account[:],
		FromDevice: from.Device[:], Conversation: m.Conversation[:], SentAt: m.SentAt.UnixMilli(), CallID: m.CallID, Heads: hs})
}

// Delivery is one device's envelope of a message form, as Split cuts it.
type Delivery struct {
	Account chain.AccountID
	Device  chain.DeviceID
	Bytes   []byte
}

// Split parses a message form strictly and returns each device's
// envelope, in the order of the entries: what a relay that takes a
// message once does before queueing it per device. It holds no key and
// checks no signature (the devices do); everything it rearranges is
// signed, so a relay that splits wrongly only makes envelopes that fail
// Verify.
func Split(message []byte) ([]Delivery, error) {
	var m wMessage
	if err := wire.Unmarshal(message, &m, MaxMessage); err != nil {
		return nil, fmt.Errorf("%w: message: %v", ErrMalformed, err)
	}
	if m.Version != version {
		return nil, fmt.Errorf("%w: message form of version %d, this build writes version %d", ErrMalformed, m.Version, version)
	}
	h, err := parseHeader(m.Header, version)
	if err != nil {
		return nil, err
	}
	if len(m.Entries) == 0 || len(m.Entries) > MaxRecipients {
		return nil, fmt.Errorf("%w: %d entries, 1-%d allowed", ErrMalformed, len(m.Entries), MaxRecipients)
	}
	type dev struct {
		a chain.AccountID
		d chain.DeviceID
	}
	seen := make(map[dev]bool, len(m.Entries))
	out := make([]Delivery, len(m.Entries))
	digests := make([]byte, 0, 32*len(m.Entries))
	for i, e := range m.Entries {
		a, d, _, _, err := parseEntry(e, h.accts)
		if err != nil {
			return nil, fmt.Errorf("%w (entry %d)", err, i)
		}
		if seen[dev{a, d}] {
			return nil, fmt.Errorf("%w: device %s of account %s has two entries", ErrMalformed, d, a)
		}
		seen[dev{a, d}] = true
		out[i] = Delivery{Account: a, Device: d}
		sum := sha256.Sum256(e)
		digests = append(digests, sum[:]...)
	}
	for i := range out {
		if out[i].Bytes, err = wire.Marshal(&wEnvelope{Version: version, Header: m.Header, Body: m.Body, Sig: m.Sig, Entry: m.Entries[i],
			Index: uint16(i), Digests: digests}); err != nil {
			return nil, err
		}
		if len(out[i].Bytes) > MaxEnvelope {
			return nil, fmt.Errorf("%w: a device's envelope would be %d bytes, limit %d (body or signature too large)", ErrMalformed, len(out[i].Bytes), MaxEnvelope)
		}
	}
	return out, nil
}

// binding is what the sealed key's HPKE info binds after the keystore's
// label for the kind: header || account || device || KEM hash.
func binding(header []byte, a chain.AccountID, d chain.DeviceID, kem [32]byte) []byte {
	out := make([]byte, 0, len(header)+32+16+32)
	out = append(out, header...)
	out = append(out, a[:]...)
	out = append(out, d[:]...)
	return append(out, kem[:]...)
}

// sealing is the keystore sealing of a kind's session key.
func (k Kind) sealing() keystore.Sealing {
	if k == KindCall {
		return keystore.SealCallKey
	}
	return keystore.SealMessageKey
}

// signed is what a version 4 signature covers.
func signed(header, digests, body []byte) []byte {
	return labelled(signedLabel, header, digests, body)
}

// labelled is label || SHA-256 of each part.
func labelled(label string, parts ...[]byte) []byte {
	out := make([]byte, 0, len(label)+len(parts)*32)
	out = append(out, label...)
	for _, p := range parts {
		h := sha256.Sum256(p)
		out = append(out, h[:]...)
	}
	return out
}

// Parsed is an envelope that decoded, not yet verified or opened.
type Parsed struct {
	Version      int // 4, or 3 or 2 for an envelope queued before an update
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
	// Recipients is how many devices the message was sealed to (1 for
	// version 2, whose envelopes were signed one by one).
	Recipients int
	// Heads are the chain heads the sender chose recipients from, by
	// account (empty for version 2). Signed with the message: a recipient
	// can compare the head of its own account with its chain.
	Heads map[chain.AccountID]chain.Head

	header, body, sig, sealed []byte
	bind                      []byte // the HPKE binding after the keystore's label
	msg                       []byte // what the signature covers
	entryErr                  error  // this device's entry is not the signed one at its index
	w                         any    // the decoded wire struct (for the fuzz target's re-encoding)
}

// header is a decoded and checked header.
type header struct {
	w     wHeader
	heads []chain.Head      // in the header's order
	accts []chain.AccountID // in the header's order
}

// parseHeader decodes and checks a header of version v (4 or 3: heads
// required; 2: none).
func parseHeader(b []byte, v uint8) (*header, error) {
	var h header
	if err := wire.Unmarshal(b, &h.w, maxHeader); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	c := &h.w
	switch {
	case c.Version != v:
		return nil, fmt.Errorf("%w: header of version %d in an envelope of version %d", ErrMalformed, c.Version, v)
	case c.Kind != uint8(KindMessage) && c.Kind != uint8(KindCall):
		return nil, fmt.Errorf("%w: kind %d", ErrMalformed, c.Kind)
	case len(c.ID) != 16 || len(c.FromAccount) != 32 || len(c.FromDevice) != 16 || len(c.Conversation) != 32:
		return nil, fmt.Errorf("%w: id of the wrong size", ErrMalformed)
	case (Kind(c.Kind) == KindCall) != (c.CallID != ""):
		return nil, fmt.Errorf("%w: call id on a message or missing on a call", ErrMalformed)
	}
	if c.CallID != "" {
		if err := checkCallID(c.CallID); err != nil {
			return nil, err
		}
	}
	if v == versionV2 {
		if c.Heads != nil {
			return nil, fmt.Errorf("%w: a version 2 envelope with version 3 fields", ErrMalformed)
		}
		return &h, nil
	}
	if len(c.Heads) == 0 || len(c.Heads) > MaxHeads {
		return nil, fmt.Errorf("%w: %d chain heads, 1-%d allowed", ErrMalformed, len(c.Heads), MaxHeads)
	}
	for i, hd := range c.Heads {
		if len(hd.Account) != 32 || len(hd.Hash) != 32 {
			return nil, fmt.Errorf("%w: chain head of the wrong size", ErrMalformed)
		}
		if i > 0 && bytes.Compare(c.Heads[i-1].Account, hd.Account) >= 0 {
			return nil, fmt.Errorf("%w: chain heads not sorted by account, or an account twice", ErrMalformed)
		}
		h.accts = append(h.accts, chain.AccountID(hd.Account))
		h.heads = append(h.heads, chain.Head{Seq: hd.Seq, Hash: chain.Hash(hd.Hash)})
	}
	return &h, nil
}

// parseEntry decodes and checks a version 4 entry against the header's
// accounts, returning its account, device, KEM hash and sealed key.
func parseEntry(b []byte, accts []chain.AccountID) (a chain.AccountID, d chain.DeviceID, kem [32]byte, sealed []byte, err error) {
	var e wEntry
	if err = wire.Unmarshal(b, &e, maxEntry); err != nil {
		return a, d, kem, nil, fmt.Errorf("%w: entry: %v", ErrMalformed, err)
	}
	switch {
	case int(e.Account) >= len(accts):
		return a, d, kem, nil, fmt.Errorf("%w: entry names account %d of the header's %d", ErrMalformed, e.Account, len(accts))
	case len(e.Device) != 16 || len(e.KEM) != 32:
		return a, d, kem, nil, fmt.Errorf("%w: recipient id of the wrong size", ErrMalformed)
	case len(e.Sealed) == 0:
		return a, d, kem, nil, fmt.Errorf("%w: entry without a sealed key", ErrMalformed)
	}
	return accts[e.Account], chain.DeviceID(e.Device), [32]byte(e.KEM), e.Sealed, nil
}

// fill copies the header's fields into p.
func (p *Parsed) fill(h *header, v int) {
	c := &h.w
	p.Version, p.Kind, p.SentAt, p.CallID = v, Kind(c.Kind), time.UnixMilli(c.SentAt).UTC(), c.CallID
	p.ID = [16]byte(c.ID)
	p.FromAccount = chain.AccountID(c.FromAccount)
	p.FromDevice = chain.DeviceID(c.FromDevice)
	p.Conversation = chain.AccountID(c.Conversation)
	if len(h.heads) > 0 {
		p.Heads = make(map[chain.AccountID]chain.Head, len(h.heads))
		for i, a := range h.accts {
			p.Heads[a] = h.heads[i]
		}
	}
}

// Parse decodes one device's envelope strictly: version 4, or 3 or 2
// (queued before an update).
func Parse(b []byte) (*Parsed, error) {
	// A version 4 envelope is a map whose first key is 0 (canonical CBOR
	// sorts the keys), followed by the version; versions 3 and 2 start
	// with key 1.
	if len(b) >= 3 && b[0] >= 0xa1 && b[0] <= 0xb7 && b[1] == 0x00 {
		return parseV4(b)
	}
	return parseLegacy(b)
}

func parseV4(b []byte) (*Parsed, error) {
	var w wEnvelope
	if err := wire.Unmarshal(b, &w, MaxEnvelope); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if w.Version != version {
		return nil, fmt.Errorf("%w: version %d at key 0, where this build reads only version %d (versions %d and %d have no key 0); the sender must update, or this device",
			ErrMalformed, w.Version, version, versionV2, versionV3)
	}
	h, err := parseHeader(w.Header, version)
	if err != nil {
		return nil, err
	}
	n, err := checkDigests(w.Digests, w.Index)
	if err != nil {
		return nil, err
	}
	p := &Parsed{Recipients: n, header: w.Header, body: w.Body, sig: w.Sig, w: &w}
	p.fill(h, version)
	if p.ToAccount, p.ToDevice, p.KEMHash, p.sealed, err = parseEntry(w.Entry, h.accts); err != nil {
		return nil, err
	}
	p.bind = binding(w.Header, p.ToAccount, p.ToDevice, p.KEMHash)
	p.msg = signed(w.Header, w.Digests, w.Body)
	p.entryErr = checkOwn(w.Digests, w.Index, sha256.Sum256(w.Entry))
	return p, nil
}

// checkDigests checks a digest list of 1-MaxRecipients digests and an
// index into it, returning how many digests it holds.
func checkDigests(digests []byte, index uint16) (int, error) {
	n := len(digests) / 32
	switch {
	case n == 0 || n > MaxRecipients || len(digests)%32 != 0:
		return 0, fmt.Errorf("%w: %d bytes of entry digests, want 32 for each of 1-%d devices", ErrMalformed, len(digests), MaxRecipients)
	case int(index) >= n:
		return 0, fmt.Errorf("%w: entry %d of %d", ErrMalformed, index, n)
	}
	return n, nil
}

// checkOwn reports (as ErrSender, at Verify) an entry whose digest is not
// the one the list holds at its index.
func checkOwn(digests []byte, index uint16, own [32]byte) error {
	if i := int(index) * 32; !bytes.Equal(digests[i:i+32], own[:]) {
		return fmt.Errorf("%w: this device's entry is not the one the message lists at index %d", ErrSender, index)
	}
	return nil
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
	if p.entryErr != nil {
		return p.entryErr
	}
	if err := keystore.Verify(keystore.AlgHybrid, d.Identity.Bytes(), keystore.PurposeEnvelope, p.msg, p.sig); err != nil {
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
	return k.OpenSession(p.Kind.sealing(), p.bind, p.sealed, keystore.SessionOptions{TTL: ttl})
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
	return sk.Open(p.body, p.header)
}

// For checks that the envelope is addressed to this device.
func (p *Parsed) For(account chain.AccountID, device chain.DeviceID) error {
	if !bytes.Equal(p.ToAccount[:], account[:]) || p.ToDevice != device {
		return fmt.Errorf("%w: it names device %s of account %s", ErrNotForMe, p.ToDevice, p.ToAccount)
	}
	return nil
}
