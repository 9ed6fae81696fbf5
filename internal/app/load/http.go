package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/enigm/enigm/api"
)

// endpoint talks to one Command server (or the trivial server) over
// HTTP/1.1 keep-alive connections. Timed phases send pre-encoded bodies
// and read responses into a worker's buffer, so that the generator spends
// as little CPU as it can per request.
type endpoint struct {
	hc   *http.Client
	base string
}

func newAPI(base string, hc *http.Client) *endpoint {
	return &endpoint{hc: hc, base: strings.TrimRight(base, "/")}
}

// newHTTPClient returns a client keeping up to conns idle connections to
// each server.
func newHTTPClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost: conns,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}
}

// httpError is a response outside 2xx.
type httpError struct {
	status int
	code   string // the API's error code, when the body has one
	msg    string
}

func (e *httpError) Error() string {
	if e.code != "" {
		return fmt.Sprintf("%d %s: %s", e.status, e.code, e.msg)
	}
	return fmt.Sprintf("HTTP %d", e.status)
}

func apiErr(status int, body []byte) *httpError {
	var b api.Error
	json.Unmarshal(body, &b)
	return &httpError{status: status, code: b.Error.Code, msg: b.Error.Message}
}

// raw sends the JSON body (nil for none) and reads the response into buf.
// It returns the status; transport failures are errors.
func (a *endpoint) raw(ctx context.Context, method, path, token string, body []byte, buf *bytes.Buffer) (int, error) {
	return a.send(ctx, method, path, token, api.MediaJSON, body, buf)
}

// rawCBOR is raw for a CBOR body (nil for none), asking for a CBOR answer:
// how devices call the endpoints that carry links.
func (a *endpoint) rawCBOR(ctx context.Context, method, path, token string, body []byte, buf *bytes.Buffer) (int, error) {
	return a.send(ctx, method, path, token, api.MediaCBOR, body, buf)
}

func (a *endpoint) send(ctx context.Context, method, path, token, media string, body []byte, buf *bytes.Buffer) (int, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", media)
	}
	if media == api.MediaCBOR {
		req.Header.Set("Accept", api.MediaCBOR)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	buf.Reset()
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return resp.StatusCode, err
	}
	return resp.StatusCode, nil
}

// call sends in (unless nil) as JSON, or as CBOR for the api types that
// travel so, and decodes a 2xx response into out (unless nil); other
// statuses are *httpError.
func (a *endpoint) call(ctx context.Context, method, path, token string, in, out any) error {
	media := api.MediaJSON
	if _, ok := in.(api.CBORBody); ok {
		media = api.MediaCBOR
	}
	var body []byte
	if in != nil {
		body = encode(in)
	}
	var buf bytes.Buffer
	status, err := a.send(ctx, method, path, token, media, body, &buf)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if status/100 != 2 {
		return fmt.Errorf("%s %s: %w", method, path, apiErr(status, buf.Bytes()))
	}
	if out != nil {
		if media == api.MediaCBOR {
			err = api.UnmarshalCBOR(buf.Bytes(), out)
		} else {
			err = json.Unmarshal(buf.Bytes(), out)
		}
		if err != nil {
			return fmt.Errorf("%s %s: decoding the response: %w", method, path, err)
		}
	}
	return nil
}

// encode returns the body of in: CBOR for the api types that travel so,
// JSON otherwise.
func encode(in any) []byte {
	var (
		b   []byte
		err error
	)
	if _, ok := in.(api.CBORBody); ok {
		b, err = api.MarshalCBOR(in)
	} else {
		b, err = json.Marshal(in)
	}
	if err != nil {
		panic(err)
	}
	return b
}

// requestID returns the request id of an enrollment answer in CBOR.
func requestID(body []byte) string {
	var e api.Enrollment
	if api.UnmarshalCBOR(body, &e) != nil {
		return ""
	}
	return e.RequestID
}

// describe turns a failed request into a short, stable error message for
// the report: the status and error code, or the transport error.
func describe(status int, body []byte, err error) string {
	if err != nil {
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			return "timeout"
		case strings.Contains(err.Error(), "connection refused"):
			return "connection refused"
		case strings.Contains(err.Error(), "connection reset"):
			return "connection reset"
		}
		return err.Error()
	}
	e := apiErr(status, body)
	if e.code == "" {
		return fmt.Sprintf("HTTP %d", status)
	}
	return fmt.Sprintf("%d %s", status, e.code)
}
