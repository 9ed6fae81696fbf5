package chain

import (
	"time"

	"github.com/enigm/enigm/hybrid"
	"github.com/enigm/enigm/internal/wire"
)

// Body is the type-specific content of a link: one of *Genesis,
// *AddDevice, *RevokeDevice, *RotateKeys, *ReplaceDevice,
// *RecoveryRequest, *RecoveryVeto, *Recover, *RotateRecovery, *SetPolicy.
type Body interface {
	Type() LinkType
	encode() (any, error)
}

// Org is the organisation of a managed account.
type Org struct {
	ID       string            // 1–MaxOrgIDLen bytes of printable UTF-8
	AdminKey *hybrid.PublicKey // counter-signs enrollments, revokes, sets policy; decrypts nothing
}

// Genesis starts an account: its first device, recovery key, policy and,
// for managed accounts, organisation.
type Genesis struct {
	Device   Device
	Recovery *hybrid.PublicKey // public half of the key derived from the recovery code
	Policy   Policy
	Org      *Org // nil for unmanaged accounts
}

// AddDevice enrolls a new device, approved by an active device.
type AddDevice struct {
	Device      Device
	Nonce       [NonceSize]byte       // the enrollment request's nonce
	PairingHash [PairingHashSize]byte // PairingHash of the pairing code the two devices shared
}

// RevokeReason says why a device was revoked. Values are wire format.
type RevokeReason uint8

// Revocation reasons.
const (
	ReasonUnspecified RevokeReason = 0
	ReasonLost        RevokeReason = 1
	ReasonCompromised RevokeReason = 2
	ReasonAdmin       RevokeReason = 3

	reasonEnd RevokeReason = 4
)

// RevokeDevice revokes a device for good.
type RevokeDevice struct {
	ID     DeviceID
	Reason RevokeReason
}

// RotateKeys replaces a device's identity key, KEM key, or both. A nil
// field keeps the current key.
type RotateKeys struct {
	ID       DeviceID
	Identity *hybrid.PublicKey
	KEM      []byte
}

// ReplaceDevice adds Device and retires Old in one link.
type ReplaceDevice struct {
	Old         DeviceID
	Device      Device
	Nonce       [NonceSize]byte
	PairingHash [PairingHashSize]byte
}

// RecoveryRequest starts a recovery: after the policy's waiting period,
// unless vetoed, recover adds Device. It carries public keys only.
type RecoveryRequest struct {
	Device Device
}

// RecoveryVeto cancels the pending recovery request named by its link hash.
type RecoveryVeto struct {
	Request Hash
}

// Recover completes the pending recovery request named by its link hash.
type Recover struct {
	Request Hash
}

// RotateRecovery installs a new recovery key. It cancels a pending
// recovery request.
type RotateRecovery struct {
	Recovery *hybrid.PublicKey
}

// SetPolicy replaces a managed account's policy.
type SetPolicy struct {
	Policy Policy
}

func (*Genesis) Type() LinkType         { return TypeGenesis }
func (*AddDevice) Type() LinkType       { return TypeAddDevice }
func (*RevokeDevice) Type() LinkType    { return TypeRevokeDevice }
func (*RotateKeys) Type() LinkType      { return TypeRotateKeys }
func (*ReplaceDevice) Type() LinkType   { return TypeReplaceDevice }
func (*RecoveryRequest) Type() LinkType { return TypeRecoveryRequest }
func (*RecoveryVeto) Type() LinkType    { return TypeRecoveryVeto }
func (*Recover) Type() LinkType         { return TypeRecover }
func (*RotateRecovery) Type() LinkType  { return TypeRotateRecovery }
func (*SetPolicy) Type() LinkType       { return TypeSetPolicy }

func policyWire(p Policy) wPolicy {
	return wPolicy{
		AdminApproval: p.RequireAdminApproval,
		RecoveryDelay: uint64(p.RecoveryDelay / time.Second),
		AdminReview:   p.RequireAdminReview,
		MinLevel:      string(p.MinLevel),
		Attestation:   p.RequireVerifiedAttestation,
		WitnessPolicy: p.WitnessPolicy,
		WitnessMaxAge: uint64(p.WitnessMaxAge / time.Second),
	}
}

