// Package client is the device side of the Enigm Command API
// (docs/design/command-api.md). It verifies everything it receives: chains
// are checked with the chain package against the newest head this device
// verified before, and a server view that rolls back or forks is refused.
// The server is never trusted with deciding which devices an account has.
package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/chain"
)

// Errors.
var (
	// ErrDeviceRevoked: the server says this device is not active (403
	// device_revoked). Verify the chain before acting on it.
	ErrDeviceRevoked = errors.New("client: the server says this device is not active")
	// ErrConflict: the chain head moved (409 conflict); sync and retry.
	ErrConflict = errors.New("client: the chain head moved")
	// ErrNotFound: 404.
	ErrNotFound = errors.New("client: not found")
	// ErrRollback: the server's chain is older than what this device verified.
	ErrRollback = errors.New("client: the server rolled back the chain")
	// ErrFork: the server's chain diverges from what this device verified.
	ErrFork = errors.New("client: the server forked the chain")
	// ErrUnavailable: the server or its database is unreachable.
	ErrUnavailable = errors.New("client: server unavailable")
)

// APIError is an error response from Command.
type APIError struct {
	Status     int
	Code       string
	Message    string
	ChainError string      // for 422 chain_rejected: the chain code's wire name, e.g. "no_device_approval"
	Head       *chain.Head // for 409 conflict
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("server: %s (%d %s)", e.Message, e.Status, e.Code)
	if e.ChainError != "" {
		s += " [" + e.ChainError + "]"
	}
	return s
}

// ChainCode returns the chain code the server named in "chain_error", or
// false when it named none or a name this build does not know (a newer
// server). It is deliberately not matched by errors.Is: a code the server
// reports about a link it refused is not a failure of this client's own
// verification.
func (e *APIError) ChainCode() (chain.Code, bool) {
	if e.ChainError == "" {
		return 0, false
	}
	return chain.ParseCode(e.ChainError)
}

// Is maps codes to the package's sentinels.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrDeviceRevoked:
		return e.Code == "device_revoked"
	case ErrConflict:
		return e.Code == "conflict"
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrUnavailable:
		return e.Status == http.StatusServiceUnavailable
	}
	return false
}

// Identity proves who this device is: its account and device ids and a
// function that signs with its identity key under a purpose (keystore
// IdentityKey.Sign).
type Identity struct {
	Account chain.AccountID
	Device  chain.DeviceID
	Sign    func(purpose string, msg []byte) ([]byte, error)
}

// Client talks to one Command server. It is safe for concurrent use.
type Client struct {
	base *url.URL
	hc   *http.Client

	mu    sync.Mutex
	id    *Identity
	token string
	exp   time.Time
}

// New returns a client for the server at base (e.g. http://127.0.0.1:8470
// or https://command.example). base must pass [ParseServerURL]. The client
// uses a copy of hc that also refuses to follow a redirect to a URL
// ParseServerURL would refuse, so a bearer token never leaves over plain
// http:// for another host.
func New(base string, hc *http.Client) (*Client, error) {
	u, err := ParseServerURL(base)
	if err != nil {
		return nil, err
	}
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{base: u, hc: HTTPClient(hc)}, nil
}

// HTTPClient returns a copy of hc that refuses to follow a redirect to a
// URL [ParseServerURL] would refuse (net/http forwards the Authorization
// header to the same host whatever the scheme, so an https:// server
// redirecting to http:// would otherwise get the token in the clear).
func HTTPClient(hc *http.Client) *http.Client {
	own := *hc
	next := hc.CheckRedirect
	own.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if err := checkTransport(req.URL); err != nil {
			return fmt.Errorf("not following a redirect to %s: %w", req.URL.Redacted(), err)
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("client: stopped after 10 redirects")
		}
		return nil
	}
	return &own
}

// ErrInsecureServer: a server URL would carry bearer tokens in the clear.
var ErrInsecureServer = errors.New("client: refusing to send credentials over plain http:// to a host other than this machine")

