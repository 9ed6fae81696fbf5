package keystore

import (
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/hybrid"
	"github.com/enigm/enigm/keystore/internal/audit"
	"github.com/enigm/enigm/keystore/internal/record"
	"github.com/enigm/enigm/lifecycle"
	"github.com/enigm/enigm/policy"
)

// lookup returns the live entry of a key of class c, creating it from the
// stored record on first use.
func (s *Store) lookup(id KeyID, c Class) (*liveKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if lk := s.live[id]; lk != nil {
		if lk.class != c {
			return nil, fmt.Errorf("%w: %s is a %v key, not %v", ErrWrongClass, id.Short(), lk.class, c)
		}
		return lk, nil
	}
	d, _, err := s.loadMetaLocked(id)
	if err != nil {
		return nil, err
	}
	if d.Meta.Class != c {
		return nil, fmt.Errorf("%w: %s is a %v key, not %v", ErrWrongClass, id.Short(), d.Meta.Class, c)
	}
	base := d.Meta.Policy.Requirements()
	lk := &liveKey{s: s, id: id, class: c, alg: d.Meta.Alg, life: d.Meta.Lifecycle(), base: base,
		req: s.effective(c, base), pub: append([]byte(nil), d.Meta.Public...), expires: record.Time(d.Meta.Expires),
		dead: !lifecycle.State(d.Meta.State).HoldsMaterial()}
	if len(d.Meta.Resident) > 0 {
		lk.resident = append([]byte(nil), d.Meta.Resident...)
	}
	info := infoFromMeta(&d.Meta, true)
	lk.pred, lk.succ = info.Predecessor, info.Successor
	s.live[id] = lk
	return lk, nil
}

// load unwraps a key's material into its live entry (store unlocked).
func (s *Store) load(lk *liveKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sess == nil {
		return nil // locked: the decision will say so
	}
	lk.mu.Lock()
	defer lk.mu.Unlock()
	if lk.loaded || lk.dead {
		return nil
	}
	d, _, err := s.loadMetaLocked(lk.id)
	if err != nil {
		return err
	}
	if lk.class == ClassBinding {
		bk, ok := s.sess.(backend.BindingKeys)
		if !ok {
			return fmt.Errorf("%w: the %s backend holds no hardware keys", ErrUnsupported, s.hdr.Backend)
		}
		signer, err := bk.LoadBindingKey(context.Background(), d.Meta.Resident)
		if err != nil {
			return fmt.Errorf("keystore: loading binding key %s from hardware: %w", lk.id.Short(), err)
		}
		if pub, ok := signer.Public().(*ecdsa.PublicKey); !ok || !equalPoint(pub, d.Meta.Public) {
			return corrupt("key "+lk.id.String(), errors.New("hardware binding key does not match its record"))
		}
		lk.signer, lk.loaded = signer, true
		return nil
	}
	if !d.Sealed {
		lk.dead = true
		return nil
	}
	m, err := s.openDecoded(d)
	if err != nil {
		return err
	}
	defer clear(m)
	if err := lk.setMaterial(m); err != nil {
		return corrupt("key "+lk.id.String(), err)
	}
	if lk.class != ClassSession && string(lk.pub) != string(d.Meta.Public) {
		lk.destroyLocked()
		return corrupt("key "+lk.id.String(), errors.New("material does not match the public key in its record"))
	}
	return nil
}

func equalPoint(pub *ecdsa.PublicKey, enc []byte) bool {
	ep, err := pub.ECDH()
	return err == nil && string(ep.Bytes()) == string(enc)
}

