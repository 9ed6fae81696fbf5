package keystore

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"filippo.io/mldsa"

	"github.com/enigm/enigm/lifecycle"
)

// Transparency-log checkpoint keys (AlgCheckpointEd25519,
// AlgCheckpointMLDSA44) are identity-class keys that sign one thing: a
// checkpoint of one log (c2sp.org/tlog-checkpoint). Sign, ProvePossession
// and ChainSigner refuse them, and their signer refuses every message that
// is not a checkpoint of the origin it was made for, so a stolen handle
// cannot sign a chain link, a token, an envelope or another log's
// checkpoint.

// tlogSubtreeLabel starts a c2sp.org/tlog-cosignature ML-DSA-44 message.
const tlogSubtreeLabel = "subtree/v1\n\x00"

// CheckpointSigner returns a crypto.Signer over the checkpoint key k for
// the log origin: with AlgCheckpointEd25519 it signs only the note text of
// a checkpoint of origin (Ed25519, no context, as c2sp.org/signed-note
// type 0x01 requires); with AlgCheckpointMLDSA44 only the
// c2sp.org/tlog-cosignature subtree message of such a checkpoint starting
// at 0, under the key name origin (ML-DSA-44, empty context). Every
// signature is a lifecycle Sign decided by the key's policy and audited.
func (k *IdentityKey) CheckpointSigner(origin string) (crypto.Signer, error) {
	if k.lk.alg != AlgCheckpointEd25519 && k.lk.alg != AlgCheckpointMLDSA44 {
		return nil, fmt.Errorf("%w: key %s is %v, not a checkpoint key", ErrPurpose, k.lk.id.Short(), k.lk.alg)
	}
	if origin == "" || len(origin) > 255 || !utf8.ValidString(origin) || strings.ContainsAny(origin, "\n+ ") {
		return nil, fmt.Errorf("%w: log origin %q is not 1-255 bytes of UTF-8 without newline, space or '+'", ErrPurpose, origin)
	}
	s := &checkpointSigner{k: k, origin: origin}
	pub := k.Public()
	if k.lk.alg == AlgCheckpointEd25519 {
		s.pub = ed25519.PublicKey(pub)
	} else {
		p, err := mldsa.NewPublicKey(mldsa.MLDSA44(), pub)
		if err != nil {
			return nil, corrupt("key "+k.lk.id.String(), err)
		}
		s.pub = p
	}
	return s, nil
}

type checkpointSigner struct {
	k      *IdentityKey
	origin string
	pub    crypto.PublicKey
}

func (s *checkpointSigner) Public() crypto.PublicKey { return s.pub }

// Sign signs msg if it is a checkpoint of the signer's origin in the
// form of the key's algorithm; opts must be crypto.Hash(0) (or, for
// ML-DSA-44, *mldsa.Options without context).
func (s *checkpointSigner) Sign(_ io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts == nil || opts.HashFunc() != 0 {
		return nil, fmt.Errorf("%w: a checkpoint key signs the message itself, not a digest", ErrPurpose)
	}
	if o, ok := opts.(*mldsa.Options); ok && o.Context != "" {
		return nil, fmt.Errorf("%w: a checkpoint key signs with the empty context", ErrPurpose)
	}
	lk := s.k.lk
	var ok bool
	switch lk.alg {
	case AlgCheckpointEd25519:
		ok = checkpointText(msg, s.origin)
	case AlgCheckpointMLDSA44:
		ok = checkpointSubtree(msg, s.origin)
	}
	if !ok {
		return nil, fmt.Errorf("%w: key %s signs checkpoints of %q only; this message is not one", ErrPurpose, lk.id.Short(), s.origin)
	}
	if err := lk.s.begin(lk, lifecycle.Sign); err != nil {
		return nil, err
	}
	defer lk.mu.RUnlock()
	if lk.alg == AlgCheckpointEd25519 {
		return ed25519.Sign(lk.ed, msg), nil
	}
	return lk.mldsa.Sign(nil, msg, crypto.Hash(0))
}

// checkpointText reports whether msg is exactly a c2sp.org/tlog-checkpoint
// note text of origin without extension lines: origin, decimal size
// without leading zeros, base64 of a 32-byte root hash, each ending in a
// newline.
func checkpointText(msg []byte, origin string) bool {
	rest, ok := bytes.CutPrefix(msg, []byte(origin+"\n"))
	if !ok || !bytes.HasSuffix(rest, []byte("\n")) {
		return false
	}
	lines := strings.Split(string(rest[:len(rest)-1]), "\n")
	if len(lines) != 2 || lines[0] == "" || (lines[0] != "0" && lines[0][0] == '0') {
		return false
	}
	if _, err := strconv.ParseUint(lines[0], 10, 64); err != nil {
		return false
	}
	h, err := base64.StdEncoding.Strict().DecodeString(lines[1])
	return err == nil && len(h) == 32
}

// checkpointSubtree reports whether msg is exactly a tlog-cosignature
// subtree message for a checkpoint of origin signed under key name
// origin: label, name, timestamp, origin, start 0, end, 32-byte root.
func checkpointSubtree(msg []byte, origin string) bool {
	head := append([]byte(tlogSubtreeLabel), byte(len(origin)))
	head = append(head, origin...)
	rest, ok := bytes.CutPrefix(msg, head)
	if !ok || len(rest) != 8+1+len(origin)+8+8+32 {
		return false
	}
	rest = rest[8:] // timestamp
	if rest[0] != byte(len(origin)) || string(rest[1:1+len(origin)]) != origin {
		return false
	}
	rest = rest[1+len(origin):]
	return binary.BigEndian.Uint64(rest[:8]) == 0 // start: the whole tree
}
