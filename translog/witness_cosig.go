package translog

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// Cosignature returns what signed (a signed checkpoint) carries from w:
// whether w's cosignature line is present and verifies, and its
// timestamp. Command uses it to learn when its own witnesses cosigned a
// checkpoint (recovery on witnessed time, translog.md).
func (w *Witness) Cosignature(signed []byte) (Cosignature, error) {
	if len(signed) > MaxCheckpointSize {
		return Cosignature{}, fmt.Errorf("%w: %d bytes, more than %d", ErrBadCheckpoint, len(signed), MaxCheckpointSize)
	}
	n, err := note.Open(signed, note.VerifierList(w.v))
	var unverified *note.UnverifiedNoteError
	var invalid *note.InvalidSignatureError
	switch {
	case errors.As(err, &unverified):
		return Cosignature{}, nil
	case errors.As(err, &invalid):
		return Cosignature{Present: true}, nil
	case err != nil:
		return Cosignature{}, fmt.Errorf("%w: %v", ErrBadCheckpoint, err)
	}
	for _, s := range n.Sigs {
		if s.Name != w.v.Name() || s.Hash != w.v.KeyHash() {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(s.Base64)
		if err != nil || len(raw) < 4+8 {
			return Cosignature{}, fmt.Errorf("%w: the cosignature of %s is too short for a timestamp", ErrBadCheckpoint, w.v.Name())
		}
		ts := binary.BigEndian.Uint64(raw[4:12])
		if ts > 1<<62 {
			return Cosignature{}, fmt.Errorf("%w: the cosignature of %s has timestamp %d", ErrBadCheckpoint, w.v.Name(), ts)
		}
		return Cosignature{Valid: true, Present: true, Time: time.Unix(int64(ts), 0).UTC()}, nil
	}
	return Cosignature{}, nil
}