// begin decides a use of lk for op and records the decision. On success it
// returns with lk.mu read-locked; the caller must RUnlock.
func (s *Store) begin(lk *liveKey, op lifecycle.Op) error {
	if s.state.Load().Unlocked {
		lk.mu.RLock()
		need := !lk.loaded && !lk.dead
		lk.mu.RUnlock()
		if need {
			if err := s.load(lk); err != nil {
				s.log.Append(audit.Entry{Time: s.now(), Kind: audit.KindDecision, Key: lk.id, Op: uint8(op),
					Reasons: uint32(policy.KeyState), Detail: "record does not open"})
				return err
			}
		}
	}
	now := s.now()
	lk.mu.RLock()
	st := s.state.Load()
	d := policy.Decide(&lk.req, st, now)
	if lk.life.Allows(op, now) != nil || (!lk.expires.IsZero() && now.After(lk.expires)) {
		d = d.Deny(policy.KeyState)
	}
	if d.Allowed() && !lk.loaded {
		d = d.Deny(policy.Locked) // locked between the check above and now
	}
	if _, err := s.log.Append(audit.Entry{Time: now, Kind: audit.KindDecision, Key: lk.id, Op: uint8(op), Reasons: uint32(d.Reasons)}); err != nil {
		d = d.Deny(policy.AuditUnavailable) // fail closed: no use without its entry
	}
	if !d.Allowed() {
		lk.mu.RUnlock()
		return &DeniedError{Key: lk.id, Op: op, Reasons: d.Reasons}
	}
	return nil
}

// IdentityKey is a handle to a device identity key. It never exposes the
// private key; every operation is decided by policy and audited.
type IdentityKey struct{ lk *liveKey }

// Identity returns a handle to identity key id.
func (s *Store) Identity(id KeyID) (*IdentityKey, error) {
	lk, err := s.lookup(id, ClassIdentity)
	if err != nil {
		return nil, err
	}
	return &IdentityKey{lk}, nil
}

// ID returns the key id.
func (k *IdentityKey) ID() KeyID { return k.lk.id }

// Algorithm returns AlgHybrid, AlgEd25519 or a checkpoint algorithm.
func (k *IdentityKey) Algorithm() Algorithm { return k.lk.alg }

// Public returns the public key encoding (hybrid: Ed25519 || ML-DSA-65).
func (k *IdentityKey) Public() []byte {
	k.lk.mu.RLock()
	defer k.lk.mu.RUnlock()
	return append([]byte(nil), k.lk.pub...)
}

// HybridPublic returns the parsed hybrid public key.
func (k *IdentityKey) HybridPublic() (*hybrid.PublicKey, error) {
	if k.lk.alg != AlgHybrid {
		return nil, fmt.Errorf("%w: key %s is %v", ErrUnsupported, k.lk.id.Short(), k.lk.alg)
	}
	return hybrid.ParsePublicKey(k.Public())
}

// Sign signs msg for purpose p (signing context "enigm/v1/<p>"). The key
// must be active. Hybrid keys return the 3,373-byte hybrid signature,
// Ed25519 keys a 64-byte Ed25519ctx signature. No Purpose reaches a chain
// context: links and approvals are signed through ChainSigner.
func (k *IdentityKey) Sign(p Purpose, msg []byte) ([]byte, error) {
	ctx, err := p.context()
	if err != nil {
		return nil, err
	}
	return k.sign(lifecycle.Sign, ctx, msg)
}

// ProvePossession signs msg like Sign, but is also allowed while the key is
// only created: a new key proving possession of itself.
func (k *IdentityKey) ProvePossession(p Purpose, msg []byte) ([]byte, error) {
	ctx, err := p.context()
	if err != nil {
		return nil, err
	}
	return k.sign(lifecycle.ProvePossession, ctx, msg)
}

// ChainSigner returns a chain.RequestSigner over the (hybrid) key k: it signs
// the link payloads and approval statements that package chain built
// (chain.Request), and nothing else; its Sign method, which would take any
// context and message, refuses. possession makes it sign with the
// proof-of-possession operation, allowed while the key is only created (the
// key's own enrollment link).
func (k *IdentityKey) ChainSigner(possession bool) (chain.RequestSigner, error) {
	pub, err := k.HybridPublic()
	if err != nil {
		return nil, err
	}
	op := lifecycle.Sign
	if possession {
		op = lifecycle.ProvePossession
	}
	return &chainSigner{k: k, pub: pub, op: op}, nil
}

