package translog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// c2sp.org/tlog-proof@v1: an offline-verifiable proof that a leaf is in
// the log, as a text file (extension .tlog-proof):
//
//	c2sp.org/tlog-proof@v1
//	extra <base64>           (optional)
//	index <decimal>
//	<base64 hash>            (zero or more: the RFC 6962 inclusion proof)
//
//	<the signed checkpoint, verbatim, with any witness cosignatures>

// ProofHeader is the first line of a c2sp.org/tlog-proof@v1.
const ProofHeader = "c2sp.org/tlog-proof@v1"

// Limits of a tlog-proof.
const (
	// MaxProofExtra bounds the extra data: one leaf (Enigm writes the
	// link there, see Proof.Extra).
	MaxProofExtra = MaxLeafSize
	// MaxProofHashes bounds the inclusion proof: a tree of at most 2^64
	// leaves needs at most 64 hashes.
	MaxProofHashes = 64
	// maxNoteSigs is the most signature lines a checkpoint may carry
	// (golang.org/x/mod/sumdb/note's limit; signed-note requires at
	// least 16 to be accepted).
	maxNoteSigs = 100
	// MaxProofSize bounds a whole tlog-proof: header, extra line, index,
	// hashes and checkpoint, each at its own limit.
	MaxProofSize = len(ProofHeader) + 1 + len("extra ") + (MaxProofExtra+2)/3*4 + 1 +
		len("index 18446744073709551615\n") + MaxProofHashes*45 + 1 + MaxCheckpointSize
)

// Errors of tlog-proofs, besides ErrBadKey and ErrBadCheckpoint (the
// checkpoint is not signed by every log key, or a known witness's
// cosignature does not verify). Callers compare with errors.Is.
var (
	// ErrBadProof: the bytes are not a c2sp.org/tlog-proof@v1 in its one
	// spelling, or exceed a limit.
	ErrBadProof = errors.New("translog: malformed tlog-proof")
	// ErrNotIncluded: the proof's inclusion path does not lead from the
	// leaf at its index to the checkpoint's root (another leaf, another
	// index, a wrong or truncated path).
	ErrNotIncluded = errors.New("translog: the leaf is not at that index of the checkpoint's tree")
	// ErrQuorum: fewer witnesses of the required quorum cosigned the
	// checkpoint than the quorum asks for.
	ErrQuorum = errors.New("translog: the checkpoint lacks the required witness cosignatures")
)

// Proof is a c2sp.org/tlog-proof@v1: a leaf's index, its RFC 6962
// inclusion proof and the signed checkpoint of the tree it is in.
// Nothing in it is trusted before Verify.
type Proof struct {
	// Extra is the optional extra data, nil when the proof has none
	// (never empty otherwise). It is not authenticated by the log. Enigm
	// writes there the leaf itself, the link's canonical bytes, so a
	// proof can be checked with nothing else; Verify authenticates it
	// only when it is also given as the leaf.
	Extra []byte
	// Index is the leaf's zero-based index in the log.
	Index uint64
	// Hashes is the inclusion proof, from the leaf's sibling up to the
	// root's child, 32 bytes each.
	Hashes [][]byte
	// Checkpoint is the signed checkpoint (c2sp.org/tlog-checkpoint, a
	// signed note with the log's signatures and any witness
	// cosignatures), verbatim.
	Checkpoint []byte
}

// Proof returns the tlog-proof of leaf index in the log's newest
// checkpoint (with the cosignatures stored with it), carrying extra (nil
// for none).
func (l *Log) Proof(ctx context.Context, index uint64, extra []byte) (*Proof, error) {
	signed, c, err := l.Checkpoint(ctx)
	if err != nil {
		return nil, err
	}
	if index >= c.Size {
		return nil, fmt.Errorf("%w: leaf %d is not in the newest checkpoint (%d leaves)", ErrNotFound, index, c.Size)
	}
	hs, err := l.InclusionProof(ctx, index, c.Size)
	if err != nil {
		return nil, err
	}
	p := &Proof{Extra: extra, Index: index, Hashes: hs, Checkpoint: signed}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}

