package translog_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/enigm/enigm/translog"
)

// edCosign returns an Ed25519 cosignature/v1 line by a witness named name
// at time t over the signed checkpoint signed, and the witness's vkey.
func edCosign(t *testing.T, name string, priv ed25519.PrivateKey, ts uint64, signed []byte) (line []byte, vkey string) {
	t.Helper()
	pub := priv.Public().(ed25519.PublicKey)
	h := sha256.New()
	h.Write([]byte(name + "\n\x04"))
	h.Write(pub)
	id := h.Sum(nil)[:4]
	text := signed[:indexBlank(signed)+1]
	msg := fmt.Appendf(nil, "cosignature/v1\ntime %d\n%s", ts, text)
	sig := append(append(append([]byte(nil), id...), binary.BigEndian.AppendUint64(nil, ts)...), ed25519.Sign(priv, msg)...)
	line = fmt.Appendf(nil, "— %s %s\n", name, base64.StdEncoding.EncodeToString(sig))
	vkey = fmt.Sprintf("%s+%x+%s", name, id, base64.StdEncoding.EncodeToString(append([]byte{0x04}, pub...)))
	return line, vkey
}

func indexBlank(b []byte) int {
	for i := len(b) - 2; i >= 0; i-- {
		if b[i] == '\n' && b[i+1] == '\n' {
			return i
		}
	}
	return -1
}

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
	line, vkey := edCosign(t, "w.example", wpriv, 1_700_000_000, signed)
	_, otherKey := edCosign(t, "o.example", other, 1, signed)

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