type chainSigner struct {
	k   *IdentityKey
	pub *hybrid.PublicKey
	op  lifecycle.Op
}

func (s *chainSigner) Public() *hybrid.PublicKey { return s.pub }

// Sign refuses: chain contexts are signed only through chain.Request.
func (s *chainSigner) Sign(string, []byte) (*hybrid.Signature, error) {
	return nil, fmt.Errorf("%w: a keystore key signs chain contexts only through a chain.Request (chain.Draft, chain.SignApproval)", ErrPurpose)
}

// SignRequest signs a request package chain made.
func (s *chainSigner) SignRequest(r *chain.Request) (*hybrid.Signature, error) {
	if r == nil || !(strings.HasPrefix(r.Context(), "enigm/v1/link/") || strings.HasPrefix(r.Context(), "enigm/v1/approval/")) {
		return nil, fmt.Errorf("%w: not a chain request", ErrPurpose)
	}
	b, err := s.k.sign(s.op, r.Context(), r.Message())
	if err != nil {
		return nil, err
	}
	return hybrid.ParseSignature(b)
}

func (k *IdentityKey) sign(op lifecycle.Op, ctx string, msg []byte) ([]byte, error) {
	lk := k.lk
	if err := lk.s.begin(lk, op); err != nil {
		return nil, err
	}
	defer lk.mu.RUnlock()
	switch lk.alg {
	case AlgHybrid:
		sig, err := lk.hyb.Sign(ctx, msg)
		if err != nil {
			return nil, err
		}
		return sig.Bytes(), nil
	case AlgEd25519:
		return lk.ed.Sign(nil, msg, &ed25519.Options{Context: ctx})
	case AlgCheckpointEd25519, AlgCheckpointMLDSA44:
		return nil, fmt.Errorf("%w: key %s signs transparency-log checkpoints only (CheckpointSigner)", ErrPurpose, lk.id.Short())
	}
	return nil, fmt.Errorf("%w: %v", ErrUnsupported, lk.alg)
}

// Verify checks a signature made by Sign for purpose p with a key of
// algorithm alg and public key pub.
func Verify(alg Algorithm, pub []byte, p Purpose, msg, sig []byte) error {
	ctx, err := p.context()
	if err != nil {
		return err
	}
	switch alg {
	case AlgHybrid:
		pk, err := hybrid.ParsePublicKey(pub)
		if err != nil {
			return err
		}
		s, err := hybrid.ParseSignature(sig)
		if err != nil {
			return err
		}
		return hybrid.Verify(pk, ctx, msg, s)
	case AlgEd25519:
		if len(pub) != ed25519.PublicKeySize {
			return errors.New("keystore: Ed25519 public key of the wrong size")
		}
		return ed25519.VerifyWithOptions(pub, msg, sig, &ed25519.Options{Context: ctx})
	}
	return fmt.Errorf("%w: %v does not sign", ErrUnsupported, alg)
}

// HPKE suite of device KEM keys: MLKEM768-X25519, HKDF-SHA256, AES-256-GCM.
var (
	hpkeKDF  = hpke.HKDFSHA256()
	hpkeAEAD = hpke.AES256GCM()
)

func sealTo(recipient []byte, sl Sealing, binding, plaintext []byte) ([]byte, error) {
	info, err := sl.info(binding)
	if err != nil {
		return nil, err
	}
	pk, err := recipientKey(recipient)
	if err != nil {
		return nil, err
	}
	return hpke.Seal(pk, hpkeKDF, hpkeAEAD, info, plaintext)
}