// Validate checks a proof's shape against the format and the limits
// (what Bytes writes ParseProof reads back); it verifies nothing.
func (p *Proof) Validate() error {
	if p.Extra != nil && (len(p.Extra) == 0 || len(p.Extra) > MaxProofExtra) {
		return fmt.Errorf("%w: extra data must be 1 to %d bytes (nil for none)", ErrBadProof, MaxProofExtra)
	}
	if len(p.Hashes) > MaxProofHashes {
		return fmt.Errorf("%w: %d inclusion proof hashes, at most %d", ErrBadProof, len(p.Hashes), MaxProofHashes)
	}
	for i, h := range p.Hashes {
		if len(h) != sha256.Size {
			return fmt.Errorf("%w: inclusion proof hash %d is %d bytes, want %d", ErrBadProof, i, len(h), sha256.Size)
		}
	}
	return checkSignedNote(p.Checkpoint)
}

// Bytes returns the proof in its one spelling.
func (p *Proof) Bytes() ([]byte, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, 64+len(p.Extra)*4/3+len(p.Hashes)*45+len(p.Checkpoint))
	b = append(b, ProofHeader+"\n"...)
	if p.Extra != nil {
		b = append(b, "extra "...)
		b = base64.StdEncoding.AppendEncode(b, p.Extra)
		b = append(b, '\n')
	}
	b = append(b, "index "...)
	b = strconv.AppendUint(b, p.Index, 10)
	b = append(b, '\n')
	for _, h := range p.Hashes {
		b = base64.StdEncoding.AppendEncode(b, h)
		b = append(b, '\n')
	}
	b = append(b, '\n')
	return append(b, p.Checkpoint...), nil
}

// ParseProof parses a c2sp.org/tlog-proof@v1. It accepts exactly the
// spelling Bytes writes: the header line; at most one extra line of
// canonical base64 (padded, no line breaks or carriage returns); the
// index in decimal without leading zeros; one canonical base64 SHA-256
// hash per line; an empty line; and a syntactically valid signed note
// (c2sp.org/signed-note) up to the end. Anything else is ErrBadProof.
// It verifies nothing: see Verify.
func ParseProof(b []byte) (*Proof, error) {
	if len(b) > MaxProofSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrBadProof, len(b), MaxProofSize)
	}
	rest := b
	line := func() (string, bool) {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return "", false
		}
		l := string(rest[:i])
		rest = rest[i+1:]
		return l, true
	}
	if l, ok := line(); !ok || l != ProofHeader {
		return nil, fmt.Errorf("%w: the first line must be %q", ErrBadProof, ProofHeader)
	}
	p := &Proof{}
	l, ok := line()
	if s, isExtra := strings.CutPrefix(l, "extra "); ok && isExtra {
		e, err := canonicalBase64(s)
		if err != nil || len(e) == 0 || len(e) > MaxProofExtra {
			return nil, fmt.Errorf("%w: the extra line must hold 1 to %d bytes of padded standard base64", ErrBadProof, MaxProofExtra)
		}
		p.Extra = e
		l, ok = line()
	}
	s, isIndex := strings.CutPrefix(l, "index ")
	if !ok || !isIndex {
		return nil, fmt.Errorf("%w: want an index line (\"index N\") after the header and the optional extra line", ErrBadProof)
	}
	idx, err := decimal(s, 1<<64-1)
	if err != nil {
		return nil, fmt.Errorf("%w: index %q: %v", ErrBadProof, s, err)
	}
	p.Index = idx
	for {
		l, ok := line()
		if !ok {
			return nil, fmt.Errorf("%w: no empty line before the checkpoint", ErrBadProof)
		}
		if l == "" {
			break
		}
		if len(p.Hashes) == MaxProofHashes {
			return nil, fmt.Errorf("%w: more than %d inclusion proof hashes", ErrBadProof, MaxProofHashes)
		}
		h, err := canonicalBase64(l)
		if err != nil || len(h) != sha256.Size {
			return nil, fmt.Errorf("%w: inclusion proof line %d (%.60q) is not a 32-byte hash in padded standard base64", ErrBadProof, len(p.Hashes)+1, l)
		}
		p.Hashes = append(p.Hashes, h)
	}
	if err := checkSignedNote(rest); err != nil {
		return nil, err
	}
	p.Checkpoint = bytes.Clone(rest)
	return p, nil
}

