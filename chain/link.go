package chain

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/enigm/enigm/hybrid"
	"github.com/enigm/enigm/internal/wire"
)

// Link is one parsed, structurally valid link. Parsing checks the encoding,
// sizes and keys; whether the link may follow a given chain state, and its
// signatures, is decided by Apply. A Link is immutable and safe for
// concurrent use.
type Link struct {
	raw     []byte
	hash    Hash
	payload []byte // what payload signatures sign: the link without field 8
	bodyRaw []byte // the body's encoding (field 7)

	account AccountID
	seq     uint64
	prev    Hash
	time    int64
	typ     LinkType
	body    Body
	sigs    []Signature
}

// Signature is one signature on a link.
type Signature struct {
	Role Role
	// Signer names the signing device; set for RoleDevice only.
	Signer DeviceID
	// Approval is the statement an enrollment approval signs (RoleDevice
	// and RoleOrg on add_device and replace_device); nil otherwise.
	Approval *Approval
	// Sig is the signature: a hybrid signature (hybrid.SignatureSize
	// bytes), or for RoleBinding a P-256 ECDSA signature as r || s with
	// low s (BindingSigSize bytes).
	Sig []byte

	hsig *hybrid.Signature // parsed Sig for hybrid roles
}

// Approval is an enrollment approval: the approving key's statement that
// it approves this request for this device record, against this chain
// head of this account. Replayed elsewhere it fails with
// ErrApprovalAccount, ErrApprovalHead, ErrApprovalRequest or
// ErrApprovalDevice.
type Approval struct {
	Account     AccountID
	Head        Head
	Nonce       [NonceSize]byte
	PairingHash [PairingHashSize]byte
	Body        Hash // BodyHash of the link body (device record, nonce, pairing hash)
}

// BodyHash returns the hash enrollment approvals name: SHA-256 of
// "enigm/v1/body-hash" || 0x00 || the body's canonical encoding. It covers
// the new device's record as well as the request nonce and pairing hash
// (and, for replace_device, the replaced device).
func BodyHash(body []byte) Hash { return domainHash(prefixBody, body) }

// ParseLink strictly decodes and checks one link. It does not verify
// signatures; use Apply or VerifyChain.
func ParseLink(b []byte) (*Link, error) {
	if len(b) > MaxLinkSize {
		return nil, errorf(ErrTooLarge, "link is %d bytes, limit %d", len(b), MaxLinkSize)
	}
	var w wLink
	if err := wire.Unmarshal(b, &w, MaxLinkSize); err != nil {
		if errors.Is(err, wire.ErrTooLarge) {
			return nil, fmt.Errorf("%w: %w", ErrTooLarge, err)
		}
		return nil, fmt.Errorf("%w: link: %w", ErrMalformed, err)
	}
	if w.Version != linkVersion {
		return nil, errorf(ErrVersion, "version %d (this code reads %d)", w.Version, linkVersion)
	}
	t := LinkType(w.Type)
	if w.Type >= uint64(typeEnd) || !t.known() {
		return nil, errorf(ErrUnknownType, "type %d", w.Type)
	}
	l := &Link{raw: b, seq: w.Seq, typ: t}
	if w.Seq > MaxSeq {
		return nil, errorf(ErrMalformed, "sequence number %d exceeds %d", w.Seq, uint64(MaxSeq))
	}
	if w.Time > MaxTimestamp {
		return nil, errorf(ErrMalformed, "timestamp %d exceeds %d", w.Time, uint64(MaxTimestamp))
	}
	l.time = int64(w.Time)
	if t == TypeGenesis {
		if w.Seq != 0 || w.Account != nil || w.Prev != nil {
			return nil, errorf(ErrMalformed, "genesis must have sequence 0 and no account or previous hash")
		}
	} else {
		if w.Seq == 0 {
			return nil, errorf(ErrGenesisNotFirst, "a %s link has sequence 0", t)
		}
		if err := fixed(l.account[:], w.Account, "account id"); err != nil {
			return nil, err
		}
		if err := fixed(l.prev[:], w.Prev, "previous hash"); err != nil {
			return nil, err
		}
	}
	if len(w.Sigs) > MaxSignatures {
		return nil, errorf(ErrTooLarge, "%d signatures, limit %d", len(w.Sigs), MaxSignatures)
	}
	if len(w.Sigs) == 0 {
		return nil, errorf(ErrMissingSignature, "%s link has no signatures", t)
	}
	l.sigs = make([]Signature, len(w.Sigs))
	for i := range w.Sigs {
		if err := parseSig(&l.sigs[i], &w.Sigs[i]); err != nil {
			return nil, fmt.Errorf("signature %d: %w", i, err)
		}
	}
	body, err := decodeBody(t, w.Body)
	if err != nil {
		return nil, err
	}
	l.body, l.bodyRaw = body, w.Body
	l.hash = domainHash(prefixLink, b)
	l.payload = payloadOf(b, &w)
	return l, nil
}

