// Package commandtest runs Enigm Command for the tests of other packages
// (devices, monitors, the CLIs). It is imported only by tests.
package commandtest

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/enigm/enigm/command"
)

// Serve starts Command with cfg behind an HTTP server for the rest of the
// test and returns its URL. A nil cfg.Logger discards the server's log.
func Serve(t testing.TB, cfg command.Config) string {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	srv, err := command.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { hs.Close(); srv.Close() })
	return hs.URL
}