// canonicalBase64 decodes s only if it is the padded standard base64 of
// its bytes (the decoder alone would skip carriage returns and accept
// non-zero padding bits).
func canonicalBase64(s string) ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, err
	}
	if base64.StdEncoding.EncodeToString(b) != s {
		return nil, errors.New("not canonical base64")
	}
	return b, nil
}

// checkSignedNote checks the syntax of a signed note (c2sp.org/signed-note)
// without verifying it: valid UTF-8 without control characters other
// than newline; a text ending in a newline, a blank line, then 1 to
// maxNoteSigs lines "— <name> <base64>", each name non-empty without
// spaces or plus signs and each signature canonical base64 of a key ID
// and at least one byte.
func checkSignedNote(n []byte) error {
	if len(n) == 0 || len(n) > MaxCheckpointSize {
		return fmt.Errorf("%w: the checkpoint must be 1 to %d bytes", ErrBadProof, MaxCheckpointSize)
	}
	if !utf8.Valid(n) {
		return fmt.Errorf("%w: the checkpoint is not UTF-8", ErrBadProof)
	}
	for _, c := range n {
		if c < 0x20 && c != '\n' {
			return fmt.Errorf("%w: the checkpoint holds the control character 0x%02x", ErrBadProof, c)
		}
	}
	split := bytes.LastIndex(n, []byte("\n\n"))
	if split < 0 || n[len(n)-1] != '\n' {
		return fmt.Errorf("%w: the checkpoint is not a signed note (text, a blank line, signature lines, each ending in a newline)", ErrBadProof)
	}
	if split == 0 {
		return fmt.Errorf("%w: the checkpoint has no text", ErrBadProof)
	}
	sigs := strings.Split(string(n[split+2:len(n)-1]), "\n")
	if len(sigs) > maxNoteSigs {
		return fmt.Errorf("%w: the checkpoint has %d signature lines, at most %d", ErrBadProof, len(sigs), maxNoteSigs)
	}
	for i, s := range sigs {
		rest, ok := strings.CutPrefix(s, "— ")
		name, sig, ok2 := strings.Cut(rest, " ")
		if !ok || !ok2 || !validKeyName(name) {
			return fmt.Errorf("%w: checkpoint signature line %d is not \"— <key name> <base64 signature>\"", ErrBadProof, i+1)
		}
		if b, err := canonicalBase64(sig); err != nil || len(b) < 5 {
			return fmt.Errorf("%w: checkpoint signature line %d of %q: not a key ID and signature in padded standard base64", ErrBadProof, i+1, name)
		}
	}
	return nil
}

// validKeyName: a signed-note key name is non-empty and holds no Unicode
// spaces or plus signs.
func validKeyName(name string) bool {
	return name != "" && !strings.ContainsFunc(name, func(r rune) bool { return r == '+' || unicode.IsSpace(r) })
}

// WitnessQuorum is a witness policy for Verify: at least K of the
// witnesses given by their cosignature verifier keys (Ed25519
// cosignature/v1, type 0x04, or ML-DSA-44, type 0x06) must have cosigned
// the checkpoint. A witness is its key name: give one key per witness
// (two keys of one name count once).
type WitnessQuorum struct {
	Keys []string
	K    int
}

// Cosigner is a witness of the quorum that cosigned a verified proof's
// checkpoint.
type Cosigner struct {
	Name string
	// Time is the cosignature's timestamp (POSIX seconds), as the witness
	// signed it; Verify does not judge it.
	Time uint64
}

// VerifiedProof is what Verify established.
type VerifiedProof struct {
	Checkpoint Checkpoint
	Index      uint64
	// Cosigners are the quorum's witnesses whose cosignature verified,
	// in the order of the checkpoint's signature lines.
	Cosigners []Cosigner
}

