package translog

import "fmt"

// Cosignature returns what signed (a signed checkpoint) carries from w:
// whether w's cosignature line is present and verifies, and its
// timestamp. Command uses it to learn when its own witnesses cosigned a
// checkpoint (recovery on witnessed time, translog.md).
func (w *Witness) Cosignature(signed []byte) (Cosignature, error) {
	if len(signed) > MaxCheckpointSize {
		return Cosignature{}, fmt.Errorf("%w: %d bytes, more than %d", ErrBadCheckpoint, len(signed), MaxCheckpointSize)
	}
	return cosignatureOf(signed, w.v)
}
