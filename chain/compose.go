package chain

// Pieces for workflows where a link is built by several parties: a joining
// device sends its add_device body before the link exists, and Command
// counter-signs links that devices built (organisation approvals and
// reviews).

import "github.com/enigm/enigm/internal/wire"

// EncodeBody returns the canonical encoding of a link body: the bytes a
// link carries and BodyHash hashes.
func EncodeBody(b Body) ([]byte, error) {
	if b == nil {
		return nil, errorf(ErrMalformed, "no body")
	}
	wb, err := b.encode()
	if err != nil {
		return nil, err
	}
	out, err := wire.Marshal(wb)
	if err != nil {
		return nil, errorf(ErrMalformed, "encode body: %v", err)
	}
	if len(out) > MaxBodySize {
		return nil, errorf(ErrTooLarge, "body is %d bytes, limit %d", len(out), MaxBodySize)
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