// ParseServerURL parses the URL of a Command server for a client that sends
// bearer tokens to it. https:// is accepted for any host; http:// only for
// a loopback host (an address in 127.0.0.0/8, ::1, or the name localhost),
// where the token never crosses a network. Anything else is refused with
// an error that wraps [ErrInsecureServer] and says what to use instead.
func ParseServerURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: %q is not a server URL: use https://HOST[:PORT] (or http://127.0.0.1:PORT for a server on this machine)", raw)
	}
	if err := checkTransport(u); err != nil {
		return nil, err
	}
	return u, nil
}

// checkTransport refuses http:// to a host that is not loopback.
func checkTransport(u *url.URL) error {
	if u.Scheme == "https" {
		return nil
	}
	if u.Scheme == "http" && isLoopback(u.Hostname()) {
		return nil
	}
	return fmt.Errorf("%w: %s://%s: use https://%s (plain http:// only for 127.0.0.1, ::1 or localhost)", ErrInsecureServer, u.Scheme, u.Host, u.Host)
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Zone() == "" && ip.Unmap().IsLoopback()
}

// Server returns the base URL.
func (c *Client) Server() string { return c.base.String() }

// SetIdentity makes later authenticated calls sign in as id.
func (c *Client) SetIdentity(id *Identity) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.id, c.token = id, ""
}

// maxResponse bounds what the client reads from the server.
const maxResponse = 32 << 20

// byStatus picks the body to decode an answer into by its status.
type byStatus map[int]any

// do sends in as JSON (unless nil) and decodes a 2xx JSON answer into out
// (unless nil), then validates it.
func (c *Client) do(ctx context.Context, method, path string, auth bool, in, out any) error {
	_, err := c.send(ctx, method, path, auth, false, in, out)
	return err
}

// doCBOR is do for the endpoints whose bodies travel as CBOR: in is sent
// as application/cbor and the answer is asked for as CBOR.
func (c *Client) doCBOR(ctx context.Context, method, path string, auth bool, in, out any) error {
	_, err := c.send(ctx, method, path, auth, true, in, out)
	return err
}

func (c *Client) send(ctx context.Context, method, path string, auth, binary bool, in, out any) (int, error) {
	status, err := c.once(ctx, method, path, auth, binary, in, out)
	var ae *APIError
	if auth && errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
		// The token expired or the server forgot it (restart, clock
		// difference): log in again once.
		c.mu.Lock()
		c.token = ""
		c.mu.Unlock()
		status, err = c.once(ctx, method, path, auth, binary, in, out)
	}
	return status, err
}

