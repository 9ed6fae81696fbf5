package testkit

import "testing"

// fatalRecorder is a testing.TB whose Fatalf records instead of stopping.
type fatalRecorder struct {
	testing.TB
	failed bool
}

func (r *fatalRecorder) Fatalf(string, ...any) { r.failed = true }

// The round-trip check passes a canonical encoding and fails the ones a
// lax decoder could accept for the same value: a non-minimal integer
// (0x18 0x01 for 1) and trailing bytes.
func TestCheckCanonical(t *testing.T) {
	for _, tc := range []struct {
		desc string
		in   []byte
		fail bool
	}{
		{"minimal", []byte{0x01}, false},
		{"non-minimal integer", []byte{0x18, 0x01}, true},
		{"trailing byte", []byte{0x01, 0x00}, true},
	} {
		r := &fatalRecorder{TB: t}
		checkCanonical(r, "number", uint64(1), tc.in)
		if r.failed != tc.fail {
			t.Errorf("%s: failed = %v, want %v", tc.desc, r.failed, tc.fail)
		}
	}
}
