package chain

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/enigm/enigm/hybrid"
	"github.com/enigm/enigm/internal/wire"
)

// AttestationVerifier judges attestation evidence. Apply calls it for every
// device a link adds that carries evidence.
type AttestationVerifier interface {
	VerifyAttestation(in AttestationInput) error
}

// AttestationInput is what an AttestationVerifier judges.
type AttestationInput struct {
	Account AccountID // zero for genesis
	Type    LinkType  // the link that adds the device
	Prev    Hash      // the head that link follows; zero for genesis
	Nonce   []byte    // the enrollment request nonce (add_device, replace_device); nil otherwise
	Device  *Device   // the device; Device.Evidence is the evidence
}

// Option changes how Apply and VerifyChain verify.
type Option func(*options)

type options struct {
	attest  AttestationVerifier
	maxAge  time.Duration
	maxSkew time.Duration
}

// WithAttestationVerifier has attestation evidence checked by v. Without
// it, evidence is carried but not judged (DeviceRecord.AttestationVerified
// stays false), and a policy that requires verified attestation refuses
// every join.
func WithAttestationVerifier(v AttestationVerifier) Option {
	return func(o *options) { o.attest = v }
}

// WithMaxAge refuses links whose timestamp is more than d before now. The
// party that appends links (Enigm Command) sets it, so that a link cannot be
// appended with a backdated timestamp (which would shorten a recovery
// waiting period); verifiers of history do not, since old links are old.
func WithMaxAge(d time.Duration) Option {
	return func(o *options) { o.maxAge = d }
}

// WithMaxSkew refuses links whose timestamp is more than d after now,
// instead of MaxClockSkew; a d above MaxClockSkew (or not positive) leaves
// MaxClockSkew. The party that appends links (Enigm Command) sets a small
// d, so that no link it accepts is dated far ahead of its clock: a later
// link must not be older than its predecessor, and a link dated minutes
// ahead would otherwise keep every revocation and veto out until then
// (docs/design/chain.md §3.1).
func WithMaxSkew(d time.Duration) Option {
	return func(o *options) { o.maxSkew = d }
}

func collectOptions(opts []Option) options {
	var o options
	for _, f := range opts {
		if f != nil {
			f(&o)
		}
	}
	return o
}

// Apply verifies that l may follow the chain whose verified state is s, at
// the verifier's time now, and returns the state after it. A nil s means
// l must be the genesis link of a new chain. s is never modified.
//
// Apply checks, in this order: position (account, sequence, previous hash,
// timestamps), the signature roles the link type requires, the state rules
// (devices, policy, recovery), and last the signatures themselves.
func Apply(s *State, l *Link, now time.Time, opts ...Option) (*State, error) {
	o := collectOptions(opts)
	return apply(s, l, now, &o, false)
}

