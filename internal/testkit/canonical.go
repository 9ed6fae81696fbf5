package testkit

import (
	"bytes"
	"testing"

	"github.com/enigm/enigm/internal/wire"
)

// FuzzCanonical runs the fuzz target of a strict decoder of the module's
// CBOR (internal/wire): whatever parse accepts must encode back to
// exactly its input, so that one value has one accepted encoding
// (malleability). what names the value in the failure. Add the seeds
// before calling it.
func FuzzCanonical[T any](f *testing.F, what string, parse func([]byte) (T, error)) {
	f.Helper()
	f.Fuzz(func(t *testing.T, in []byte) {
		if v, err := parse(in); err == nil {
			checkCanonical(t, what, v, in)
		}
	})
}

// checkCanonical fails t unless v encodes to exactly in.
func checkCanonical(t testing.TB, what string, v any, in []byte) {
	t.Helper()
	if again, err := wire.Marshal(v); err != nil || !bytes.Equal(again, in) {
		t.Fatalf("accepted a %s that does not re-encode to its input (%v):\n in %x\nout %x", what, err, in, again)
	}
}