// Verify checks the proof offline, as c2sp.org/tlog-proof says: the
// checkpoint is of the log origin and signed by every one of the log's
// verifier keys logKeys (give both, Ed25519 and ML-DSA-44: a proof
// stripped of the post-quantum signature is refused); when q is not nil,
// every cosignature from one of its keys verifies (a bad one refuses the
// proof) and at least q.K of its witnesses cosigned; and the inclusion
// proof leads from the leaf (its exact bytes; for Enigm, the link's
// canonical encoding) at Index to the checkpoint's root, checked with
// transparency-dev/merkle. The extra data plays no part: compare it with
// the leaf yourself if you use it.
func (p *Proof) Verify(leaf []byte, origin string, logKeys []string, q *WitnessQuorum) (*VerifiedProof, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if len(leaf) > MaxLeafSize {
		return nil, fmt.Errorf("%w: the leaf is %d bytes, a log leaf is at most %d", ErrNotIncluded, len(leaf), MaxLeafSize)
	}
	c, err := VerifyCheckpoint(p.Checkpoint, origin, logKeys)
	if err != nil {
		return nil, err
	}
	v := &VerifiedProof{Checkpoint: c, Index: p.Index}
	if q != nil {
		if v.Cosigners, err = checkQuorum(p.Checkpoint, origin, q); err != nil {
			return nil, err
		}
	}
	if p.Index >= c.Size {
		return nil, fmt.Errorf("%w: index %d is outside the checkpoint's tree of %d leaves", ErrNotIncluded, p.Index, c.Size)
	}
	h := rfc6962.DefaultHasher
	if err := proof.VerifyInclusion(h, p.Index, c.Size, h.HashLeaf(leaf), p.Hashes, c.Hash[:]); err != nil {
		why := err.Error()
		if _, ok := errors.AsType[proof.RootMismatchError](err); ok {
			why = "the path leads to another root"
		}
		return nil, fmt.Errorf("%w: leaf %d of the checkpoint of %d leaves (root %s): %s",
			ErrNotIncluded, p.Index, c.Size, base64.StdEncoding.EncodeToString(c.Hash[:]), why)
	}
	return v, nil
}

// checkQuorum opens the checkpoint with the quorum's witness keys and
// counts the witnesses whose cosignature verified.
func checkQuorum(msg []byte, origin string, q *WitnessQuorum) ([]Cosigner, error) {
	var vs []note.Verifier
	names := map[string]bool{}
	type id struct {
		name string
		hash uint32
	}
	seen := map[id]bool{}
	for _, k := range q.Keys {
		v, typ, err := newVerifier(k)
		if err != nil {
			return nil, err
		}
		if typ != sigEd25519Cosig && typ != sigMLDSA44 {
			return nil, fmt.Errorf("%w: witness key %q is not a cosignature key (type 0x04 or 0x06)", ErrBadKey, v.Name())
		}
		if v.Name() == origin {
			return nil, fmt.Errorf("%w: witness key named %q, the log's own name: a log does not witness itself", ErrBadKey, origin)
		}
		if seen[id{v.Name(), v.KeyHash()}] {
			return nil, fmt.Errorf("%w: witness key %s+%08x given twice", ErrBadKey, v.Name(), v.KeyHash())
		}
		seen[id{v.Name(), v.KeyHash()}] = true
		names[v.Name()] = true
		vs = append(vs, v)
	}
	if q.K < 1 || q.K > len(names) {
		return nil, fmt.Errorf("%w: a quorum of %d out of %d witnesses: want 1 to %d", ErrBadKey, q.K, len(names), len(names))
	}
	n, err := note.Open(msg, note.VerifierList(vs...))
	var unverified *note.UnverifiedNoteError
	var invalid *note.InvalidSignatureError
	switch {
	case errors.As(err, &unverified):
		return nil, fmt.Errorf("%w: none of the %d witnesses cosigned it; a quorum of %d is required", ErrQuorum, len(names), q.K)
	case errors.As(err, &invalid):
		return nil, fmt.Errorf("%w: the cosignature of witness %s+%08x does not verify", ErrBadCheckpoint, invalid.Name, invalid.Hash)
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrBadCheckpoint, err)
	}
	var cs []Cosigner
	got := map[string]bool{}
	for _, s := range n.Sigs {
		if got[s.Name] {
			continue
		}
		got[s.Name] = true
		raw, _ := base64.StdEncoding.DecodeString(s.Base64) // note.Open decoded it
		var t uint64
		if len(raw) >= 12 {
			t = binary.BigEndian.Uint64(raw[4:12])
		}
		cs = append(cs, Cosigner{Name: s.Name, Time: t})
	}
	if len(cs) < q.K {
		have := make([]string, len(cs))
		for i, c := range cs {
			have[i] = c.Name
		}
		return nil, fmt.Errorf("%w: %d of the %d witnesses cosigned it (%s), a quorum of %d is required", ErrQuorum, len(cs), len(names), strings.Join(have, ", "), q.K)
	}
	return cs, nil
}
