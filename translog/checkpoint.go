package translog

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// Limits.
const (
	// MaxOriginLen bounds the log origin (the cosigned_message of
	// tlog-cosignature holds it with a one-byte length).
	MaxOriginLen = 255
	// MaxCheckpointSize bounds a signed checkpoint that VerifyCheckpoint
	// reads: the text, the log's two signatures and room for witness
	// cosignatures.
	MaxCheckpointSize = 64 << 10
	// MaxLeafSize bounds one leaf: entry bundles prefix each entry with
	// a 16-bit length (c2sp.org/tlog-tiles).
	MaxLeafSize = 1<<16 - 1
	// TileWidth is the number of hashes of a full tile and of leaves of
	// a full entry bundle.
	TileWidth = 256
	// tileHeight is the number of tree levels one tile spans.
	tileHeight = 8
	// maxIntegrateBatch bounds the leaves one Integrate call reads and
	// hashes in one storage transaction.
	maxIntegrateBatch = 4096
)

// Checkpoint is the body of a c2sp.org/tlog-checkpoint: the log's origin,
// its size and its RFC 6962 root hash. The log writes no extension lines.
type Checkpoint struct {
	Origin string
	Size   uint64
	Hash   [32]byte
}

// Text returns the checkpoint's note text.
func (c Checkpoint) Text() []byte {
	return fmt.Appendf(nil, "%s\n%d\n%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Hash[:]))
}

// ParseCheckpoint parses a checkpoint's note text (without signatures).
// Extension lines are refused: this log writes none, and neither the
// witnesses' ML-DSA-44 cosignatures nor monitors vouch for them.
func ParseCheckpoint(text []byte) (Checkpoint, error) {
	if len(text) > MaxCheckpointSize || !bytes.HasSuffix(text, []byte("\n")) {
		return Checkpoint{}, fmt.Errorf("%w: the text must end in a newline and be at most %d bytes", ErrBadCheckpoint, MaxCheckpointSize)
	}
	lines := strings.Split(string(text[:len(text)-1]), "\n")
	if len(lines) != 3 {
		return Checkpoint{}, fmt.Errorf("%w: %d lines, want origin, size and root hash", ErrBadCheckpoint, len(lines))
	}
	if err := checkOrigin(lines[0]); err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %v", ErrBadCheckpoint, err)
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || (lines[1] != "0" && lines[1][0] == '0') {
		return Checkpoint{}, fmt.Errorf("%w: size %q is not a decimal number without leading zeros", ErrBadCheckpoint, lines[1])
	}
	h, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(h) != 32 {
		return Checkpoint{}, fmt.Errorf("%w: root hash %q is not 32 bytes of base64", ErrBadCheckpoint, lines[2])
	}
	c := Checkpoint{Origin: lines[0], Size: size}
	copy(c.Hash[:], h)
	return c, nil
}

// checkOrigin checks a log origin (also the log's key name): non-empty, at
// most MaxOriginLen bytes, valid UTF-8 without spaces, plus signs or
// control characters.
func checkOrigin(o string) error {
	if o == "" || len(o) > MaxOriginLen {
		return fmt.Errorf("the origin must be 1 to %d bytes", MaxOriginLen)
	}
	for _, r := range o {
		if r == unicode.ReplacementChar || r == '+' || unicode.IsSpace(r) || unicode.IsControl(r) {
			return fmt.Errorf("origin %q: no spaces, plus signs or control characters (a scheme-less URL such as example.com/log)", o)
		}
	}
	return nil
}
