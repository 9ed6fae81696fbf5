// Package testkit holds the helpers the module's tests share: fast soft
// backend key-derivation costs, a settable clock, error helpers (and the
// gate a backend refusal names), binding keys and attestation made or
// the test fails, a log buffer safe for concurrent use,
// the check of a CLI's versioned JSON output, the two halves of a man-in-the-middle test server
// and the message form it rewrites (MessageForm), keys
// derived from labels for deterministic test worlds, and the round-trip
// fuzz target of a strict decoder (FuzzCanonical).
//
// Only _test.go files import it; internal/archtest fails if a non-test
// package does, so test shortcuts (tiny Argon2id costs) never reach a
// binary.
package testkit

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hpke"
	"crypto/sha512"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/soft"
	"github.com/enigm/enigm/hybrid"
)

// FastKDF are tiny Argon2id costs for tests; production uses
// soft.Recommended.
var FastKDF = soft.Params{Time: 1, MemoryKiB: 64, Threads: 1}

// SoftBackend opens a software backend with FastKDF costs. Its signature
// is that of a keystore backend factory; the name is ignored.
func SoftBackend(string) (backend.Backend, error) {
	return soft.New(soft.Options{Params: FastKDF})
}

// Clock is a clock a test sets and advances; it is safe for concurrent
// use, so a server and its clients can share one.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock showing t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// GateOf is the gate a backend.GateError in err's chain names, or "" when
// err carries none.
func GateOf(err error) backend.Gate {
	var g *backend.GateError
	if errors.As(err, &g) {
		return g.Gate
	}
	return ""
}

// Buffer is a bytes.Buffer safe for concurrent use: a server or a process
// writes its log into it while the test reads.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// BindingKey creates a hardware binding key in s, which must offer
// backend.BindingKeys: its blob and its signer. A failure fails the test.
func BindingKey(t testing.TB, s backend.Session) ([]byte, crypto.Signer) {
	t.Helper()
	bk, ok := s.(backend.BindingKeys)
	if !ok {
		t.Fatalf("%T has no binding keys", s)
	}
	blob, key, err := bk.CreateBindingKey(context.Background())
	if err != nil {
		t.Fatalf("CreateBindingKey: %v", err)
	}
	return blob, key
}

// Attest has s, which must be a backend.Attester, attest the binding key
// blob over nonce. A failure fails the test.
func Attest(t testing.TB, s backend.Session, blob, nonce []byte) backend.Evidence {
	t.Helper()
	a, ok := s.(backend.Attester)
	if !ok {
		t.Fatalf("%T does not attest", s)
	}
	ev, err := a.Attest(context.Background(), blob, nonce)
	if err != nil {
		t.Fatalf("Attest: %v", err)
	}
	return ev
}

// Must returns v, or panics with err (the stack names the failing call).
func Must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// NoErr fails the test at once if err is not nil.
func NoErr(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// VersionedJSON parses a CLI's --json stdout: one JSON object carrying
// "version": 1. Anything else fails the test.
func VersionedJSON(t testing.TB, stdout string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(stdout), &m); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, stdout)
	}
	if m["version"] != float64(1) {
		t.Fatalf("JSON without version 1: %s", stdout)
	}
	return m
}

// Forward sends r on to upstream, as a man-in-the-middle test server does,
// and returns the response with its whole body read. When upstream cannot
// be reached it answers 502 on w and returns ok false.
func Forward(w http.ResponseWriter, r *http.Request, upstream *url.URL) (resp *http.Response, body []byte, ok bool) {
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, upstream.String()+r.URL.RequestURI(), r.Body)
	req.Header = r.Header.Clone()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return nil, nil, false
	}
	defer resp.Body.Close()
	body, _ = io.ReadAll(resp.Body)
	return resp, body, true
}

// Reply answers w with resp's headers (but Content-Length, as body may have
// been rewritten), status and body.
func Reply(w http.ResponseWriter, resp *http.Response, body []byte) {
	for k, vs := range resp.Header {
		if k != "Content-Length" {
			w.Header()[k] = vs
		}
	}
	w.WriteHeader(resp.StatusCode)
	w.Write(body)
}

// Keys derives a test world's keys from labels, the same on every run, so
// that generated vectors are reproducible. The seed for a label is
// SHA-512 over Domain, ":", and the label; a key's label is prefixed with
// its kind ("hybrid:", "kem:", "binding:"). Derived keys are kept, and a
// Keys is safe for concurrent use. These keys are public knowledge: tests
// only.
type Keys struct {
	Domain string // e.g. "enigm-chain-test"
	cache  sync.Map
}

// Seed returns the first n (at most 64) bytes of the seed for label.
func (k *Keys) Seed(label string, n int) []byte {
	h := sha512.Sum512([]byte(k.Domain + ":" + label))
	return h[:n]
}

// Hybrid returns the hybrid signing key for label.
func (k *Keys) Hybrid(label string) *hybrid.PrivateKey {
	return cached(k, "h:"+label, func() (*hybrid.PrivateKey, error) {
		return hybrid.NewPrivateKey(k.Seed("hybrid:"+label, hybrid.SeedSize))
	})
}

// KEM returns the public half of the HPKE MLKEM768X25519 key for label.
func (k *Keys) KEM(label string) hpke.PublicKey {
	return cached(k, "k:"+label, func() (hpke.PublicKey, error) {
		sk, err := hpke.MLKEM768X25519().DeriveKeyPair(k.Seed("kem:"+label, 64))
		if err != nil {
			return nil, err
		}
		return sk.PublicKey(), nil
	})
}

// P256 returns the ECDSA P-256 key (a hardware binding key) for label.
func (k *Keys) P256(label string) *ecdsa.PrivateKey {
	return cached(k, "b:"+label, func() (*ecdsa.PrivateKey, error) {
		s := k.Seed("binding:"+label, 32)
		s[0] &= 0x7f // below the group order
		return ecdsa.ParseRawPrivateKey(elliptic.P256(), s)
	})
}

// Each calls f with every signing key derived so far: each
// *hybrid.PrivateKey and *ecdsa.PrivateKey.
func (k *Keys) Each(f func(key any)) {
	k.cache.Range(func(name, v any) bool {
		if !strings.HasPrefix(name.(string), "k:") {
			f(v)
		}
		return true
	})
}

// cached returns the value kept under name, or derives, keeps and returns
// it; a derivation error is a broken test world and panics.
func cached[T any](k *Keys, name string, derive func() (T, error)) T {
	if v, ok := k.cache.Load(name); ok {
		return v.(T)
	}
	v := Must(derive())
	k.cache.Store(name, v)
	return v
}
