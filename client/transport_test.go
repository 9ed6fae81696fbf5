package client

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Bearer tokens go over plain http:// only to this machine: any other host
// needs https://, and the refusal says so.
func TestServerURLTransport(t *testing.T) {
	for _, c := range []struct {
		url string
		ok  bool
	}{
		{"http://127.0.0.1:8470", true},
		{"http://127.0.0.1:8470/", true},
		{"http://127.9.8.7", true},
		{"http://[::1]:8470", true},
		{"http://localhost:8470", true},
		{"http://LocalHost", true},
		{"http://[::ffff:127.0.0.1]:1", true},
		{"https://command.example", true},
		{"https://10.0.0.5:8470", true},
		{"http://command.example", false},
		{"http://10.0.0.5:8470", false},
		{"http://192.168.1.10", false},
		{"http://0.0.0.0:8470", false},
		{"http://[::]:8470", false},
		{"http://[fe80::1%25eth0]:8470", false},
		{"http://128.0.0.1", false},
		{"http://127.0.0.1.nip.example", false},
		{"http://localhost.example", false},
		{"ftp://127.0.0.1", false},
		{"127.0.0.1:8470", false},
		{"", false},
	} {
		cl, err := New(c.url, nil)
		if c.ok != (err == nil) {
			t.Errorf("New(%q): %v, want ok=%v", c.url, err, c.ok)
			continue
		}
		if err != nil {
			if !strings.Contains(err.Error(), "https://") {
				t.Errorf("New(%q): the error does not say what to use: %v", c.url, err)
			}
			if strings.HasPrefix(c.url, "http://") && !errors.Is(err, ErrInsecureServer) {
				t.Errorf("New(%q): %v does not wrap ErrInsecureServer", c.url, err)
			}
			continue
		}
		if cl.Server() != strings.TrimRight(c.url, "/") {
			t.Errorf("New(%q).Server() = %q", c.url, cl.Server())
		}
	}
}

// A server (or anything in front of it) that redirects an authenticated
// request from https:// to plain http:// on the same host does not get the
// token in the clear: net/http would forward the Authorization header to
// the same host, whatever the scheme.
func TestRedirectToPlainHTTPRefused(t *testing.T) {
	var plain atomic.Int32
	var leaked atomic.Bool
	hc := &http.Client{Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
		if r.URL.Scheme == "https" {
			h := http.Header{"Location": {"http://command.example" + r.URL.Path}}
			return &http.Response{StatusCode: http.StatusTemporaryRedirect, Header: h, Body: http.NoBody, Request: r}, nil
		}
		plain.Add(1)
		leaked.Store(r.Header.Get("Authorization") != "")
		return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: r}, nil
	})}
	cl, err := New("https://command.example", hc)
	if err != nil {
		t.Fatal(err)
	}
	cl.id, cl.token, cl.exp = &Identity{}, "edt_secret", time.Now().Add(time.Hour)
	err = cl.do(t.Context(), "GET", "/v1/accounts/x/devices", true, nil, nil)
	if !errors.Is(err, ErrInsecureServer) {
		t.Fatalf("followed the redirect to plain http: %v", err)
	}
	if leaked.Load() || plain.Load() != 0 {
		t.Fatal("a request (with the bearer token) went to the http:// redirect target")
	}
	// The caller's client is not changed.
	if hc.CheckRedirect != nil {
		t.Fatal("New changed the caller's http.Client")
	}
	// A redirect to https:// is followed as before.
	u, _ := url.Parse("https://other.example/x")
	if err := cl.hc.CheckRedirect(&http.Request{URL: u}, nil); err != nil {
		t.Fatalf("redirect to https refused: %v", err)
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
