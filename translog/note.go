package translog

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"filippo.io/mldsa"
	"golang.org/x/mod/sumdb/note"
)

// Signature type identifier bytes of c2sp.org/signed-note.
const (
	// sigEd25519 is a plain Ed25519 note signature over the note text.
	sigEd25519 = 0x01
	// sigMLDSA44 is a timestamped ML-DSA-44 (sub)tree cosignature of
	// c2sp.org/tlog-cosignature, over a cosigned_message.
	sigMLDSA44 = 0x06
)

// mldsaLabel is the label that starts a tlog-cosignature cosigned_message.
const mldsaLabel = "subtree/v1\n\x00"

// Errors of checkpoint verification. Callers compare with errors.Is.
var (
	// ErrBadKey: a verifier key or a signing key is malformed or of the
	// wrong algorithm.
	ErrBadKey = errors.New("translog: bad log key")
	// ErrBadCheckpoint: the checkpoint is malformed, is for another log,
	// or lacks a valid signature from one of the log's keys.
	ErrBadCheckpoint = errors.New("translog: bad checkpoint")
)

// Signer signs the log's checkpoints with an Ed25519 key and an ML-DSA-44
// key under one key name, the log's origin. The keys are crypto.Signers,
// so they can be handles of a keystore that never hands out the private
// key.
type Signer struct {
	origin  string
	ed      edSigner
	pq      pqSigner
	session func(sign func() error) error
}

// NewSigner returns a Signer for the log origin. ed must be an Ed25519
// signer (its Public() an ed25519.PublicKey) and pq an ML-DSA-44 signer
// (its Public() a *mldsa.PublicKey of ML-DSA-44).
func NewSigner(origin string, ed, pq crypto.Signer) (*Signer, error) {
	if err := checkOrigin(origin); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	edPub, ok := ed.Public().(ed25519.PublicKey)
	if !ok || len(edPub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: the first key is not an Ed25519 key", ErrBadKey)
	}
	pqPub, ok := pq.Public().(*mldsa.PublicKey)
	if !ok || pqPub.Parameters() != mldsa.MLDSA44() {
		return nil, fmt.Errorf("%w: the second key is not an ML-DSA-44 key", ErrBadKey)
	}
	pqRaw := pqPub.Bytes()
	return &Signer{
		origin: origin,
		ed:     edSigner{noteID: noteID{origin, keyID(origin, sigEd25519, edPub)}, key: ed},
		pq:     pqSigner{noteID: noteID{origin, keyID(origin, sigMLDSA44, pqRaw)}, key: pq},
	}, nil
}

// WithSession returns a copy of s whose Sign makes both signatures inside
// one call of session, which must call sign once and return its error
// (for keys in a keystore that is opened and unlocked once per
// checkpoint rather than once per signature).
func (s *Signer) WithSession(session func(sign func() error) error) *Signer {
	c := *s
	c.session = session
	return &c
}

// Origin returns the log's origin, which is also the key name.
func (s *Signer) Origin() string { return s.origin }

// VerifierKeys returns the log's note verifier keys
// (name+hex(key id)+base64(type || public key)): the Ed25519 key first,
// then the ML-DSA-44 key.
func (s *Signer) VerifierKeys() []string {
	edPub := s.ed.key.Public().(ed25519.PublicKey)
	pqPub := s.pq.key.Public().(*mldsa.PublicKey).Bytes()
	return []string{
		vkey(s.origin, s.ed.id, sigEd25519, edPub),
		vkey(s.origin, s.pq.id, sigMLDSA44, pqPub),
	}
}

// Sign returns the checkpoint c as a signed note with both signatures.
func (s *Signer) Sign(c Checkpoint) ([]byte, error) {
	if c.Origin != s.origin {
		return nil, fmt.Errorf("%w: checkpoint of %q signed by the key of %q", ErrBadCheckpoint, c.Origin, s.origin)
	}
	if s.session == nil {
		return note.Sign(&note.Note{Text: string(c.Text())}, &s.ed, &s.pq)
	}
	var out []byte
	err := s.session(func() (err error) {
		out, err = note.Sign(&note.Note{Text: string(c.Text())}, &s.ed, &s.pq)
		return err
	})
	if err == nil && out == nil {
		err = errors.New("translog: the signing session did not sign")
	}
	return out, err
}