func parsePolicy(w *wPolicy, managed bool) (Policy, error) {
	if w.RecoveryDelay > uint64(MaxRecoveryDelay/time.Second) {
		return Policy{}, errorf(ErrPolicy, "recovery delay %d s exceeds %v", w.RecoveryDelay, MaxRecoveryDelay)
	}
	if w.WitnessMaxAge > uint64(MaxWitnessMaxAge/time.Second) {
		return Policy{}, errorf(ErrPolicy, "witness maximum age %d s exceeds %v", w.WitnessMaxAge, MaxWitnessMaxAge)
	}
	p := Policy{
		RequireAdminApproval:       w.AdminApproval,
		RecoveryDelay:              time.Duration(w.RecoveryDelay) * time.Second,
		RequireAdminReview:         w.AdminReview,
		MinLevel:                   Level(w.MinLevel),
		RequireVerifiedAttestation: w.Attestation,
		WitnessPolicy:              w.WitnessPolicy,
		WitnessMaxAge:              time.Duration(w.WitnessMaxAge) * time.Second,
	}
	return p, p.validate(managed)
}

func (g *Genesis) encode() (any, error) {
	d, err := g.Device.wire()
	if err != nil {
		return nil, err
	}
	if g.Recovery == nil {
		return nil, errorf(ErrMalformed, "genesis needs a recovery key")
	}
	w := &wGenesis{Suite: suiteV1, Device: d, Recovery: g.Recovery.Bytes(), Policy: policyWire(g.Policy)}
	if g.Org != nil {
		if g.Org.AdminKey == nil {
			return nil, errorf(ErrMalformed, "organisation needs an admin key")
		}
		w.Org = &wOrg{ID: g.Org.ID, AdminKey: g.Org.AdminKey.Bytes()}
	}
	return w, nil
}

func (a *AddDevice) encode() (any, error) {
	d, err := a.Device.wire()
	if err != nil {
		return nil, err
	}
	return &wAddDevice{Device: d, Nonce: a.Nonce[:], Pairing: a.PairingHash[:]}, nil
}

func (r *RevokeDevice) encode() (any, error) {
	return &wRevokeDevice{ID: r.ID[:], Reason: uint64(r.Reason)}, nil
}

func (r *RotateKeys) encode() (any, error) {
	w := &wRotateKeys{ID: r.ID[:]}
	if r.Identity != nil {
		w.Identity = r.Identity.Bytes()
	}
	w.KEM = r.KEM
	return w, nil
}

func (r *ReplaceDevice) encode() (any, error) {
	d, err := r.Device.wire()
	if err != nil {
		return nil, err
	}
	return &wReplaceDevice{Old: r.Old[:], Device: d, Nonce: r.Nonce[:], Pairing: r.PairingHash[:]}, nil
}

func (r *RecoveryRequest) encode() (any, error) {
	d, err := r.Device.wire()
	if err != nil {
		return nil, err
	}
	return &wRecoveryRequest{Device: d}, nil
}

func (r *RecoveryVeto) encode() (any, error) { return &wRequestRef{Request: r.Request[:]}, nil }
func (r *Recover) encode() (any, error)      { return &wRequestRef{Request: r.Request[:]}, nil }

func (r *RotateRecovery) encode() (any, error) {
	if r.Recovery == nil {
		return nil, errorf(ErrMalformed, "rotate_recovery needs a recovery key")
	}
	return &wRotateRecovery{Recovery: r.Recovery.Bytes()}, nil
}

func (s *SetPolicy) encode() (any, error) { return &wSetPolicy{Policy: policyWire(s.Policy)}, nil }

