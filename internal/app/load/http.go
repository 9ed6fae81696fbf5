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
)

// api talks to one Command server (or the trivial server) over HTTP/1.1
// keep-alive connections. Timed phases send pre-encoded bodies and read
// responses into a worker's buffer, so that the generator spends as
// little CPU as it can per request.
type api struct {
	hc   *http.Client
	base string
}

func newAPI(base string, hc *http.Client) *api {
	return &api{hc: hc, base: strings.TrimRight(base, "/")}
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
	var b struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	json.Unmarshal(body, &b)
	return &httpError{status: status, code: b.Error.Code, msg: b.Error.Message}
}

// raw sends body (nil for none) and reads the response into buf. It
// returns the status; transport failures are errors.
func (a *api) raw(ctx context.Context, method, path, token string, body []byte, buf *bytes.Buffer) (int, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
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

// call sends in as JSON (unless nil) and decodes a 2xx response into out
// (unless nil); other statuses are *httpError.
func (a *api) call(ctx context.Context, method, path, token string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	var buf bytes.Buffer
	status, err := a.raw(ctx, method, path, token, body, &buf)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if status/100 != 2 {
		return fmt.Errorf("%s %s: %w", method, path, apiErr(status, buf.Bytes()))
	}
	if out != nil {
		if err := json.Unmarshal(buf.Bytes(), out); err != nil {
			return fmt.Errorf("%s %s: decoding the response: %w", method, path, err)
		}
	}
	return nil
}

// jsonField returns the string value of the first "name":"…" in a JSON
// body without decoding all of it (the timed phases need one id from a
// large response).
func jsonField(body []byte, name string) string {
	key := `"` + name + `":"`
	i := bytes.Index(body, []byte(key))
	if i < 0 {
		return ""
	}
	rest := body[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return string(rest[:j])
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