// SealData encrypts application data to a device KEM public key
// (single-shot HPKE, MLKEM768-X25519 / HKDF-SHA256 / AES-256-GCM, info
// "enigm/v1/kem/app-data" 0x00 || binding); the holder of the KEM key opens
// it with KEMKey.OpenData. binding is context the application chooses (it
// must be the same at both ends). Message and call keys are sealed with
// SessionKey.SealTo instead, under labels OpenData never opens.
func SealData(recipient, binding, plaintext []byte) ([]byte, error) {
	return sealTo(recipient, SealAppData, binding, plaintext)
}

// KEMKey is a handle to a device KEM key.
type KEMKey struct{ lk *liveKey }

// KEM returns a handle to KEM key id.
func (s *Store) KEM(id KeyID) (*KEMKey, error) {
	lk, err := s.lookup(id, ClassKEM)
	if err != nil {
		return nil, err
	}
	return &KEMKey{lk}, nil
}

// ID returns the key id.
func (k *KEMKey) ID() KeyID { return k.lk.id }

// Public returns the HPKE public key encoding.
func (k *KEMKey) Public() []byte {
	k.lk.mu.RLock()
	defer k.lk.mu.RUnlock()
	return append([]byte(nil), k.lk.pub...)
}

// open decrypts what was sealed to this key for sl. Superseded keys may
// still open during their grace period.
func (k *KEMKey) open(sl Sealing, binding, ciphertext []byte) ([]byte, error) {
	info, err := sl.info(binding)
	if err != nil {
		return nil, err
	}
	lk := k.lk
	if err := lk.s.begin(lk, lifecycle.Decrypt); err != nil {
		return nil, err
	}
	defer lk.mu.RUnlock()
	pt, err := hpke.Open(lk.kem, hpkeKDF, hpkeAEAD, info, ciphertext)
	if err != nil {
		return nil, fmt.Errorf("keystore: HPKE open (%v) with key %s: %w", sl, lk.id.Short(), err)
	}
	return pt, nil
}

// OpenData decrypts application data sealed to this key with SealData and
// the same binding. It opens nothing else: a message or call key sealed to
// this key does not open here (its HPKE info differs).
func (k *KEMKey) OpenData(binding, ciphertext []byte) ([]byte, error) {
	return k.open(SealAppData, binding, ciphertext)
}

// SessionOptions configure a session key received through OpenSession.
type SessionOptions struct {
	TTL time.Duration // default DefaultSessionTTL
}

// OpenSession decrypts a session key sent with SessionKey.SealTo for sl
// (SealMessageKey or SealCallKey) and binding, and installs it as a
// memory-only session key (lifecycle cause MessagingSetup or CallSetup, from
// sl); its bytes never leave the keystore.
func (k *KEMKey) OpenSession(sl Sealing, binding, ciphertext []byte, opts SessionOptions) (*SessionKey, error) {
	if !sl.sessionKey() {
		return nil, fmt.Errorf("%w: %v does not carry a session key", ErrPurpose, sl)
	}
	m, err := k.open(sl, binding, ciphertext)
	if err != nil {
		return nil, err
	}
	defer clear(m)
	if len(m) != AlgAES256GCM.SeedSize() {
		return nil, fmt.Errorf("keystore: received session key of %d bytes", len(m))
	}
	cause := lifecycle.MessagingSetup
	if sl == SealCallKey {
		cause = lifecycle.CallSetup
	}
	return k.lk.s.installSession(m, cause, opts)
}

