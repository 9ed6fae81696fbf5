package chain

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/asn1"
	"io"
	"math/big"
	"time"

	"github.com/enigm/enigm/hybrid"
	"github.com/enigm/enigm/internal/wire"
)

// Signer is a hybrid signing key: a *hybrid.PrivateKey, or a keystore handle
// that signs with one.
type Signer interface {
	Public() *hybrid.PublicKey
	Sign(ctx string, msg []byte) (*hybrid.Signature, error)
}

var _ Signer = (*hybrid.PrivateKey)(nil)

// Request is one signature package chain asks a key for: its context (a
// link or approval context of this file) and the bytes signed (the payload
// or approval statement chain encoded, or the binding digest over it). Only
// package chain makes Requests (their fields are unexported), so a key that
// signs under chain contexts only through a Request — as keystore handles
// do — signs only what chain itself built, never bytes an application
// chose.
type Request struct {
	ctx string
	msg []byte
}

// Context returns the signing context, e.g. "enigm/v1/link/add_device/subject".
func (r *Request) Context() string { return r.ctx }

// Message returns a copy of the bytes to sign (for a binding request, the
// 32-byte SHA-256 digest to sign).
func (r *Request) Message() []byte { return append([]byte(nil), r.msg...) }

// RequestSigner is a Signer that signs chain contexts only through a
// Request. Draft.Sign, Draft.SignDevice and SignApproval call SignRequest
// when the signer has it, and Sign otherwise (a raw *hybrid.PrivateKey).
type RequestSigner interface {
	Signer
	SignRequest(r *Request) (*hybrid.Signature, error)
}

// BindingRequestSigner is a binding key that signs binding digests only
// through a Request; SignBinding calls SignBindingRequest when the signer
// has it (returning an ASN.1 DER ECDSA signature over r.Message()).
type BindingRequestSigner interface {
	crypto.Signer
	SignBindingRequest(r *Request) ([]byte, error)
}

func signHybrid(k Signer, ctx string, msg []byte) (*hybrid.Signature, error) {
	if rs, ok := k.(RequestSigner); ok {
		return rs.SignRequest(&Request{ctx: ctx, msg: msg})
	}
	return k.Sign(ctx, msg)
}

// Signing contexts. A payload signature in role R on a link of type T is
// made under "enigm/v1/link/T/R" over Link.Payload; an enrollment approval
// under "enigm/v1/approval/T/R" over the approval statement. A signature is
// therefore valid in exactly one role of exactly one link type.
var (
	linkCtx     [typeEnd][roleEnd]string
	approvalCtx [typeEnd][roleEnd]string
)

func init() {
	for t := LinkType(1); t < typeEnd; t++ {
		for r := Role(1); r < roleEnd; r++ {
			linkCtx[t][r] = mustContext("link/" + t.String() + "/" + r.String())
			approvalCtx[t][r] = mustContext("approval/" + t.String() + "/" + r.String())
		}
	}
}

func mustContext(purpose string) string {
	c, err := hybrid.Context(purpose)
	if err != nil {
		panic(err) // purposes are constants of this file
	}
	return c
}

// SigningContext returns the context of a payload signature in role r on a
// link of type t, e.g. "enigm/v1/link/add_device/subject".
func SigningContext(t LinkType, r Role) string {
	if !t.known() || r == 0 || r >= roleEnd {
		return ""
	}
	return linkCtx[t][r]
}

// ApprovalContext returns the context of an enrollment approval in role r on
// a link of type t, e.g. "enigm/v1/approval/add_device/device".
func ApprovalContext(t LinkType, r Role) string {
	if !t.known() || r == 0 || r >= roleEnd {
		return ""
	}
	return approvalCtx[t][r]
}

// PairingHash returns the hash of a pairing code for the request nonce,
// as add_device and replace_device carry it.
func PairingHash(nonce [NonceSize]byte, code string) [PairingHashSize]byte {
	h := sha256.New()
	h.Write([]byte("enigm/v1/pairing-code\x00"))
	h.Write(nonce[:])
	h.Write([]byte(code))
	var out [PairingHashSize]byte
	h.Sum(out[:0])
	return out
}

// Draft is a link under construction: fix its content, collect its
// signatures, then call Link. A Draft is not safe for concurrent use.
type Draft struct {
	w        wLink
	body     Body
	payload  []byte
	approval *Approval
	sigs     []Signature
}

// NewGenesis starts the genesis link of a new account.
func NewGenesis(t time.Time, g *Genesis) (*Draft, error) {
	return newDraft(AccountID{}, 0, Hash{}, t, g)
}

