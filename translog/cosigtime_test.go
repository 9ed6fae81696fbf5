package translog_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"github.com/enigm/enigm/translog"
	"github.com/enigm/enigm/translog/translogtest"
)

// TestCosignatureTimes: the time of a witness's valid cosignature is
// returned; a cosignature that does not verify (another checkpoint's, or
// a flipped timestamp) and a witness that did not cosign give nothing.
func TestCosignatureTimes(t *testing.T) {
	l, st, _ := newLog(t, 3)
	signed, _, err := l.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, wpriv, _ := ed25519.GenerateKey(rand.Reader)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	line, vkey := translogtest.Cosign("w.example", wpriv, time.Unix(1_700_000_000, 0), signed)
	_, otherKey := translogtest.Cosign("o.example", other, time.Unix(1, 0), signed)

	got, err := translog.CosignatureTimes(append(append([]byte(nil), signed...), line...), []string{vkey, otherKey})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !got["w.example"].Equal(time.Unix(1_700_000_000, 0)) {
		t.Fatalf("times %v, want w.example at 1700000000 only", got)
	}
	// The same line on another checkpoint does not verify.
	st.add(leaf(3))
	if _, err := l.Integrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	signed2, _, _ := l.Checkpoint(context.Background())
	got, err = translog.CosignatureTimes(append(append([]byte(nil), signed2...), line...), []string{vkey})
	if err != nil || len(got) != 0 {
		t.Fatalf("replayed cosignature: %v, %v; want none", got, err)
	}
	// A log key is not a witness key.
	if _, err := translog.CosignatureTimes(signed, l.VerifierKeys()); err == nil {
		t.Fatal("a log key was taken as a witness key")
	}
}
