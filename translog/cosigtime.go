package translog

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// CosignatureTimes returns the time each witness in witnessKeys vouches
// for in its cosignature on the signed checkpoint msg (c2sp.org
// tlog-cosignature: Ed25519 cosignature/v1 or ML-DSA-44 keys), keyed by
// the witness's key name. Only cosignatures that verify count; a witness
// that did not cosign is absent. It checks no log signature: call
// VerifyCheckpoint for that.
func CosignatureTimes(msg []byte, witnessKeys []string) (map[string]time.Time, error) {
	if len(msg) > MaxCheckpointSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrBadCheckpoint, len(msg), MaxCheckpointSize)
	}
	var vs []note.Verifier
	for _, k := range witnessKeys {
		v, typ, err := newVerifier(k)
		if err != nil {
			return nil, err
		}
		if typ != sigEd25519Cosig && typ != sigMLDSA44 {
			return nil, fmt.Errorf("%w: witness key %q is not a cosignature key (type 0x04 or 0x06)", ErrBadKey, v.Name())
		}
		vs = append(vs, v)
	}
	out := map[string]time.Time{}
	for _, v := range vs {
		// One witness at a time: a cosignature that does not verify
		// (replayed from another checkpoint) makes note.Open refuse the
		// whole note, and must only make that witness absent.
		n, err := note.Open(msg, note.VerifierList(v))
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		if errors.As(err, &unverified) || errors.As(err, &invalid) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadCheckpoint, err)
		}
		for _, s := range n.Sigs {
			raw, err := base64.StdEncoding.DecodeString(s.Base64)
			if err != nil || len(raw) < 4+8 {
				continue // cannot happen for a signature that verified
			}
			t := binary.BigEndian.Uint64(raw[4:12])
			if t > 1<<62 {
				continue
			}
			if old, ok := out[s.Name]; !ok || time.Unix(int64(t), 0).After(old) {
				out[s.Name] = time.Unix(int64(t), 0).UTC()
			}
		}
	}
	return out, nil
}
