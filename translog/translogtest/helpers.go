package translogtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net/http"
	"testing"

	"filippo.io/mldsa"

	"github.com/enigm/enigm/translog"
)

// NewSigner returns a log signer of origin with new Ed25519 and ML-DSA-44
// keys.
func NewSigner(t testing.TB, origin string) *translog.Signer {
	t.Helper()
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pq, err := mldsa.GenerateKey(mldsa.MLDSA44())
	if err != nil {
		t.Fatal(err)
	}
	s, err := translog.NewSigner(origin, ed, pq)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Get fetches url and returns the status, headers and body.
func Get(t testing.TB, url string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}
