// Package testkit holds the helpers the module's tests share: fast soft
// backend key-derivation costs, a settable clock, error helpers (and the
// gate a backend refusal names), the check of a CLI's versioned JSON
// output and the two halves of a man-in-the-middle test server.
//
// Only _test.go files import it; internal/archtest fails if a non-test
// package does, so test shortcuts (tiny Argon2id costs) never reach a
// binary.
package testkit

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/soft"
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
