package translog_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"filippo.io/mldsa"
	"golang.org/x/mod/sumdb/note"

	"github.com/enigm/enigm/translog"
)

// TestCheckpointOpensWithXModNote: the signed checkpoint opens with
// golang.org/x/mod/sumdb/note, the checksum database's verifier, given
// only our Ed25519 verifier key; the ML-DSA-44 line is an unknown
// signature to it, as the spec says verifiers must treat it.
func TestCheckpointOpensWithXModNote(t *testing.T) {
	ctx := context.Background()
	l, _, s := newLog(t, 7)
	msg, c, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keys := s.VerifierKeys()
	v, err := note.NewVerifier(keys[0])
	if err != nil {
		t.Fatalf("x/mod refuses our Ed25519 verifier key %q: %v", keys[0], err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		t.Fatalf("x/mod cannot open our checkpoint: %v\n%s", err, msg)
	}
	if len(n.Sigs) != 1 || len(n.UnverifiedSigs) != 1 || n.UnverifiedSigs[0].Name != testOrigin {
		t.Fatalf("x/mod: %d verified, %d unverified signatures; want the Ed25519 one verified and the ML-DSA-44 one unknown", len(n.Sigs), len(n.UnverifiedSigs))
	}
	want := fmt.Sprintf("%s\n7\n%s\n", testOrigin, base64.StdEncoding.EncodeToString(c.Hash[:]))
	if n.Text != want {
		t.Fatalf("note text %q, want %q", n.Text, want)
	}
	// The same checkpoint with its text changed is refused by x/mod.
	bad := bytes.Replace(msg, []byte("\n7\n"), []byte("\n8\n"), 1)
	if _, err := note.Open(bad, note.VerifierList(v)); err == nil {
		t.Fatal("x/mod opened a checkpoint whose size was changed")
	}
}

// TestVerifierKeys: both keys carry the key name (the origin) and the
// key id of c2sp.org/signed-note, SHA-256(name || 0x0A || type || key)[:4],
// with type 0x01 for Ed25519 and 0x06 for ML-DSA-44 (tlog-cosignature).
func TestVerifierKeys(t *testing.T) {
	s := newSigner(t)
	keys := s.VerifierKeys()
	if len(keys) != 2 {
		t.Fatalf("%d verifier keys, want 2", len(keys))
	}
	for i, want := range []struct {
		typ byte
		n   int
	}{{0x01, ed25519.PublicKeySize}, {0x06, mldsa.MLDSA44PublicKeySize}} {
		parts := strings.SplitN(keys[i], "+", 3)
		raw, err := base64.StdEncoding.DecodeString(parts[2])
		if err != nil || parts[0] != testOrigin || len(raw) != 1+want.n || raw[0] != want.typ {
			t.Fatalf("key %d %q: want %s+id+base64(0x%02x || %d-byte key)", i, keys[i], testOrigin, want.typ, want.n)
		}
		h := sha256.Sum256(append([]byte(testOrigin+"\n"), raw...))
		if id := fmt.Sprintf("%08x", binary.BigEndian.Uint32(h[:4])); parts[1] != id {
			t.Fatalf("key %d: id %s, want %s", i, parts[1], id)
		}
	}
}

// TestMLDSASignature checks the ML-DSA-44 line against tlog-cosignature
// directly with filippo.io/mldsa: 4-byte key id, 8-byte timestamp (0: the
// log states no time), then a signature over the cosigned_message.
func TestMLDSASignature(t *testing.T) {
	ctx := context.Background()
	l, _, s := newLog(t, 3)
	msg, c, _ := l.Checkpoint(ctx)
	raw, _ := base64.StdEncoding.DecodeString(strings.SplitN(s.VerifierKeys()[1], "+", 3)[2])
	pub, err := mldsa.NewPublicKey(mldsa.MLDSA44(), raw[1:])
	if err != nil {
		t.Fatal(err)
	}
	var line string
	for _, ln := range strings.Split(string(msg), "\n") {
		if b64, ok := strings.CutPrefix(ln, "— "+testOrigin+" "); ok {
			if sig, _ := base64.StdEncoding.DecodeString(b64); len(sig) == 4+8+mldsa.MLDSA44SignatureSize {
				line = b64
			}
		}
	}
	sig, _ := base64.StdEncoding.DecodeString(line)
	if len(sig) == 0 {
		t.Fatalf("no ML-DSA-44 signature line of %d bytes in\n%s", 4+8+mldsa.MLDSA44SignatureSize, msg)
	}
	if ts := binary.BigEndian.Uint64(sig[4:12]); ts != 0 {
		t.Fatalf("timestamp %d, want 0", ts)
	}
	m := []byte("subtree/v1\n\x00")
	m = append(m, byte(len(testOrigin)))
	m = append(m, testOrigin...)
	m = binary.BigEndian.AppendUint64(m, 0)
	m = append(m, byte(len(testOrigin)))
	m = append(m, testOrigin...)
	m = binary.BigEndian.AppendUint64(m, 0)
	m = binary.BigEndian.AppendUint64(m, c.Size)
	m = append(m, c.Hash[:]...)
	if err := mldsa.Verify(pub, m, sig[12:], nil); err != nil {
		t.Fatalf("the ML-DSA-44 signature does not verify over the cosigned_message: %v", err)
	}
}

// TestVerifyCheckpointRefuses plays the attacks on a checkpoint: each is
// refused with ErrBadCheckpoint (or ErrBadKey for bad keys).
func TestVerifyCheckpointRefuses(t *testing.T) {
	ctx := context.Background()
	l, _, s := newLog(t, 4)
	msg, _, _ := l.Checkpoint(ctx)
	keys := s.VerifierKeys()
	if _, err := translog.VerifyCheckpoint(msg, testOrigin, keys); err != nil {
		t.Fatalf("the log's own checkpoint: %v", err)
	}
	lines := strings.SplitAfter(string(msg), "\n")
	// lines: origin, size, hash, "", ed sig, pq sig, ""
	dropPQ := strings.Join(lines[:5], "")
	dropEd := strings.Join(append(append([]string{}, lines[:4]...), lines[5]), "")
	other := newSigner(t)
	otherMsg, err := other.Sign(translog.Checkpoint{Origin: testOrigin, Size: 4})
	if err != nil {
		t.Fatal(err)
	}
	_, ed2, _ := ed25519.GenerateKey(rand.Reader)
	pq2, _ := mldsa.GenerateKey(mldsa.MLDSA44())
	otherLog, _ := translog.NewSigner("enigm.test/other", ed2, pq2)
	for _, tc := range []struct {
		desc string
		msg  string
		keys []string
		want error
	}{
		{"post-quantum signature dropped", dropPQ, keys, translog.ErrBadCheckpoint},
		{"Ed25519 signature dropped", dropEd, keys, translog.ErrBadCheckpoint},
		{"size changed", strings.Replace(string(msg), "\n4\n", "\n5\n", 1), keys, translog.ErrBadCheckpoint},
		{"signed by another key of the same name", string(otherMsg), keys, translog.ErrBadCheckpoint},
		{"an extension line added", strings.Replace(string(msg), "=\n\n", "=\nextra\n\n", 1), keys, translog.ErrBadCheckpoint},
		{"keys of another log", string(msg), otherLog.VerifierKeys(), translog.ErrBadKey},
		{"no keys", string(msg), nil, translog.ErrBadKey},
		{"key of an unknown type", string(msg), []string{testOrigin + "+00000000+" + base64.StdEncoding.EncodeToString([]byte{0x04, 1, 2})}, translog.ErrBadKey},
		{"ML-DSA-44 key with a wrong id", string(msg), []string{keys[0], withID(keys[1], "00000000")}, translog.ErrBadKey},
		{"not a note", "hello\n", keys, translog.ErrBadCheckpoint},
		{"oversized", strings.Repeat("a", translog.MaxCheckpointSize+1), keys, translog.ErrBadCheckpoint},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := translog.VerifyCheckpoint([]byte(tc.msg), testOrigin, tc.keys)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// TestNewSignerRefusesWrongKeys: keys swapped, or of other parameter
// sets, or a bad origin, are refused.
func TestNewSignerRefusesWrongKeys(t *testing.T) {
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	pq44, _ := mldsa.GenerateKey(mldsa.MLDSA44())
	pq65, _ := mldsa.GenerateKey(mldsa.MLDSA65())
	for _, tc := range []struct {
		desc   string
		origin string
		ok     bool
		fn     func(string) (*translog.Signer, error)
	}{
		{"good", testOrigin, true, func(o string) (*translog.Signer, error) { return translog.NewSigner(o, ed, pq44) }},
		{"swapped", testOrigin, false, func(o string) (*translog.Signer, error) { return translog.NewSigner(o, pq44, ed) }},
		{"ML-DSA-65", testOrigin, false, func(o string) (*translog.Signer, error) { return translog.NewSigner(o, ed, pq65) }},
		{"origin with a space", "enigm.test/a b", false, func(o string) (*translog.Signer, error) { return translog.NewSigner(o, ed, pq44) }},
		{"origin with a plus", "enigm.test/a+b", false, func(o string) (*translog.Signer, error) { return translog.NewSigner(o, ed, pq44) }},
		{"empty origin", "", false, func(o string) (*translog.Signer, error) { return translog.NewSigner(o, ed, pq44) }},
	} {
		_, err := tc.fn(tc.origin)
		if tc.ok != (err == nil) || (err != nil && !errors.Is(err, translog.ErrBadKey)) {
			t.Errorf("%s: %v", tc.desc, err)
		}
	}
}

// withID returns the verifier key k with its key id replaced.
func withID(k, id string) string {
	p := strings.SplitN(k, "+", 3)
	return p[0] + "+" + id + "+" + p[2]
}