// payloadOf returns the encoding of the link without its signatures (of
// which it has at least one). The link's encoding is canonical, so fields
// 1–7 come first in key order, and the payload is those bytes under a map
// header one entry shorter; their length follows from the decoded values.
func payloadOf(b []byte, w *wLink) []byte {
	n := 1 // map header
	n += 1 + uintLen(w.Version)
	if w.Account != nil {
		n += 1 + uintLen(uint64(len(w.Account))) + len(w.Account)
	}
	n += 1 + uintLen(w.Seq)
	if w.Prev != nil {
		n += 1 + uintLen(uint64(len(w.Prev))) + len(w.Prev)
	}
	n += 1 + uintLen(w.Time)
	n += 1 + uintLen(w.Type)
	n += 1 + uintLen(uint64(len(w.Body))) + len(w.Body)
	p := make([]byte, n)
	p[0] = b[0] - 1 // map(k) with k < 24 is the single byte 0xa0|k
	copy(p[1:], b[1:n])
	return p
}

// uintLen is the length of a CBOR head carrying v (RFC 8949 §3, preferred
// serialization).
func uintLen(v uint64) int {
	switch {
	case v < 24:
		return 1
	case v <= 0xff:
		return 2
	case v <= 0xffff:
		return 3
	case v <= 0xffffffff:
		return 5
	}
	return 9
}

func parseSig(s *Signature, w *wSig) error {
	if w.Role == 0 || w.Role >= uint64(roleEnd) {
		return errorf(ErrMalformed, "unknown role %d", w.Role)
	}
	s.Role = Role(w.Role)
	if (s.Role == RoleDevice) != (w.Signer != nil) {
		return errorf(ErrMalformed, "a signer id goes with role device and only with it")
	}
	if w.Signer != nil {
		if err := fixed(s.Signer[:], w.Signer, "signer id"); err != nil {
			return err
		}
	}
	if w.Approval != nil {
		if s.Role != RoleDevice && s.Role != RoleOrg {
			return errorf(ErrMalformed, "role %s carries an approval statement", s.Role)
		}
		a := &Approval{}
		a.Head.Seq = w.Approval.HeadSeq
		for _, f := range []struct {
			dst  []byte
			src  []byte
			what string
		}{
			{a.Account[:], w.Approval.Account, "approval account"},
			{a.Head.Hash[:], w.Approval.HeadHash, "approval head hash"},
			{a.Nonce[:], w.Approval.Nonce, "approval nonce"},
			{a.PairingHash[:], w.Approval.Pairing, "approval pairing hash"},
			{a.Body[:], w.Approval.Body, "approval body hash"},
		} {
			if err := fixed(f.dst, f.src, f.what); err != nil {
				return err
			}
		}
		s.Approval = a
	}
	s.Sig = w.Sig
	if s.Role == RoleBinding {
		if len(w.Sig) != BindingSigSize {
			return errorf(ErrMalformed, "binding signature is %d bytes, want %d", len(w.Sig), BindingSigSize)
		}
		return nil
	}
	hs, err := hybrid.ParseSignature(w.Sig)
	switch {
	case errors.Is(err, hybrid.ErrMissingPQ):
		return fmt.Errorf("%w: %s signature: %w", ErrMissingPQ, s.Role, err)
	case err != nil:
		return fmt.Errorf("%w: %s signature: %w", ErrMalformed, s.Role, err)
	}
	s.hsig = hs
	return nil
}

func (a *Approval) wire() *wApproval {
	return &wApproval{
		Account: a.Account[:], HeadSeq: a.Head.Seq, HeadHash: a.Head.Hash[:],
		Nonce: a.Nonce[:], Pairing: a.PairingHash[:], Body: a.Body[:],
	}
}

// Bytes returns the link's canonical encoding. The caller must not modify it.
func (l *Link) Bytes() []byte { return l.raw }

// Hash returns the link hash: SHA-256("enigm/v1/link-hash" || 0x00 ||
// Bytes()). It covers the signatures.
func (l *Link) Hash() Hash { return l.hash }

// Payload returns the bytes that payload signatures sign: the link's
// encoding without its signatures (field 8). The caller must not modify it.
func (l *Link) Payload() []byte { return l.payload }

// Account returns the account id (zero for a genesis link, whose hash is
// the account id).
func (l *Link) Account() AccountID { return l.account }

// Seq returns the sequence number; genesis is 0.
func (l *Link) Seq() uint64 { return l.seq }

// Prev returns the hash of the previous link (zero for genesis).
func (l *Link) Prev() Hash { return l.prev }

// Time returns the link's timestamp (whole seconds).
func (l *Link) Time() time.Time { return time.Unix(l.time, 0).UTC() }

// Type returns the link type.
func (l *Link) Type() LinkType { return l.typ }

// Body returns the type-specific body. The caller must not modify it.
func (l *Link) Body() Body { return l.body }

// Signatures returns a copy of the link's signature list.
func (l *Link) Signatures() []Signature { return append([]Signature(nil), l.sigs...) }

// Equal reports whether two links have the same bytes.
func (l *Link) Equal(o *Link) bool { return o != nil && bytes.Equal(l.raw, o.raw) }
