package load

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/enigm/enigm/command"
	"github.com/enigm/enigm/command/store"
	"github.com/enigm/enigm/command/store/storetest"
	"github.com/enigm/enigm/internal/testkit"
)

// The trivial server of the device-list scenario is this test binary
// started again.
func TestMain(m *testing.M) {
	RunChild()
	os.Exit(m.Run())
}

// serve starts an in-process Command on dsn and returns its URL.
func serve(t *testing.T, dsn string) string {
	t.Helper()
	cfg := command.Config{
		DataDir:            t.TempDir(),
		KeystorePassphrase: []byte("test"),
		KeystoreBackend:    testkit.SoftBackend,
		Logger:             slog.New(slog.NewTextHandler(io.Discard, nil)),
		RateLimits:         &command.RateLimits{Disabled: true},
		JanitorInterval:    -1,
	}
	if store.IsPostgresURL(dsn) {
		cfg.DatabaseURL = dsn
	} else {
		cfg.DataDir = strings.TrimSuffix(dsn, "/"+command.DBFile)
	}
	srv, err := command.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done; srv.Close() })
	return "http://" + ln.Addr().String()
}

// small is a run of a couple of seconds: a smoke test of every scenario,
// not a measurement.
func small(servers ...string) *Options {
	return &Options{Servers: servers, Label: "test", Scenarios: allScenarios, Instances: 1,
		Duration: 400 * time.Millisecond, Concurrency: 2, Devices: 3, Enrollments: 12, Workers: 3,
		Rounds: 1, Senders: 2, RevokeWarm: 300 * time.Millisecond, RevokeTail: 300 * time.Millisecond}
}

// check asserts what every run must show, whatever the machine's speed:
// no errors, every enrollment completed, and nothing delivered to the
// revoked device after its revocation was accepted.
func check(t *testing.T, res *Result, opt *Options) {
	t.Helper()
	d, e, v := res.Devices, res.Enroll, res.Revoke
	if d == nil || e == nil || v == nil {
		t.Fatalf("missing results: %+v", res)
	}
	if d.Server.Requests == 0 || d.Trivial.Requests == 0 || d.Server.Errors+d.Trivial.Errors != 0 || d.Ratio <= 0 || d.Devices != opt.Devices {
		t.Fatalf("device list: %+v", d)
	}
	if d.Server.Latency.N != int(d.Server.Requests) || d.Server.Latency.P50 <= 0 || d.Server.Latency.P99 < d.Server.Latency.P50 {
		t.Fatalf("device list latencies: %+v", d.Server.Latency)
	}
	if e.Enrollments != int64(opt.Enrollments) || e.Errors != 0 || e.Bound <= 0 || e.Verifications != 3 || e.Latency.N != opt.Enrollments {
		t.Fatalf("enrollments: %+v", e)
	}
	if !v.Zero() || v.Sends == 0 || v.LoginRefused != opt.Rounds || len(v.SyncMs) != opt.Rounds || len(v.RevokeMs) != opt.Rounds {
		t.Fatalf("revocation: %+v", v)
	}
	for answer := range v.FetchAnswers {
		if answer == "200 ok" {
			t.Fatalf("a fetch by the revoked device succeeded after its revocation: %v", v.FetchAnswers)
		}
	}
}

func TestSmokeSQLite(t *testing.T) {
	opt := small(serve(t, storetest.SQLiteDSN(t)))
	res, err := Run(context.Background(), opt, io.Discard, false)
	if err != nil {
		t.Fatal(err)
	}
	check(t, res, opt)
}

// Two instances over one PostgreSQL database: the revocation goes to the
// first, the revoked device fetches and the other device syncs through
// the second.
func TestSmokePostgresTwoInstances(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	opt := small(serve(t, dsn), serve(t, dsn))
	res, err := Run(context.Background(), opt, io.Discard, false)
	if err != nil {
		t.Fatal(err)
	}
	check(t, res, opt)
	if res.Revoke.Instances != 2 {
		t.Fatalf("revocation ran on %d instances", res.Revoke.Instances)
	}
}

// The command line: the output formats, and usage errors.
func TestCommandLine(t *testing.T) {
	url := serve(t, storetest.SQLiteDSN(t))
	base := []string{"--server", url, "--duration", "200ms", "--concurrency", "1", "--devices", "2", "devices"}
	var out, errb bytes.Buffer
	if code := Main(context.Background(), append([]string{"--json"}, base...), &out, &errb, false); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var res Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || res.Version != 1 || res.Devices == nil || res.Enroll != nil {
		t.Fatalf("JSON output %s: %v", out.String(), err)
	}
	// The progress line went to stderr, the results to stdout.
	if !strings.Contains(errb.String(), "[devices/server]") || !strings.Contains(errb.String(), "errors 0") {
		t.Fatalf("no progress line on stderr: %q", errb.String())
	}
	out.Reset()
	writeMarkdown(&out, &res)
	if !strings.Contains(out.String(), "| **ratio** |") || !strings.Contains(out.String(), "Command: `") {
		t.Fatalf("Markdown output: %s", out.String())
	}
	out.Reset()
	writeText(&out, &res)
	if !strings.Contains(out.String(), "ratio") {
		t.Fatalf("text output: %s", out.String())
	}
	for _, args := range [][]string{
		{"bogus"},
		{"--instances", "2"},
		{"--workers", "0"},
		{"--json", "--markdown"},
		{"--no-such-flag"},
	} {
		errb.Reset()
		if code := Main(context.Background(), args, io.Discard, &errb, false); code != 2 {
			t.Fatalf("%v: exit %d, want 2 (%s)", args, code, errb.String())
		}
	}
	out.Reset()
	if code := Main(context.Background(), []string{"--help"}, &out, io.Discard, false); code != 0 || !strings.Contains(out.String(), "examples:") {
		t.Fatalf("--help (%d): %s", code, out.String())
	}
}