func (s *Store) installSession(m []byte, cause lifecycle.Cause, opts SessionOptions) (*SessionKey, error) {
	ttl := opts.TTL
	if ttl == 0 {
		ttl = DefaultSessionTTL
	}
	if ttl < 0 || ttl > MaxSessionTTL {
		return nil, fmt.Errorf("keystore: session TTL %v outside (0, %v]", ttl, MaxSessionTTL)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usableLocked(); err != nil {
		return nil, err
	}
	now := s.now()
	life, _ := lifecycle.New(cause, now)
	life, err := life.Apply(lifecycle.Event{Kind: lifecycle.Activate, Cause: cause, At: now})
	if err != nil {
		return nil, err
	}
	base, _ := policy.Default(policy.ClassSession)
	lk := &liveKey{s: s, class: ClassSession, alg: AlgAES256GCM, life: life, base: base, req: s.effective(ClassSession, base),
		expires: now.Add(ttl)}
	rand.Read(lk.id[:])
	if err := lk.setMaterial(m); err != nil {
		return nil, err
	}
	meta := record.Meta{Version: record.Version, ID: lk.id[:], Class: ClassSession, Alg: AlgAES256GCM,
		Policy: record.FromRequirements(base), Device: s.hdr.Device, Expires: lk.expires.UnixMilli()}
	meta.SetLifecycle(life)
	rec, err := s.sealMeta(meta, m)
	if err != nil {
		lk.unload()
		return nil, err
	}
	s.session[lk.id] = &sessionEntry{rec: rec}
	s.live[lk.id] = lk
	for _, e := range createEntries(lk, true) {
		s.log.Append(e)
	}
	return &SessionKey{lk}, nil
}

// SessionKey is a handle to a session (message, call) key.
type SessionKey struct{ lk *liveKey }

// Session returns a handle to session key id.
func (s *Store) Session(id KeyID) (*SessionKey, error) {
	lk, err := s.lookup(id, ClassSession)
	if err != nil {
		return nil, err
	}
	return &SessionKey{lk}, nil
}

// ID returns the key id.
func (k *SessionKey) ID() KeyID { return k.lk.id }

// Expires returns the end of the key's TTL.
func (k *SessionKey) Expires() time.Time { return k.lk.expires }

func (k *SessionKey) aead() (cipher.AEAD, error) {
	blk, err := aes.NewCipher(k.lk.aes)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(blk)
}

// Seal encrypts plaintext with AES-256-GCM: nonce (12) || ciphertext.
func (k *SessionKey) Seal(plaintext, ad []byte) ([]byte, error) {
	lk := k.lk
	if err := lk.s.begin(lk, lifecycle.Encrypt); err != nil {
		return nil, err
	}
	defer lk.mu.RUnlock()
	a, err := k.aead()
	if err != nil {
		return nil, err
	}
	out := make([]byte, 12, 12+len(plaintext)+a.Overhead())
	rand.Read(out)
	return a.Seal(out, out, plaintext, ad), nil
}

// Open decrypts what Seal produced.
func (k *SessionKey) Open(ciphertext, ad []byte) ([]byte, error) {
	lk := k.lk
	if err := lk.s.begin(lk, lifecycle.Decrypt); err != nil {
		return nil, err
	}
	defer lk.mu.RUnlock()
	if len(ciphertext) < 12+16 {
		return nil, errors.New("keystore: session ciphertext too short")
	}
	a, err := k.aead()
	if err != nil {
		return nil, err
	}
	pt, err := a.Open(nil, ciphertext[:12], ciphertext[12:], ad)
	if err != nil {
		return nil, errors.New("keystore: session ciphertext does not authenticate")
	}
	return pt, nil
}

// SealTo sends the session key to a recipient device's KEM public key for
// sl (SealMessageKey or SealCallKey), bound to binding (the envelope's
// header); the recipient installs it with KEMKey.OpenSession and the same
// sl and binding. The key's bytes never leave the keystore otherwise.
func (k *SessionKey) SealTo(sl Sealing, recipient, binding []byte) ([]byte, error) {
	if !sl.sessionKey() {
		return nil, fmt.Errorf("%w: %v does not carry a session key", ErrPurpose, sl)
	}
	lk := k.lk
	if err := lk.s.begin(lk, lifecycle.Encrypt); err != nil {
		return nil, err
	}
	defer lk.mu.RUnlock()
	return sealTo(recipient, sl, binding, lk.aes)
}

// Fingerprint returns a short non-secret fingerprint of the key bound to
// transcript (for a call: its id and parties, see envelope.Fingerprint),
// that both ends of a call can compare: 20 hex digits of
// HKDF-SHA256(key, info "enigm/v1/call-fingerprint" 0x00 ||
// SHA-256(transcript)). The same key under another transcript gives an
// unrelated fingerprint.
func (k *SessionKey) Fingerprint(transcript []byte) (string, error) {
	if len(transcript) == 0 {
		return "", fmt.Errorf("%w: a fingerprint needs the call's transcript", ErrPurpose)
	}
	lk := k.lk
	if err := lk.s.begin(lk, lifecycle.Verify); err != nil {
		return "", err
	}
	defer lk.mu.RUnlock()
	th := sha256.Sum256(transcript)
	fp, err := hkdf.Key(sha256.New, lk.aes, nil, "enigm/v1/call-fingerprint\x00"+string(th[:]), 10)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(fp), nil
}

// Destroy retires the key now (the call ended): its material is destroyed.
func (k *SessionKey) Destroy() error { return k.lk.s.RetireKey(k.lk.id, lifecycle.Retirement) }

// BindingKey is a handle to the hardware binding key (ECDSA P-256 inside the
// backend's hardware).
type BindingKey struct{ lk *liveKey }

// Binding returns the active hardware binding key, or ErrNotFound on
// software-only stores.
func (s *Store) Binding() (*BindingKey, error) {
	keys, err := s.List()
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if k.Class == ClassBinding && k.State == lifecycle.Active && k.Problem == "" {
			lk, err := s.lookup(k.ID, ClassBinding)
			if err != nil {
				return nil, err
			}
			return &BindingKey{lk}, nil
		}
	}
	return nil, fmt.Errorf("%w: no active hardware binding key (backend %s)", ErrNotFound, s.hdr.Backend)
}

