package translog

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// Cosignature is what a witness's valid cosignature of a checkpoint
// says: when the witness signed it (c2sp.org/tlog-cosignature: the
// timestamp is inside the signed message of both Ed25519 cosignature/v1,
// type 0x04, and ML-DSA-44, type 0x06).
type Cosignature struct {
	Valid bool
	// Present: a signature line of this key is in the note (when not
	// Valid, it does not verify).
	Present bool
	Time    time.Time
}

// Cosignatures checks the signed checkpoint msg for a cosignature of each
// witness key in vkeys (type 0x04 or 0x06) and returns one Cosignature
// per key, in order. Signature lines of other keys (the log's) are
// ignored. Only a malformed key or note is an error.
func Cosignatures(msg []byte, vkeys []string) ([]Cosignature, error) {
	if len(msg) > MaxCheckpointSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrBadCheckpoint, len(msg), MaxCheckpointSize)
	}
	out := make([]Cosignature, len(vkeys))
	for i, k := range vkeys {
		v, typ, err := newVerifier(k)
		if err != nil {
			return nil, err
		}
		if typ != sigEd25519Cosig && typ != sigMLDSA44 {
			return nil, fmt.Errorf("%w: witness key %q is not a cosignature key (type 0x04 or 0x06)", ErrBadKey, v.Name())
		}
		if out[i], err = cosignatureOf(msg, v); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// cosignatureOf returns what msg, a signed checkpoint no larger than
// MaxCheckpointSize, carries from the witness key v.
func cosignatureOf(msg []byte, v note.Verifier) (Cosignature, error) {
	n, err := note.Open(msg, note.VerifierList(v))
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
		if s.Name != v.Name() || s.Hash != v.KeyHash() {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(s.Base64)
		if err != nil || len(raw) < 4+8 {
			return Cosignature{}, fmt.Errorf("%w: the cosignature of %s is too short for a timestamp", ErrBadCheckpoint, v.Name())
		}
		ts := binary.BigEndian.Uint64(raw[4:12])
		if ts > 1<<62 {
			return Cosignature{}, fmt.Errorf("%w: the cosignature of %s has timestamp %d", ErrBadCheckpoint, v.Name(), ts)
		}
		return Cosignature{Valid: true, Present: true, Time: time.Unix(int64(ts), 0).UTC()}, nil
	}
	return Cosignature{}, nil
}
