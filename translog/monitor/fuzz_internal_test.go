package monitor

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// FuzzBundle: an entry bundle that splits re-encodes to exactly the
// input, and no input panics.
func FuzzBundle(f *testing.F) {
	f.Add([]byte("\x00\x03abc\x00\x00"), uint64(2))
	f.Add([]byte("\x00\x05ab"), uint64(1))
	f.Fuzz(func(t *testing.T, b []byte, w uint64) {
		leaves, ok := splitBundle(b, w)
		if !ok {
			return
		}
		var again []byte
		for _, l := range leaves {
			again = binary.BigEndian.AppendUint16(again, uint16(len(l)))
			again = append(again, l...)
		}
		if !bytes.Equal(again, b) || uint64(len(leaves)) != w {
			t.Fatalf("%x splits into %d entries that encode as %x", b, len(leaves), again)
		}
	})
}
