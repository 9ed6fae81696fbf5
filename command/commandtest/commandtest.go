// Package commandtest runs Enigm Command for the tests of other packages
// (devices, monitors, the CLIs). It is imported only by tests.
package commandtest

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/enigm/enigm/command"
)

// Serve starts Command with cfg behind an HTTP server for the rest of the
// test and returns its URL. A nil cfg.Logger discards the server's log.
func Serve(t testing.TB, cfg command.Config) string {
	t.Helper()
	url, stop, err := start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return url
}

// ServeScript is Serve for a CLI transcript: it starts Command with cfg
// behind an HTTP server for the rest of the script and points the
// script's $ENIGM_SERVER at it.
func ServeScript(ts *testscript.TestScript, cfg command.Config) {
	url, stop, err := start(cfg)
	ts.Check(err)
	ts.Defer(stop)
	ts.Setenv("ENIGM_SERVER", url)
}

// start starts Command with cfg (a nil cfg.Logger discards its log)
// behind an HTTP server; stop closes both.
func start(cfg command.Config) (url string, stop func(), err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	srv, err := command.New(cfg)
	if err != nil {
		return "", nil, err
	}
	hs := httptest.NewServer(srv.Handler())
	return hs.URL, func() { hs.Close(); srv.Close() }, nil
}
