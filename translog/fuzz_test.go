package translog_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/enigm/enigm/translog"
)

// FuzzParseCheckpoint: a checkpoint text that parses is the text its
// fields give back, byte for byte (no second spelling of one checkpoint).
func FuzzParseCheckpoint(f *testing.F) {
	f.Add([]byte("enigm.test/log\n7\nZDqqgo3vR3c8dF9Nd6sojsCH6Ao/zimcyA4wexObiPE=\n"))
	f.Add([]byte("enigm.test/log\n07\nZDqqgo3vR3c8dF9Nd6sojsCH6Ao/zimcyA4wexObiPE=\n"))
	f.Add([]byte("enigm.test/log\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\next\n"))
	f.Add([]byte("a b\n1\nZDqqgo3vR3c8dF9Nd6sojsCH6Ao/zimcyA4wexObiPE\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := translog.ParseCheckpoint(b)
		if err != nil {
			return
		}
		if !bytes.Equal(c.Text(), b) {
			t.Fatalf("%q parses to %+v, whose text is %q", b, c, c.Text())
		}
	})
}

// FuzzVerifyCheckpoint: no bytes verify under the log's keys (nor panic)
// unless they carry the log's own checkpoint body: extra or repeated
// signature lines may be added, the signed content cannot change.
func FuzzVerifyCheckpoint(f *testing.F) {
	l, _, s := newLog(f, 3)
	good, want, err := l.Checkpoint(context.Background())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add(append(append([]byte(nil), good...), good...))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := translog.VerifyCheckpoint(b, testOrigin, s.VerifierKeys())
		if err == nil && c != want {
			t.Fatalf("a note with another body verified: %+v\n%q", c, b)
		}
	})
}

// FuzzParseMapLeaf: a map leaf that parses is the leaf its fields give
// back, byte for byte.
func FuzzParseMapLeaf(f *testing.F) {
	f.Add([]byte("enigm.map/v1\n42\n/wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE=\n"))
	f.Add([]byte("enigm.map/v1\n042\n/wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE=\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, root, err := translog.ParseMapLeaf(b)
		if err != nil {
			return
		}
		if got := translog.MapLeaf(n, root); !bytes.Equal(got, b) {
			t.Fatalf("%q parses to %d %x, whose leaf is %q", b, n, root, got)
		}
	})
}