// NewDraft starts a link that follows the head of s.
func NewDraft(s *State, t time.Time, b Body) (*Draft, error) {
	if s == nil {
		return nil, errorf(ErrNoGenesis, "a non-genesis link needs a chain state")
	}
	if b != nil && b.Type() == TypeGenesis {
		return nil, errorf(ErrGenesisNotFirst, "genesis starts a chain; use NewGenesis")
	}
	return newDraft(s.account, s.head.Seq+1, s.head.Hash, t, b)
}

func newDraft(acct AccountID, seq uint64, prev Hash, t time.Time, b Body) (*Draft, error) {
	if b == nil {
		return nil, errorf(ErrMalformed, "no body")
	}
	ts := t.Unix()
	if ts < 0 || ts > MaxTimestamp {
		return nil, errorf(ErrMalformed, "timestamp %v out of range", t)
	}
	body, err := marshalBody(b)
	if err != nil {
		return nil, err
	}
	d := &Draft{body: b, w: wLink{Version: linkVersion, Seq: seq, Time: uint64(ts), Type: uint64(b.Type()), Body: body}}
	if b.Type() != TypeGenesis {
		d.w.Account = append([]byte(nil), acct[:]...)
		d.w.Prev = append([]byte(nil), prev[:]...)
	}
	if d.payload, err = wire.Marshal(&d.w); err != nil {
		return nil, errorf(ErrMalformed, "encode payload: %v", err)
	}
	switch v := b.(type) {
	case *AddDevice:
		d.approval = &Approval{Account: acct, Head: Head{Seq: seq - 1, Hash: prev}, Nonce: v.Nonce, PairingHash: v.PairingHash, Body: BodyHash(body)}
	case *ReplaceDevice:
		d.approval = &Approval{Account: acct, Head: Head{Seq: seq - 1, Hash: prev}, Nonce: v.Nonce, PairingHash: v.PairingHash, Body: BodyHash(body)}
	}
	return d, nil
}

// Payload returns the bytes payload signatures sign.
func (d *Draft) Payload() []byte { return d.payload }

// Approval returns the statement that enrollment approvals of this draft
// sign (add_device and replace_device only).
func (d *Draft) Approval() (Approval, bool) {
	if d.approval == nil {
		return Approval{}, false
	}
	return *d.approval, true
}

// Sign adds a signature by k in role r (not RoleDevice or RoleBinding). On
// add_device and replace_device, RoleOrg signs the approval statement.
func (d *Draft) Sign(r Role, k Signer) error {
	if r == RoleDevice || r == RoleBinding || r == 0 || r >= roleEnd {
		return errorf(ErrUnexpectedSignature, "use SignDevice or SignBinding for role %s", r)
	}
	return d.sign(r, DeviceID{}, k)
}

// SignDevice adds a signature by the active device id with key k. On
// add_device and replace_device it signs the approval statement.
func (d *Draft) SignDevice(id DeviceID, k Signer) error { return d.sign(RoleDevice, id, k) }

func (d *Draft) sign(r Role, id DeviceID, k Signer) error {
	t := LinkType(d.w.Type)
	if d.approval != nil && (r == RoleDevice || r == RoleOrg) {
		s, err := SignApproval(*d.approval, t, r, id, k)
		if err != nil {
			return err
		}
		d.sigs = append(d.sigs, s)
		return nil
	}
	hs, err := signHybrid(k, linkCtx[t][r], d.payload)
	if err != nil {
		return err
	}
	s := Signature{Role: r, Sig: hs.Bytes(), hsig: hs}
	if r == RoleDevice {
		s.Signer = id
	}
	d.sigs = append(d.sigs, s)
	return nil
}

// SignApproval makes an enrollment approval for a link of type t (add_device
// or replace_device) in role r (RoleDevice with the approving device's id,
// or RoleOrg). Approvals are made before the link exists and added to its
// Draft with AddSignature.
func SignApproval(a Approval, t LinkType, r Role, id DeviceID, k Signer) (Signature, error) {
	if (t != TypeAddDevice && t != TypeReplaceDevice) || (r != RoleDevice && r != RoleOrg) {
		return Signature{}, errorf(ErrUnexpectedSignature, "no approvals in role %s on %s", r, t)
	}
	msg, err := wire.Marshal(a.wire())
	if err != nil {
		return Signature{}, errorf(ErrMalformed, "encode approval: %v", err)
	}
	hs, err := signHybrid(k, approvalCtx[t][r], msg)
	if err != nil {
		return Signature{}, err
	}
	s := Signature{Role: r, Approval: &a, Sig: hs.Bytes(), hsig: hs}
	if r == RoleDevice {
		s.Signer = id
	}
	return s, nil
}