// ID returns the key id.
func (k *BindingKey) ID() KeyID { return k.lk.id }

// Public returns the P-256 public key.
func (k *BindingKey) Public() (*ecdsa.PublicKey, error) {
	k.lk.mu.RLock()
	enc := k.lk.pub
	k.lk.mu.RUnlock()
	return ecdsa.ParseUncompressedPublicKey(elliptic.P256(), enc)
}

// Sign signs msg for purpose p inside the hardware (ASN.1 DER ECDSA) over
// chain.BindingDigest("enigm/v1/<p>", key, msg); VerifyBinding checks it.
// No Purpose reaches a link context: the binding signature on a link is
// made through ChainSigner.
func (k *BindingKey) Sign(p Purpose, msg []byte) ([]byte, error) {
	ctx, err := p.context()
	if err != nil {
		return nil, err
	}
	pub, err := k.Public()
	if err != nil {
		return nil, err
	}
	d, err := chain.BindingDigest(ctx, pub, msg)
	if err != nil {
		return nil, err
	}
	return k.signDigest(d[:])
}

// VerifyBinding checks a signature made by BindingKey.Sign for purpose p.
func VerifyBinding(pub *ecdsa.PublicKey, p Purpose, msg, sig []byte) error {
	ctx, err := p.context()
	if err != nil {
		return err
	}
	d, err := chain.BindingDigest(ctx, pub, msg)
	if err != nil {
		return err
	}
	if !ecdsa.VerifyASN1(pub, d[:], sig) {
		return errors.New("keystore: binding key signature does not verify")
	}
	return nil
}

func (k *BindingKey) signDigest(digest []byte) ([]byte, error) {
	if len(digest) != sha256.Size {
		return nil, errors.New("keystore: binding key signs SHA-256 digests only")
	}
	lk := k.lk
	if err := lk.s.begin(lk, lifecycle.Sign); err != nil {
		return nil, err
	}
	sig, err := lk.signer.Sign(rand.Reader, digest, crypto.SHA256)
	lk.mu.RUnlock()
	if err != nil {
		// The hardware refused (the device locked, …): the keys in memory
		// follow it.
		lk.s.lockAfterRefusal(err)
		return nil, err
	}
	return sig, nil
}