func apply(s *State, l *Link, now time.Time, o *options, inPlace bool) (*State, error) {
	if l == nil {
		return nil, errorf(ErrMalformed, "nil link")
	}
	skew := MaxClockSkew
	if o.maxSkew > 0 && o.maxSkew < skew {
		skew = o.maxSkew
	}
	if l.time > now.Unix()+int64(skew/time.Second) {
		return nil, errorf(ErrFutureTimestamp, "link time %v is after %v plus %v (check the signing device's clock)", l.Time(), now.UTC(), skew)
	}
	if o.maxAge > 0 && l.time < now.Unix()-int64(o.maxAge/time.Second) {
		return nil, errorf(ErrStale, "link time %v is more than %v before %v (check the signing device's clock)", l.Time(), o.maxAge, now.UTC())
	}
	if s == nil {
		if l.typ != TypeGenesis {
			return nil, errorf(ErrNoGenesis, "first link is %s", l.typ)
		}
		return applyGenesis(l, o)
	}
	if l.typ == TypeGenesis {
		return nil, errorf(ErrGenesisNotFirst, "genesis at position %d", s.head.Seq+1)
	}
	if l.account != s.account {
		return nil, errorf(ErrAccount, "link names account %s, chain is %s", l.account, s.account)
	}
	if l.seq != s.head.Seq+1 {
		return nil, errorf(ErrSequence, "link seq %d does not follow head seq %d", l.seq, s.head.Seq)
	}
	if l.prev != s.head.Hash {
		return nil, errorf(ErrPrevHash, "link %d names previous %s, head is %s", l.seq, l.prev, s.head.Hash)
	}
	if l.time < s.time {
		return nil, errorf(ErrTimeRegression, "link %d at %v is before its predecessor at %v", l.seq, l.Time(), s.Time())
	}
	rs, err := collectSigs(l)
	if err != nil {
		return nil, err
	}
	ns := s.derive(inPlace)
	switch b := l.body.(type) {
	case *AddDevice:
		err = ns.addDevice(l, b, rs, o)
	case *RevokeDevice:
		err = ns.revokeDevice(l, b, rs)
	case *RotateKeys:
		err = ns.rotateKeys(l, b, rs)
	case *ReplaceDevice:
		err = ns.replaceDevice(l, b, rs, o)
	case *RecoveryRequest:
		err = ns.recoveryRequest(l, b, rs, o)
	case *RecoveryVeto:
		err = ns.recoveryVeto(l, b, rs)
	case *Recover:
		err = ns.recover(l, b, rs)
	case *RotateRecovery:
		err = ns.rotateRecovery(l, b, rs)
	case *SetPolicy:
		err = ns.setPolicy(l, b, rs)
	default:
		err = errorf(ErrUnknownType, "%s", l.typ)
	}
	if err != nil {
		return nil, err
	}
	ns.head = Head{Seq: l.seq, Hash: l.hash}
	ns.time = l.time
	return ns, nil
}

// roleSigs holds a link's signatures by role; at most one per role.
type roleSigs [roleEnd]*Signature

func collectSigs(l *Link) (*roleSigs, error) {
	var rs roleSigs
	enrollment := l.typ == TypeAddDevice || l.typ == TypeReplaceDevice
	for i := range l.sigs {
		sg := &l.sigs[i]
		if rs[sg.Role] != nil {
			return nil, errorf(ErrUnexpectedSignature, "two signatures in role %s", sg.Role)
		}
		approval := enrollment && (sg.Role == RoleDevice || sg.Role == RoleOrg)
		switch {
		case approval && sg.Approval == nil:
			return nil, errorf(ErrMissingSignature, "role %s on %s must sign an approval statement", sg.Role, l.typ)
		case !approval && sg.Approval != nil:
			return nil, errorf(ErrUnexpectedSignature, "role %s on %s carries an approval statement", sg.Role, l.typ)
		}
		rs[sg.Role] = sg
	}
	return &rs, nil
}

// allow refuses signatures in roles outside allowed.
func (rs *roleSigs) allow(t LinkType, allowed ...Role) error {
	for r := Role(1); r < roleEnd; r++ {
		if rs[r] == nil {
			continue
		}
		ok := false
		for _, a := range allowed {
			ok = ok || a == r
		}
		if !ok {
			return errorf(ErrUnexpectedSignature, "%s takes no signature in role %s", t, r)
		}
	}
	return nil
}

// need refuses a missing signature in role r (when want) or a present one
// (when !want).
func (rs *roleSigs) need(t LinkType, r Role, want bool, what string) error {
	switch {
	case want && rs[r] == nil:
		return errorf(ErrMissingSignature, "%s needs %s (role %s)", t, what, r)
	case !want && rs[r] != nil:
		return errorf(ErrUnexpectedSignature, "%s takes no signature in role %s here", t, r)
	}
	return nil
}