// keyID is c2sp.org/signed-note's recommended key ID:
// SHA-256(name || 0x0A || type || public key)[:4], big-endian.
func keyID(name string, typ byte, pub []byte) uint32 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{'\n', typ})
	h.Write(pub)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

func vkey(name string, id uint32, typ byte, pub []byte) string {
	return fmt.Sprintf("%s+%08x+%s", name, id, base64.StdEncoding.EncodeToString(append([]byte{typ}, pub...)))
}

// noteID is the key name and key id that every note signer and verifier
// here has.
type noteID struct {
	name string
	id   uint32
}

func (k *noteID) Name() string    { return k.name }
func (k *noteID) KeyHash() uint32 { return k.id }

// edSigner is a note.Signer of Ed25519 signatures over the note text.
type edSigner struct {
	noteID
	key crypto.Signer
}

func (s *edSigner) Sign(msg []byte) ([]byte, error) {
	return s.key.Sign(rand.Reader, msg, crypto.Hash(0))
}

// pqSigner is a note.Signer of ML-DSA-44 tlog-cosignatures. The note text
// it is given must be a checkpoint of its own log: the signature covers
// the cosigned_message built from it (origin, size, root hash), not the
// text, and carries the timestamp 0 (the log makes no statement about
// time; witnesses do).
type pqSigner struct {
	noteID
	key crypto.Signer
}

func (s *pqSigner) Sign(msg []byte) ([]byte, error) {
	c, err := ParseCheckpoint(msg)
	if err != nil {
		return nil, err
	}
	m, err := cosignedMessage(s.name, 0, c)
	if err != nil {
		return nil, err
	}
	sig, err := s.key.Sign(rand.Reader, m, crypto.Hash(0))
	if err != nil {
		return nil, err
	}
	return append(binary.BigEndian.AppendUint64(nil, 0), sig...), nil
}

// cosignedMessage is the tlog-cosignature ML-DSA-44 signed message for a
// checkpoint (start 0, end its size).
func cosignedMessage(name string, timestamp uint64, c Checkpoint) ([]byte, error) {
	if len(name) == 0 || len(name) > 255 || len(c.Origin) == 0 || len(c.Origin) > 255 {
		return nil, fmt.Errorf("%w: key name and origin must be 1 to 255 bytes", ErrBadCheckpoint)
	}
	m := make([]byte, 0, len(mldsaLabel)+2+len(name)+len(c.Origin)+8*3+32)
	m = append(m, mldsaLabel...)
	m = append(m, byte(len(name)))
	m = append(m, name...)
	m = binary.BigEndian.AppendUint64(m, timestamp)
	m = append(m, byte(len(c.Origin)))
	m = append(m, c.Origin...)
	m = binary.BigEndian.AppendUint64(m, 0)
	m = binary.BigEndian.AppendUint64(m, c.Size)
	m = append(m, c.Hash[:]...)
	return m, nil
}

// pqVerifier is a note.Verifier of ML-DSA-44 tlog-cosignatures.
type pqVerifier struct {
	noteID
	pub *mldsa.PublicKey
}

func (v *pqVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != 8+mldsa.MLDSA44SignatureSize {
		return false
	}
	c, err := ParseCheckpoint(msg)
	if err != nil {
		return false
	}
	m, err := cosignedMessage(v.name, binary.BigEndian.Uint64(sig[:8]), c)
	if err != nil {
		return false
	}
	return mldsa.Verify(v.pub, m, sig[8:], nil) == nil
}