// ChainSigner returns a chain.BindingRequestSigner over k for
// chain.Draft.SignBinding: it signs the binding digests package chain
// computed for a link (chain.Request), and nothing else; its crypto.Signer
// Sign method, which would sign any digest, refuses.
func (k *BindingKey) ChainSigner() (chain.BindingRequestSigner, error) {
	pub, err := k.Public()
	if err != nil {
		return nil, err
	}
	return &bindingChainSigner{k: k, pub: pub}, nil
}

type bindingChainSigner struct {
	k   *BindingKey
	pub *ecdsa.PublicKey
}

func (b *bindingChainSigner) Public() crypto.PublicKey { return b.pub }

// Sign refuses: the binding key signs link digests only through chain.Request.
func (b *bindingChainSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, fmt.Errorf("%w: the binding key signs link digests only through a chain.Request (chain.Draft.SignBinding)", ErrPurpose)
}

// SignBindingRequest signs a binding digest package chain made.
func (b *bindingChainSigner) SignBindingRequest(r *chain.Request) ([]byte, error) {
	if r == nil || !strings.HasPrefix(r.Context(), "enigm/v1/link/") || !strings.HasSuffix(r.Context(), "/binding") {
		return nil, fmt.Errorf("%w: not a chain binding request", ErrPurpose)
	}
	return b.k.signDigest(r.Message())
}

// Format prints only a handle's class and id, whatever the verb, so that no
// fmt verb can reach key material. Handles use value receivers so that a
// copied handle is covered too (fmt cannot call methods of unexported
// fields, and would otherwise print them raw).
func (k IdentityKey) Format(f fmt.State, _ rune) { fmt.Fprintf(f, "identity key %s", k.lk.id) }

// Format prints only the class and id.
func (k KEMKey) Format(f fmt.State, _ rune) { fmt.Fprintf(f, "kem key %s", k.lk.id) }

// Format prints only the class and id.
func (k SessionKey) Format(f fmt.State, _ rune) { fmt.Fprintf(f, "session key %s", k.lk.id) }

// Format prints only the class and id.
func (k BindingKey) Format(f fmt.State, _ rune) { fmt.Fprintf(f, "binding key %s", k.lk.id) }

// Format prints only the class and id.
func (lk *liveKey) Format(f fmt.State, _ rune) { fmt.Fprintf(f, "%v key %s", lk.class, lk.id) }

// Format prints only the home directory.
func (s *Store) Format(f fmt.State, _ rune) { fmt.Fprintf(f, "keystore at %s", s.home) }

// Format prints nothing secret: the wrapping keys are elided.
func (k keks) Format(f fmt.State, _ rune) { fmt.Fprint(f, "wrapping keys (elided)") }

// Format prints nothing secret: the wrapping key is elided.
func (k kek[T]) Format(f fmt.State, _ rune) { fmt.Fprint(f, "wrapping key (elided)") }

// Attest asks the backend's hardware for evidence that the binding key is
// hardware-resident, over nonce (for example attestation.Nonce of the link
// that will carry it). It is a use of the binding key (decided like a proof
// of possession) and fails with ErrUnsupported when the backend cannot
// attest.
func (k *BindingKey) Attest(ctx context.Context, nonce []byte) (backend.Evidence, error) {
	lk := k.lk
	s := lk.s
	if err := s.begin(lk, lifecycle.ProvePossession); err != nil {
		return backend.Evidence{}, err
	}
	lk.mu.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.sess.(backend.Attester)
	if !ok || s.sess == nil {
		return backend.Evidence{}, fmt.Errorf("%w: the %s backend gives no attestation", ErrUnsupported, s.hdr.Backend)
	}
	ev, err := at.Attest(ctx, lk.resident, nonce)
	if err != nil {
		return backend.Evidence{}, fmt.Errorf("keystore: attesting binding key %s: %w", lk.id.Short(), err)
	}
	return ev, nil
}
