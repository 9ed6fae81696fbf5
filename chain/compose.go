package chain

// Pieces for workflows where a link is built by several parties: a joining
// device sends its add_device body before the link exists, and Command
// counter-signs links that devices built (organisation approvals and
// reviews).

import (
	"errors"
	"fmt"

	"github.com/enigm/enigm/hybrid"
	"github.com/enigm/enigm/internal/wire"
)

// EncodeBody returns the canonical encoding of a link body: the bytes a
// link carries and BodyHash hashes.
func EncodeBody(b Body) ([]byte, error) {
	if b == nil {
		return nil, errorf(ErrMalformed, "no body")
	}
	out, err := marshalBody(b)
	if err != nil {
		return nil, err
	}
	if len(out) > MaxBodySize {
		return nil, errorf(ErrTooLarge, "body is %d bytes, limit %d", len(out), MaxBodySize)
	}
	return out, nil
}

// marshalBody is the wire encoding of a non-nil body, unbounded.
func marshalBody(b Body) ([]byte, error) {
	wb, err := b.encode()
	if err != nil {
		return nil, err
	}
	out, err := wire.Marshal(wb)
	if err != nil {
		return nil, errorf(ErrMalformed, "encode body: %v", err)
	}
	return out, nil
}

// DecodeBody parses and checks the encoding of a body of type t, as
// ParseLink does for the body inside a link.
func DecodeBody(t LinkType, b []byte) (Body, error) {
	if !t.known() {
		return nil, errorf(ErrUnknownType, "type %d", t)
	}
	return decodeBody(t, b)
}

// Cosign returns a copy of l with one more signature, by k in role r: over
// the approval statement for RoleOrg on add_device and replace_device, over
// the link's payload otherwise. The signature is not verified here; Apply
// verifies it with the rest. RoleDevice and RoleBinding signatures are made
// on a Draft by the devices themselves.
func (l *Link) Cosign(r Role, k Signer) (*Link, error) {
	d := &Draft{body: l.body, payload: l.payload, sigs: append([]Signature(nil), l.sigs...),
		w: wLink{Version: linkVersion, Seq: l.seq, Time: uint64(l.time), Type: uint64(l.typ), Body: l.bodyRaw}}
	if l.typ != TypeGenesis {
		d.w.Account = append([]byte(nil), l.account[:]...)
		d.w.Prev = append([]byte(nil), l.prev[:]...)
	}
	head := Head{Seq: l.seq - 1, Hash: l.prev}
	switch v := l.body.(type) {
	case *AddDevice:
		d.approval = &Approval{Account: l.account, Head: head, Nonce: v.Nonce, PairingHash: v.PairingHash, Body: BodyHash(l.bodyRaw)}
	case *ReplaceDevice:
		d.approval = &Approval{Account: l.account, Head: head, Nonce: v.Nonce, PairingHash: v.PairingHash, Body: BodyHash(l.bodyRaw)}
	}
	if err := d.Sign(r, k); err != nil {
		return nil, err
	}
	return d.Link()
}

// VerifyApproval checks an enrollment approval made with SignApproval
// before any link carries it: sig must be k's hybrid signature over a, in
// role r (RoleDevice or RoleOrg) for a link of type t (add_device or
// replace_device). Command uses it to refuse a bad approval when it is
// submitted rather than when the joining device completes the link; Apply
// checks the same signature again, with the statement's fields, on the
// link. Errors wrap ErrUnexpectedSignature, ErrMalformed, ErrMissingPQ or
// ErrBadSignature.
func VerifyApproval(a Approval, t LinkType, r Role, k *hybrid.PublicKey, sig []byte) error {
	if (t != TypeAddDevice && t != TypeReplaceDevice) || (r != RoleDevice && r != RoleOrg) {
		return errorf(ErrUnexpectedSignature, "no approvals in role %s on %s", r, t)
	}
	if k == nil {
		return errorf(ErrBadKey, "no key to verify the approval with")
	}
	hs, err := hybrid.ParseSignature(sig)
	switch {
	case errors.Is(err, hybrid.ErrMissingPQ):
		return fmt.Errorf("%w: approval signature: %w", ErrMissingPQ, err)
	case err != nil:
		return fmt.Errorf("%w: approval signature: %w", ErrMalformed, err)
	}
	msg, err := wire.Marshal(a.wire())
	if err != nil {
		return errorf(ErrMalformed, "encode approval: %v", err)
	}
	if err := hybrid.Verify(k, approvalCtx[t][r], msg, hs); err != nil {
		return sigErr(err, "approval in role %s on %s", r, t)
	}
	return nil
}