func (c *Client) once(ctx context.Context, method, path string, auth, binary bool, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		var b []byte
		var err error
		if binary {
			b, err = api.MarshalCBOR(in)
		} else {
			b, err = json.Marshal(in)
		}
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, body)
	if err != nil {
		return 0, err
	}
	switch {
	case in != nil && binary:
		req.Header.Set("Content-Type", api.MediaCBOR)
	case in != nil:
		req.Header.Set("Content-Type", api.MediaJSON)
	}
	if binary {
		req.Header.Set("Accept", api.MediaCBOR)
	}
	if auth {
		tok, err := c.ensureToken(ctx)
		if err != nil {
			return 0, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.hc.Do(req)
	if errors.Is(err, ErrInsecureServer) {
		return 0, fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	if err != nil {
		return 0, fmt.Errorf("%w: %s %s: %v", ErrUnavailable, method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("%w: reading the response: %v", ErrUnavailable, err)
	}
	if len(raw) > maxResponse {
		return resp.StatusCode, fmt.Errorf("client: response larger than %d bytes", maxResponse)
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, decodeError(resp, raw)
	}
	if m, ok := out.(byStatus); ok {
		out = m[resp.StatusCode]
	}
	if out == nil {
		return resp.StatusCode, nil
	}
	if api.MediaType(resp.Header.Get("Content-Type")) == api.MediaCBOR {
		err = api.UnmarshalCBOR(raw, out)
	} else {
		err = json.Unmarshal(raw, out)
	}
	if err == nil {
		if v, ok := out.(interface{ Validate() error }); ok {
			err = v.Validate()
		}
	}
	if err != nil {
		return resp.StatusCode, fmt.Errorf("client: malformed response to %s %s: %v", method, path, err)
	}
	return resp.StatusCode, nil
}

func decodeError(resp *http.Response, raw []byte) error {
	var w api.Error
	e := &APIError{Status: resp.StatusCode, Code: "http_" + strconv.Itoa(resp.StatusCode), Message: http.StatusText(resp.StatusCode)}
	if json.Unmarshal(raw, &w) == nil && w.Validate() == nil {
		e.Code, e.Message, e.ChainError = w.Error.Code, w.Error.Message, w.Error.ChainError
		if w.Head != nil {
			if h, err := w.Head.Chain(); err == nil {
				e.Head = &h
			}
		}
	}
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
		e.RetryAfter = time.Duration(ra) * time.Second
	}
	return e
}

// The auth/token message: "enigm-auth-token-v1" || account || device || challenge.
func tokenMessage(acct chain.AccountID, dev chain.DeviceID, challenge []byte) []byte {
	m := []byte("enigm-auth-token-v1")
	m = append(m, acct[:]...)
	m = append(m, dev[:]...)
	return append(m, challenge...)
}

// TokenMessage is the message a device signs (purpose "auth/token") to
// obtain a token; exported for the server and tests.
func TokenMessage(acct chain.AccountID, dev chain.DeviceID, challenge []byte) []byte {
	return tokenMessage(acct, dev, challenge)
}

func (c *Client) ensureToken(ctx context.Context) (string, error) {
	c.mu.Lock()
	id, tok, exp := c.id, c.token, c.exp
	c.mu.Unlock()
	if id == nil {
		return "", errors.New("client: no device identity to authenticate with")
	}
	if tok != "" && time.Until(exp) > 30*time.Second {
		return tok, nil
	}
	var ch api.Challenge
	ids := api.ChallengeRequest{AccountID: hex.EncodeToString(id.Account[:]), DeviceID: hex.EncodeToString(id.Device[:])}
	if err := c.do(ctx, "POST", "/v1/auth/challenge", false, &ids, &ch); err != nil {
		return "", err
	}
	sig, err := id.Sign("auth/token", tokenMessage(id.Account, id.Device, ch.Challenge))
	if err != nil {
		return "", fmt.Errorf("client: signing the login challenge: %w", err)
	}
	var t api.Token
	req := api.TokenRequest{AccountID: ids.AccountID, DeviceID: ids.DeviceID, Challenge: ch.Challenge, Signature: sig}
	if err := c.do(ctx, "POST", "/v1/auth/token", false, &req, &t); err != nil {
		return "", err
	}
	c.mu.Lock()
	c.token, c.exp = t.Token, t.ExpiresAt
	c.mu.Unlock()
	return t.Token, nil
}

// HeadJSON returns the contract's JSON form of h.
func HeadJSON(h chain.Head) map[string]any {
	return map[string]any{"seq": h.Seq, "hash": hex.EncodeToString(h.Hash[:])}
}

// ParseAccountID parses a 64-digit hex account id (either case).
func ParseAccountID(s string) (chain.AccountID, error) {
	var a chain.AccountID
	err := parseHexID(a[:], s, "account")
	return a, err
}

// ParseDeviceID parses a 32-digit hex device id (either case).
func ParseDeviceID(s string) (chain.DeviceID, error) {
	var d chain.DeviceID
	err := parseHexID(d[:], s, "device")
	return d, err
}

// parseHexID decodes s, hex of exactly len(id) bytes, into id; id is left
// as it was when s is not.
func parseHexID(id []byte, s, what string) error {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return fmt.Errorf("%q is not a %d-digit hex %s id", s, 2*len(id), what)
	}
	copy(id, b)
	return nil
}