// decodeBody strictly decodes and checks the body of a link of type t.
func decodeBody(t LinkType, b []byte) (Body, error) {
	if len(b) > MaxBodySize {
		return nil, errorf(ErrTooLarge, "body is %d bytes, limit %d", len(b), MaxBodySize)
	}
	unmarshal := func(v any) error {
		if err := wire.Unmarshal(b, v, MaxBodySize); err != nil {
			return errorf(ErrMalformed, "%s body: %w", t, err)
		}
		return nil
	}
	switch t {
	case TypeGenesis:
		var w wGenesis
		if err := unmarshal(&w); err != nil {
			return nil, err
		}
		if w.Suite != suiteV1 {
			return nil, errorf(ErrSuite, "suite %d (this code implements %d)", w.Suite, suiteV1)
		}
		g := &Genesis{}
		var err error
		if g.Device, err = parseDevice(&w.Device); err != nil {
			return nil, err
		}
		if g.Recovery, err = parseHybridKey("recovery key", w.Recovery); err != nil {
			return nil, err
		}
		if w.Org != nil {
			if err := checkText("organisation id", w.Org.ID, MaxOrgIDLen); err != nil {
				return nil, err
			}
			g.Org = &Org{ID: w.Org.ID}
			if g.Org.AdminKey, err = parseHybridKey("organisation admin key", w.Org.AdminKey); err != nil {
				return nil, err
			}
		}
		if g.Policy, err = parsePolicy(&w.Policy, g.Org != nil); err != nil {
			return nil, err
		}
		return g, nil
	case TypeAddDevice:
		var w wAddDevice
		if err := unmarshal(&w); err != nil {
			return nil, err
		}
		a := &AddDevice{}
		if err := fixed(a.Nonce[:], w.Nonce, "nonce"); err != nil {
			return nil, err
		}
		if err := fixed(a.PairingHash[:], w.Pairing, "pairing hash"); err != nil {
			return nil, err
		}
		var err error
		a.Device, err = parseDevice(&w.Device)
		return a, err
	case TypeRevokeDevice:
		var w wRevokeDevice
		if err := unmarshal(&w); err != nil {
			return nil, err
		}
		r := &RevokeDevice{}
		if err := fixed(r.ID[:], w.ID, "device id"); err != nil {
			return nil, err
		}
		if w.Reason >= uint64(reasonEnd) {
			return nil, errorf(ErrMalformed, "unknown revocation reason %d", w.Reason)
		}
		r.Reason = RevokeReason(w.Reason)
		return r, nil
	case TypeRotateKeys:
		var w wRotateKeys
		if err := unmarshal(&w); err != nil {
			return nil, err
		}
		r := &RotateKeys{}
		if err := fixed(r.ID[:], w.ID, "device id"); err != nil {
			return nil, err
		}
		if w.Identity == nil && w.KEM == nil {
			return nil, errorf(ErrMalformed, "rotate_keys names no new key")
		}
		var err error
		if w.Identity != nil {
			if r.Identity, err = parseHybridKey("new identity key", w.Identity); err != nil {
				return nil, err
			}
		}
		if w.KEM != nil {
			if err = checkKEMKey(w.KEM); err != nil {
				return nil, err
			}
			r.KEM = w.KEM
		}
		return r, nil
	case TypeReplaceDevice:
		var w wReplaceDevice
		if err := unmarshal(&w); err != nil {
			return nil, err
		}
		r := &ReplaceDevice{}
		if err := fixed(r.Old[:], w.Old, "old device id"); err != nil {
			return nil, err
		}
		if err := fixed(r.Nonce[:], w.Nonce, "nonce"); err != nil {
			return nil, err
		}
		if err := fixed(r.PairingHash[:], w.Pairing, "pairing hash"); err != nil {
			return nil, err
		}
		var err error
		r.Device, err = parseDevice(&w.Device)
		return r, err
	case TypeRecoveryRequest:
		var w wRecoveryRequest
		if err := unmarshal(&w); err != nil {
			return nil, err
		}
		d, err := parseDevice(&w.Device)
		return &RecoveryRequest{Device: d}, err
	case TypeRecoveryVeto, TypeRecover:
		var w wRequestRef
		if err := unmarshal(&w); err != nil {
			return nil, err
		}
		var h Hash
		if err := fixed(h[:], w.Request, "request hash"); err != nil {
			return nil, err
		}
		if t == TypeRecover {
			return &Recover{Request: h}, nil
		}
		return &RecoveryVeto{Request: h}, nil
	case TypeRotateRecovery:
		var w wRotateRecovery
		if err := unmarshal(&w); err != nil {
			return nil, err
		}
		k, err := parseHybridKey("new recovery key", w.Recovery)
		return &RotateRecovery{Recovery: k}, err
	case TypeSetPolicy:
		var w wSetPolicy
		if err := unmarshal(&w); err != nil {
			return nil, err
		}
		// set_policy exists only on managed accounts (Apply checks).
		p, err := parsePolicy(&w.Policy, true)
		return &SetPolicy{Policy: p}, err
	}
	return nil, errorf(ErrUnknownType, "type %d", t)
}

func fixed(dst, src []byte, what string) error {
	if len(src) != len(dst) {
		return errorf(ErrMalformed, "%s is %d bytes, want %d", what, len(src), len(dst))
	}
	copy(dst, src)
	return nil
}