// orgRule checks the organisation signature: required when required,
// refused on unmanaged accounts, and refused when not required.
func (s *State) orgRule(l *Link, rs *roleSigs, required bool, missing error) error {
	if rs[RoleOrg] != nil && s.org == nil {
		return errorf(ErrNotManaged, "%s signed by an organisation key, but the account has no organisation", l.typ)
	}
	if required && rs[RoleOrg] == nil {
		return errorf(missing, "%s on account of organisation %q", l.typ, s.org.ID)
	}
	if !required && rs[RoleOrg] != nil {
		return errorf(ErrUnexpectedSignature, "%s takes no organisation signature under this policy", l.typ)
	}
	return nil
}

func verifyPayload(l *Link, sg *Signature, k *hybrid.PublicKey) error {
	if err := hybrid.Verify(k, linkCtx[l.typ][sg.Role], l.payload, sg.hsig); err != nil {
		return sigErr(err, "%s signature on %s link %d", sg.Role, l.typ, l.seq)
	}
	return nil
}

func sigErr(err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	if errors.Is(err, hybrid.ErrMissingPQ) {
		return fmt.Errorf("%w: %s: %w", ErrMissingPQ, what, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrBadSignature, what, err)
}

// verifyApproval checks an enrollment approval against the statement the
// link implies, naming the first field that differs, then its signature.
func verifyApproval(l *Link, sg *Signature, k *hybrid.PublicKey, want *Approval) error {
	a := sg.Approval
	who := sg.Role.String()
	if sg.Role == RoleDevice {
		who = "device " + sg.Signer.String()
	}
	switch {
	case a.Account != want.Account:
		return errorf(ErrApprovalAccount, "approval by %s names account %s, link is for %s", who, a.Account, want.Account)
	case a.Head != want.Head:
		return errorf(ErrApprovalHead, "approval by %s is against head %d/%s, link follows %d/%s", who, a.Head.Seq, a.Head.Hash, want.Head.Seq, want.Head.Hash)
	case a.Nonce != want.Nonce || a.PairingHash != want.PairingHash:
		return errorf(ErrApprovalRequest, "approval by %s is for another request nonce or pairing code", who)
	case a.Body != want.Body:
		return errorf(ErrApprovalDevice, "approval by %s is for another device record (body %s, link has %s)", who, a.Body, want.Body)
	}
	msg, err := wire.Marshal(a.wire())
	if err != nil {
		return errorf(ErrMalformed, "encode approval: %v", err)
	}
	if err := hybrid.Verify(k, approvalCtx[l.typ][sg.Role], msg, sg.hsig); err != nil {
		return sigErr(err, "approval by %s on %s link %d", who, l.typ, l.seq)
	}
	return nil
}

// activeSigner resolves a RoleDevice signature to an active device.
func (s *State) activeSigner(sg *Signature) (*DeviceRecord, error) {
	r, ok := s.devices[sg.Signer]
	if !ok {
		return nil, errorf(ErrSignerUnknown, "device %s has never been in the account", sg.Signer)
	}
	if r.Status != StatusActive {
		return nil, errorf(ErrSignerRevoked, "device %s is %s since seq %d", sg.Signer, r.Status, r.EndedSeq)
	}
	return r, nil
}

// target resolves the active device a link acts on.
func (s *State) target(id DeviceID) (*DeviceRecord, error) {
	r, ok := s.devices[id]
	if !ok {
		return nil, errorf(ErrUnknownDevice, "device %s", id)
	}
	if r.Status != StatusActive {
		return nil, errorf(ErrDeviceNotActive, "device %s is %s since seq %d", id, r.Status, r.EndedSeq)
	}
	return r, nil
}

func kemHash(b []byte) Hash { return sha256.Sum256(b) }

func idHash(k *hybrid.PublicKey) Hash { return k.Fingerprint() }

// admit checks that d may join: fresh id, fresh keys, room, level.
func (s *State) admit(d *Device, countRoom bool) error {
	if r, ok := s.devices[d.ID]; ok {
		if r.Status == StatusActive {
			return errorf(ErrDeviceExists, "device %s", d.ID)
		}
		return errorf(ErrDeviceIDReused, "device %s was %s at seq %d and is never re-added", d.ID, r.Status, r.EndedSeq)
	}
	if _, ok := s.keys[idHash(d.Identity)]; ok {
		return errorf(ErrKeyReused, "identity key of device %s", d.ID)
	}
	if _, ok := s.keys[kemHash(d.KEM)]; ok {
		return errorf(ErrKeyReused, "KEM key of device %s", d.ID)
	}
	if countRoom && s.nActive >= MaxDevices {
		return errorf(ErrTooManyDevices, "account has %d active devices, limit %d", s.nActive, MaxDevices)
	}
	if !levelMeets(d.Level, s.policy.MinLevel) {
		return errorf(ErrProtectionLevel, "device %s reports %q, policy requires at least %q", d.ID, d.Level, s.policy.MinLevel)
	}
	return nil
}

func checkAttestation(o *options, p Policy, in AttestationInput) (bool, error) {
	switch {
	case in.Device.Evidence == nil && p.RequireVerifiedAttestation:
		return false, errorf(ErrAttestationRequired, "device %s carries no evidence", in.Device.ID)
	case in.Device.Evidence == nil:
		return false, nil
	case o.attest == nil && p.RequireVerifiedAttestation:
		return false, errorf(ErrAttestationRequired, "no attestation verifier configured to judge device %s", in.Device.ID)
	case o.attest == nil:
		return false, nil
	}
	if err := o.attest.VerifyAttestation(in); err != nil {
		return false, fmt.Errorf("%w: device %s, evidence %q: %w", ErrAttestation, in.Device.ID, in.Device.Evidence.Type, err)
	}
	return true, nil
}

// verifySubject checks the subject's proof of possession and, when the
// device has a binding key, the binding key's.
func verifySubject(l *Link, rs *roleSigs, d *Device) error {
	if err := verifyPayload(l, rs[RoleSubject], d.Identity); err != nil {
		return err
	}
	if d.Binding != nil {
		return verifyBinding(linkCtx[l.typ][RoleBinding], d.Binding, l.payload, rs[RoleBinding].Sig)
	}
	return nil
}

func (s *State) addRecord(l *Link, d *Device, by Authority, attested bool) {
	s.putDevice(&DeviceRecord{
		Device: *d, Status: StatusActive,
		AddedSeq: l.seq, AddedAt: l.Time(), AddedBy: l.typ, ApprovedBy: by,
		AttestationVerified: attested,
	})
	s.useKeys(idHash(d.Identity), kemHash(d.KEM))
	s.nActive++
}

func (s *State) endRecord(l *Link, r *DeviceRecord, st DeviceStatus, by Authority, replacement DeviceID) {
	c := *r
	c.Status, c.EndedSeq, c.EndedAt, c.EndedBy, c.ReplacedBy = st, l.seq, l.Time(), by, replacement
	s.putDevice(&c)
	s.nActive--
}

func applyGenesis(l *Link, o *options) (*State, error) {
	g := l.body.(*Genesis)
	rs, err := collectSigs(l)
	if err != nil {
		return nil, err
	}
	d := &g.Device
	if err := rs.allow(l.typ, RoleSubject, RoleBinding, RoleNewRecovery, RoleOrg); err != nil {
		return nil, err
	}
	if err := rs.need(l.typ, RoleSubject, true, "the first device's proof of possession"); err != nil {
		return nil, err
	}
	if err := rs.need(l.typ, RoleBinding, d.Binding != nil, "the first device's binding key signature"); err != nil {
		return nil, err
	}
	if err := rs.need(l.typ, RoleNewRecovery, true, "the recovery key's proof of possession"); err != nil {
		return nil, err
	}
	if rs[RoleOrg] != nil && g.Org == nil {
		return nil, errorf(ErrNotManaged, "genesis signed by an organisation key, but names no organisation")
	}
	if err := rs.need(l.typ, RoleOrg, g.Org != nil, "the organisation's signature"); err != nil {
		return nil, err
	}
	s := &State{
		account:  AccountID(l.hash),
		policy:   g.Policy,
		org:      g.Org,
		recovery: g.Recovery,
		devices:  make(map[DeviceID]*DeviceRecord, 1),
		keys:     make(map[Hash]struct{}, 4),
		closed:   make(map[Hash]struct{}),

		ownDevices: true, ownKeys: true, ownClosed: true,
	}
	used := []Hash{idHash(d.Identity), kemHash(d.KEM), idHash(g.Recovery)}
	if g.Org != nil {
		used = append(used, idHash(g.Org.AdminKey))
	}
	for i, h := range used {
		for _, h2 := range used[:i] {
			if h == h2 {
				return nil, errorf(ErrKeyReused, "genesis uses one key in two roles")
			}
		}
	}
	if !levelMeets(d.Level, g.Policy.MinLevel) {
		return nil, errorf(ErrProtectionLevel, "first device reports %q, policy requires at least %q", d.Level, g.Policy.MinLevel)
	}
	attested, err := checkAttestation(o, g.Policy, AttestationInput{Type: l.typ, Device: d})
	if err != nil {
		return nil, err
	}
	if err := verifySubject(l, rs, d); err != nil {
		return nil, err
	}
	if err := verifyPayload(l, rs[RoleNewRecovery], g.Recovery); err != nil {
		return nil, err
	}
	if g.Org != nil {
		if err := verifyPayload(l, rs[RoleOrg], g.Org.AdminKey); err != nil {
			return nil, err
		}
	}
	s.addRecord(l, d, Authority{Kind: ByGenesis, Org: g.Org != nil}, attested)
	s.useKeys(used[2:]...)
	s.head = Head{Seq: 0, Hash: l.hash}
	s.time = l.time
	return s, nil
}

// enrollmentRules are the shared rules of add_device and replace_device:
// the new device's proofs of possession, an approving device, and the
// organisation when policy requires it.
func (s *State) enrollmentRules(l *Link, rs *roleSigs, d *Device) error {
	if err := rs.allow(l.typ, RoleDevice, RoleSubject, RoleBinding, RoleOrg); err != nil {
		return err
	}
	if rs[RoleDevice] == nil {
		who := "neither an active device nor the organisation"
		if rs[RoleOrg] != nil {
			who = "the organisation key without an active device (it never adds a device on its own)"
		}
		return errorf(ErrNoDeviceApproval, "%s of device %s is approved by %s", l.typ, d.ID, who)
	}
	if err := rs.need(l.typ, RoleSubject, true, "the new device's proof of possession"); err != nil {
		return err
	}
	if err := rs.need(l.typ, RoleBinding, d.Binding != nil, "the new device's binding key signature"); err != nil {
		return err
	}
	return s.orgRule(l, rs, s.org != nil && s.policy.RequireAdminApproval, ErrAdminApprovalRequired)
}

func (s *State) verifyEnrollment(l *Link, rs *roleSigs, d *Device, approver *DeviceRecord, nonce [NonceSize]byte, pairing [PairingHashSize]byte) error {
	want := &Approval{Account: s.account, Head: s.head, Nonce: nonce, PairingHash: pairing, Body: BodyHash(l.bodyRaw)}
	if err := verifyApproval(l, rs[RoleDevice], approver.Identity, want); err != nil {
		return err
	}
	if rs[RoleOrg] != nil {
		if err := verifyApproval(l, rs[RoleOrg], s.org.AdminKey, want); err != nil {
			return err
		}
	}
	return verifySubject(l, rs, d)
}

// enrollDevice is what add_device and replace_device check alike once
// their approver is known, in this order: the new device d is admitted
// (countRoom: it takes a new place rather than a retiring device's), its
// attestation is judged against the policy, and the enrollment signatures
// are verified against approver. It reports whether d is attested.
func (s *State) enrollDevice(l *Link, rs *roleSigs, o *options, d *Device, countRoom bool, approver *DeviceRecord, nonce [NonceSize]byte, pairing [PairingHashSize]byte) (bool, error) {
	if err := s.admit(d, countRoom); err != nil {
		return false, err
	}
	attested, err := checkAttestation(o, s.policy, AttestationInput{Account: s.account, Type: l.typ, Prev: s.head.Hash, Nonce: nonce[:], Device: d})
	if err != nil {
		return false, err
	}
	if err := s.verifyEnrollment(l, rs, d, approver, nonce, pairing); err != nil {
		return false, err
	}
	return attested, nil
}

func (s *State) addDevice(l *Link, b *AddDevice, rs *roleSigs, o *options) error {
	d := &b.Device
	if err := s.enrollmentRules(l, rs, d); err != nil {
		return err
	}
	approver, err := s.activeSigner(rs[RoleDevice])
	if err != nil {
		return err
	}
	attested, err := s.enrollDevice(l, rs, o, d, true, approver, b.Nonce, b.PairingHash)
	if err != nil {
		return err
	}
	s.addRecord(l, d, Authority{Kind: ByDevice, Device: approver.ID, Org: rs[RoleOrg] != nil}, attested)
	return nil
}

func (s *State) replaceDevice(l *Link, b *ReplaceDevice, rs *roleSigs, o *options) error {
	d := &b.Device
	if err := s.enrollmentRules(l, rs, d); err != nil {
		return err
	}
	old, err := s.target(b.Old)
	if err != nil {
		return err
	}
	if _, err := s.activeSigner(rs[RoleDevice]); err != nil {
		return err
	}
	if rs[RoleDevice].Signer != b.Old {
		return errorf(ErrWrongSigner, "replace_device of %s must be approved by %s itself, not %s", b.Old, b.Old, rs[RoleDevice].Signer)
	}
	attested, err := s.enrollDevice(l, rs, o, d, false, old, b.Nonce, b.PairingHash)
	if err != nil {
		return err
	}
	s.endRecord(l, old, StatusRetired, Authority{Kind: ByDevice, Device: old.ID}, d.ID)
	s.addRecord(l, d, Authority{Kind: ByDevice, Device: old.ID, Org: rs[RoleOrg] != nil}, attested)
	return nil
}

func (s *State) revokeDevice(l *Link, b *RevokeDevice, rs *roleSigs) error {
	// The recovery key never revokes: it signs the recovery workflow only,
	// and a recovery takes effect through recover, after the waiting
	// period, where the account's devices can see it and veto it.
	if rs[RoleRecovery] != nil {
		return errorf(ErrUnexpectedSignature, "revoke_device signed by the recovery key: the recovery key signs only recovery_request; a recovered device revokes lost ones after recover")
	}
	if err := rs.allow(l.typ, RoleDevice, RoleOrg); err != nil {
		return err
	}
	switch {
	case rs[RoleDevice] == nil && rs[RoleOrg] == nil:
		return errorf(ErrMissingSignature, "revoke_device needs an active device or the organisation")
	case rs[RoleDevice] != nil && rs[RoleOrg] != nil:
		return errorf(ErrUnexpectedSignature, "revoke_device takes exactly one authorising signature, got 2")
	}
	if rs[RoleOrg] != nil && s.org == nil {
		return errorf(ErrNotManaged, "revoke_device signed by an organisation key, but the account has no organisation")
	}
	var (
		by  Authority
		key *hybrid.PublicKey
		sg  *Signature
	)
	if rs[RoleDevice] != nil {
		sg = rs[RoleDevice]
		r, err := s.activeSigner(sg)
		if err != nil {
			return err
		}
		by, key = Authority{Kind: ByDevice, Device: r.ID}, r.Identity
	} else {
		sg, by, key = rs[RoleOrg], Authority{Kind: ByOrg}, s.org.AdminKey
	}
	t, err := s.target(b.ID)
	if err != nil {
		return err
	}
	if err := verifyPayload(l, sg, key); err != nil {
		return err
	}
	s.endRecord(l, t, StatusRevoked, by, DeviceID{})
	return nil
}

func (s *State) rotateKeys(l *Link, b *RotateKeys, rs *roleSigs) error {
	if err := rs.allow(l.typ, RoleDevice, RoleSubject, RoleBinding); err != nil {
		return err
	}
	if err := rs.need(l.typ, RoleDevice, true, "the device's current identity key"); err != nil {
		return err
	}
	if _, err := s.activeSigner(rs[RoleDevice]); err != nil {
		return err
	}
	t, err := s.target(b.ID)
	if err != nil {
		return err
	}
	if rs[RoleDevice].Signer != b.ID {
		return errorf(ErrWrongSigner, "rotate_keys of %s must be signed by %s itself, not %s", b.ID, b.ID, rs[RoleDevice].Signer)
	}
	if err := rs.need(l.typ, RoleSubject, b.Identity != nil, "the new identity key's proof of possession"); err != nil {
		return err
	}
	if err := rs.need(l.typ, RoleBinding, t.Binding != nil, "the device's binding key signature"); err != nil {
		return err
	}
	var used []Hash
	if b.Identity != nil {
		used = append(used, idHash(b.Identity))
	}
	if b.KEM != nil {
		used = append(used, kemHash(b.KEM))
	}
	for _, h := range used {
		if _, ok := s.keys[h]; ok {
			return errorf(ErrKeyReused, "rotate_keys of %s names a key used before", b.ID)
		}
	}
	if err := verifyPayload(l, rs[RoleDevice], t.Identity); err != nil {
		return err
	}
	if b.Identity != nil {
		if err := verifyPayload(l, rs[RoleSubject], b.Identity); err != nil {
			return err
		}
	}
	if t.Binding != nil {
		if err := verifyBinding(linkCtx[l.typ][RoleBinding], t.Binding, l.payload, rs[RoleBinding].Sig); err != nil {
			return err
		}
	}
	c := *t
	if b.Identity != nil {
		c.Identity = b.Identity
	}
	if b.KEM != nil {
		c.KEM = b.KEM
	}
	c.RotatedSeq = l.seq
	s.putDevice(&c)
	s.useKeys(used...)
	return nil
}

func (s *State) recoveryRequest(l *Link, b *RecoveryRequest, rs *roleSigs, o *options) error {
	d := &b.Device
	if err := rs.allow(l.typ, RoleRecovery, RoleSubject, RoleBinding); err != nil {
		return err
	}
	if err := rs.need(l.typ, RoleRecovery, true, "the recovery key"); err != nil {
		return err
	}
	if err := rs.need(l.typ, RoleSubject, true, "the new device's proof of possession"); err != nil {
		return err
	}
	if err := rs.need(l.typ, RoleBinding, d.Binding != nil, "the new device's binding key signature"); err != nil {
		return err
	}
	if s.pending != nil {
		return errorf(ErrRecoveryPending, "request %s (seq %d) is pending", s.pending.Request, s.pending.Seq)
	}
	if err := s.admit(d, false); err != nil {
		return err
	}
	if _, err := checkAttestation(o, s.policy, AttestationInput{Account: s.account, Type: l.typ, Prev: s.head.Hash, Device: d}); err != nil {
		return err
	}
	if err := verifyPayload(l, rs[RoleRecovery], s.recovery); err != nil {
		return err
	}
	if err := verifySubject(l, rs, d); err != nil {
		return err
	}
	s.pending = &PendingRecovery{Request: l.hash, Seq: l.seq, Time: l.Time(), Delay: s.policy.RecoveryDelay, Device: *d}
	return nil
}

func (s *State) recoveryVeto(l *Link, b *RecoveryVeto, rs *roleSigs) error {
	if err := rs.allow(l.typ, RoleDevice); err != nil {
		return err
	}
	if err := rs.need(l.typ, RoleDevice, true, "an active device"); err != nil {
		return err
	}
	r, err := s.activeSigner(rs[RoleDevice])
	if err != nil {
		return err
	}
	if s.pending == nil || s.pending.Request != b.Request {
		return errorf(ErrNoPendingRecovery, "veto names request %s", b.Request)
	}
	if err := verifyPayload(l, rs[RoleDevice], r.Identity); err != nil {
		return err
	}
	s.closeRequest(b.Request)
	s.pending = nil
	return nil
}

func (s *State) recover(l *Link, b *Recover, rs *roleSigs) error {
	if err := rs.allow(l.typ, RoleSubject, RoleOrg); err != nil {
		return err
	}
	if _, ok := s.closed[b.Request]; ok {
		return errorf(ErrRecoveryVetoed, "request %s", b.Request)
	}
	p := s.pending
	if p == nil || p.Request != b.Request {
		return errorf(ErrNoPendingRecovery, "recover names request %s", b.Request)
	}
	if err := rs.need(l.typ, RoleSubject, true, "the recovering device's signature"); err != nil {
		return err
	}
	if err := s.orgRule(l, rs, s.org != nil && s.policy.RequireAdminReview, ErrAdminApprovalRequired); err != nil {
		return err
	}
	delay := max(p.Delay, s.policy.RecoveryDelay)
	if elapsed := time.Duration(l.time-p.Time.Unix()) * time.Second; elapsed < delay {
		return errorf(ErrRecoveryTooEarly, "%v of the %v waiting period elapsed since request seq %d", elapsed, delay, p.Seq)
	}
	d := &p.Device
	if err := s.admit(d, true); err != nil {
		return err
	}
	if err := verifyPayload(l, rs[RoleSubject], d.Identity); err != nil {
		return err
	}
	if rs[RoleOrg] != nil {
		if err := verifyPayload(l, rs[RoleOrg], s.org.AdminKey); err != nil {
			return err
		}
	}
	s.addRecord(l, d, Authority{Kind: ByRecovery, Org: rs[RoleOrg] != nil}, false)
	s.closeRequest(p.Request)
	s.pending = nil
	return nil
}

func (s *State) rotateRecovery(l *Link, b *RotateRecovery, rs *roleSigs) error {
	if err := rs.allow(l.typ, RoleDevice, RoleNewRecovery); err != nil {
		return err
	}
	if err := rs.need(l.typ, RoleDevice, true, "an active device"); err != nil {
		return err
	}
	if err := rs.need(l.typ, RoleNewRecovery, true, "the new recovery key's proof of possession"); err != nil {
		return err
	}
	r, err := s.activeSigner(rs[RoleDevice])
	if err != nil {
		return err
	}
	if _, ok := s.keys[idHash(b.Recovery)]; ok {
		return errorf(ErrKeyReused, "new recovery key was used before")
	}
	if err := verifyPayload(l, rs[RoleDevice], r.Identity); err != nil {
		return err
	}
	if err := verifyPayload(l, rs[RoleNewRecovery], b.Recovery); err != nil {
		return err
	}
	s.recovery = b.Recovery
	s.useKeys(idHash(b.Recovery))
	if s.pending != nil {
		s.closeRequest(s.pending.Request)
		s.pending = nil
	}
	return nil
}

func (s *State) setPolicy(l *Link, b *SetPolicy, rs *roleSigs) error {
	if err := rs.allow(l.typ, RoleOrg); err != nil {
		return err
	}
	if s.org == nil {
		return errorf(ErrNotManaged, "set_policy on an account without an organisation")
	}
	if err := rs.need(l.typ, RoleOrg, true, "the organisation key"); err != nil {
		return err
	}
	if err := verifyPayload(l, rs[RoleOrg], s.org.AdminKey); err != nil {
		return err
	}
	s.policy = b.Policy
	return nil
}