// SignBinding adds the proof of possession of the P-256 hardware binding
// key k. rand goes to k.Sign (hardware signers use their own randomness).
func (d *Draft) SignBinding(k crypto.Signer, rand io.Reader) error {
	pub, ok := k.Public().(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return errorf(ErrBadKey, "binding key is not ECDSA P-256")
	}
	digest, err := bindingDigest(linkCtx[d.w.Type][RoleBinding], pub, d.payload)
	if err != nil {
		return err
	}
	var der []byte
	if rs, ok := k.(BindingRequestSigner); ok {
		der, err = rs.SignBindingRequest(&Request{ctx: linkCtx[d.w.Type][RoleBinding], msg: digest[:]})
	} else {
		der, err = k.Sign(rand, digest[:], crypto.SHA256)
	}
	if err != nil {
		return err
	}
	var rs struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(der, &rs); err != nil || len(rest) != 0 || rs.R == nil || rs.S == nil {
		return errorf(ErrMalformed, "binding signer returned a malformed ECDSA signature")
	}
	n := elliptic.P256().Params().N
	if rs.S.Cmp(halfOrder) > 0 {
		rs.S.Sub(n, rs.S)
	}
	if rs.R.Sign() <= 0 || rs.R.Cmp(n) >= 0 || rs.S.Sign() <= 0 {
		return errorf(ErrMalformed, "binding signer returned an out-of-range ECDSA signature")
	}
	sig := make([]byte, BindingSigSize)
	rs.R.FillBytes(sig[:32])
	rs.S.FillBytes(sig[32:])
	d.sigs = append(d.sigs, Signature{Role: RoleBinding, Sig: sig})
	return nil
}

// AddSignature adds a signature made elsewhere (an approval from
// SignApproval). Apply checks it like any other.
func (d *Draft) AddSignature(s Signature) { d.sigs = append(d.sigs, s) }

// Link encodes the draft with its signatures and parses the result.
func (d *Draft) Link() (*Link, error) {
	w := d.w
	w.Sigs = encodeSigs(d.sigs)
	b, err := wire.Marshal(&w)
	if err != nil {
		return nil, errorf(ErrMalformed, "encode link: %v", err)
	}
	return ParseLink(b)
}

func encodeSigs(sigs []Signature) []wSig {
	out := make([]wSig, len(sigs))
	for i, s := range sigs {
		out[i] = wSig{Role: uint64(s.Role), Sig: s.Sig}
		if s.Role == RoleDevice {
			out[i].Signer = append([]byte(nil), s.Signer[:]...)
		}
		if s.Approval != nil {
			out[i].Approval = s.Approval.wire()
		}
	}
	return out
}

var halfOrder = new(big.Int).Rsh(elliptic.P256().Params().N, 1)

// BindingDigest is what a P-256 binding key signs for context ctx (a link
// context here; keystore uses the same construction for its own purposes).
func BindingDigest(ctx string, pub *ecdsa.PublicKey, payload []byte) ([32]byte, error) {
	return bindingDigest(ctx, pub, payload)
}

// bindingDigest is what a binding key signs: SHA-256 of
//
//	"enigm-p256-v1" || 0x00 || u8(len(ctx)) || ctx || SHA-256(key) || payload
//
// with key the 65-byte uncompressed point, mirroring hybrid's construction.
func bindingDigest(ctx string, pub *ecdsa.PublicKey, payload []byte) ([32]byte, error) {
	kb, err := pub.Bytes()
	if err != nil {
		return [32]byte{}, errorf(ErrBadKey, "binding key: %v", err)
	}
	kh := sha256.Sum256(kb)
	h := sha256.New()
	h.Write([]byte("enigm-p256-v1\x00"))
	h.Write([]byte{byte(len(ctx))})
	h.Write([]byte(ctx))
	h.Write(kh[:])
	h.Write(payload)
	var out [32]byte
	h.Sum(out[:0])
	return out, nil
}

func verifyBinding(ctx string, pub *ecdsa.PublicKey, payload, sig []byte) error {
	if len(sig) != BindingSigSize {
		return errorf(ErrMalformed, "binding signature is %d bytes", len(sig))
	}
	r := new(big.Int).SetBytes(sig[:32])
	s := new(big.Int).SetBytes(sig[32:])
	if s.Cmp(halfOrder) > 0 {
		return errorf(ErrBadSignature, "binding signature has high s (not canonical)")
	}
	digest, err := bindingDigest(ctx, pub, payload)
	if err != nil {
		return err
	}
	if !ecdsa.Verify(pub, digest[:], r, s) {
		return errorf(ErrBadSignature, "binding key signature under %s", ctx)
	}
	return nil
}