// newVerifier parses a verifier key of type Ed25519 (through
// golang.org/x/mod/sumdb/note) or ML-DSA-44.
func newVerifier(k string) (note.Verifier, byte, error) {
	parts := strings.SplitN(k, "+", 3)
	if len(parts) != 3 {
		return nil, 0, fmt.Errorf("%w: verifier key %q is not name+hash+key", ErrBadKey, k)
	}
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) < 2 {
		return nil, 0, fmt.Errorf("%w: verifier key of %q: bad base64 key", ErrBadKey, parts[0])
	}
	switch raw[0] {
	case sigEd25519:
		v, err := note.NewVerifier(k)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: %v", ErrBadKey, err)
		}
		return v, sigEd25519, nil
	case sigEd25519Cosig:
		id, err := strconv.ParseUint(parts[1], 16, 32)
		if err != nil || len(parts[1]) != 8 || len(raw) != 1+ed25519.PublicKeySize || checkOrigin(parts[0]) != nil ||
			uint32(id) != keyID(parts[0], sigEd25519Cosig, raw[1:]) {
			return nil, 0, fmt.Errorf("%w: cosignature key of %q: want name+id+base64(0x04 || 32-byte key) with the id of the name and key", ErrBadKey, parts[0])
		}
		return &edCosigVerifier{noteID: noteID{parts[0], uint32(id)}, pub: ed25519.PublicKey(raw[1:])}, sigEd25519Cosig, nil
	case sigMLDSA44:
		id, err := strconv.ParseUint(parts[1], 16, 32)
		if err != nil || len(parts[1]) != 8 {
			return nil, 0, fmt.Errorf("%w: verifier key of %q: bad key id", ErrBadKey, parts[0])
		}
		pub, err := mldsa.NewPublicKey(mldsa.MLDSA44(), raw[1:])
		if err != nil {
			return nil, 0, fmt.Errorf("%w: verifier key of %q: %v", ErrBadKey, parts[0], err)
		}
		if checkOrigin(parts[0]) != nil || uint32(id) != keyID(parts[0], sigMLDSA44, raw[1:]) {
			return nil, 0, fmt.Errorf("%w: verifier key of %q: the key id does not match the name and key", ErrBadKey, parts[0])
		}
		return &pqVerifier{noteID: noteID{parts[0], uint32(id)}, pub: pub}, sigMLDSA44, nil
	default:
		return nil, 0, fmt.Errorf("%w: verifier key of %q has signature type 0x%02x; known are 0x01 (Ed25519), 0x04 (Ed25519 cosignature) and 0x06 (ML-DSA-44)", ErrBadKey, parts[0], raw[0])
	}
}

// VerifyCheckpoint opens the signed checkpoint msg of the log origin with
// the log's verifier keys and returns it. Every key given must have
// signed it (give both of the log's keys: a checkpoint without its
// post-quantum signature is refused, like a chain link without its
// post-quantum half). Signatures from other keys (witnesses) are ignored.
func VerifyCheckpoint(msg []byte, origin string, vkeys []string) (Checkpoint, error) {
	if len(msg) > MaxCheckpointSize {
		return Checkpoint{}, fmt.Errorf("%w: %d bytes, more than %d", ErrBadCheckpoint, len(msg), MaxCheckpointSize)
	}
	if len(vkeys) == 0 {
		return Checkpoint{}, fmt.Errorf("%w: no verifier keys", ErrBadKey)
	}
	var vs []note.Verifier
	for _, k := range vkeys {
		v, typ, err := newVerifier(k)
		if err != nil {
			return Checkpoint{}, err
		}
		if typ != sigEd25519 && typ != sigMLDSA44 {
			return Checkpoint{}, fmt.Errorf("%w: %q is a witness cosignature key, not a log key", ErrBadKey, v.Name())
		}
		if v.Name() != origin {
			return Checkpoint{}, fmt.Errorf("%w: verifier key named %q for the log %q", ErrBadKey, v.Name(), origin)
		}
		vs = append(vs, v)
	}
	n, err := note.Open(msg, note.VerifierList(vs...))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %v", ErrBadCheckpoint, err)
	}
	for _, v := range vs {
		found := false
		for _, s := range n.Sigs {
			if s.Name == v.Name() && s.Hash == v.KeyHash() {
				found = true
			}
		}
		if !found {
			return Checkpoint{}, fmt.Errorf("%w: no signature of the log key %s+%08x", ErrBadCheckpoint, v.Name(), v.KeyHash())
		}
	}
	c, err := ParseCheckpoint([]byte(n.Text))
	if err != nil {
		return Checkpoint{}, err
	}
	if c.Origin != origin {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint of the log %q, want %q", ErrBadCheckpoint, c.Origin, origin)
	}
	return c, nil
}
