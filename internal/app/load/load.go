// Package load is enigm-load, the load tool of Enigm Command: it starts
// `enigm-command serve` (or uses running servers), drives the API the way
// devices do, and measures the speed goals of the server against what the
// same machine can do in the same run.
//
// # Scenarios
//
//   - devices: GET /v1/accounts/{id}/devices (the chain with the device
//     list, what a device fetches to verify) against a trivial net/http
//     server writing the same bytes from memory; throughput ratio and
//     latency percentiles of both.
//   - enroll: enrollment completions per second (request, approval,
//     completion of one new device per account, every client signature
//     made ahead) against the bound set by the hybrid signature
//     verifications an enrollment needs, timed on this machine.
//   - revoke: envelopes delivered to a device after its revocation was
//     accepted (must be none) under concurrent sending, and the time until
//     another device's sync lists the revocation.
//
// While a phase runs, a live line on stderr shows the elapsed time, the
// requests done, the current rate and the errors. The CPU time of the
// server processes, of local PostgreSQL processes and of the generator
// itself is measured from /proc for every timed phase.
package load

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/enigm/enigm/hybrid"
)

// Options configures a run.
type Options struct {
	Servers     []string      // URLs of running servers; empty: start them
	Command     string        // enigm-command binary to start
	DB          string        // postgres:// URL for the started servers; empty: SQLite
	PGCluster   bool          // start a throwaway PostgreSQL cluster for the run
	Instances   int           // servers to start (PostgreSQL only)
	Label       string        // engine label for the report
	LogLevel    string        // log level of the started servers
	Scenarios   []string      // devices, enroll, revoke
	Duration    time.Duration // device list: timed phase per server
	Concurrency int           // device list: clients
	Segments    int           // device list: alternating rounds the timed phase is cut into
	Devices     int           // device list: devices of the account
	Enrollments int           // enroll: enrollments in the timed phase
	Workers     int           // enroll: concurrent enrollments
	Rounds      int           // revoke: rounds
	Senders     int           // revoke: sending devices
	Keep        bool          // keep the temporary directory
	JSON        bool          // print the results as JSON
	Markdown    bool          // print the results as Markdown tables

	// RevokeWarm and RevokeTail are the traffic before and after the
	// revocation in each round (defaults 700ms and 1s; tests shorten them).
	RevokeWarm, RevokeTail time.Duration
}

// Result is everything a run measured.
type Result struct {
	Version   int               `json:"version"`
	Engine    string            `json:"engine"`
	Database  string            `json:"database,omitempty"` // e.g. the PostgreSQL version of --pg-cluster
	Machine   Machine           `json:"machine"`
	Command   string            `json:"command"`
	Started   time.Time         `json:"started"`
	Devices   *DeviceListResult `json:"devices,omitempty"`
	Enroll    *EnrollResult     `json:"enroll,omitempty"`
	Revoke    *RevokeResult     `json:"revoke,omitempty"`
	Instances int               `json:"instances"`
}

var allScenarios = []string{"devices", "enroll", "revoke"}

const usage = `enigm-load drives Enigm Command the way devices do and measures the speed
goals of issue 4 against what this machine does in the same run.

usage: enigm-load [flags] [devices] [enroll] [revoke]     (default: all three)

It starts enigm-command serve (the binary next to enigm-load, in $PATH, or
--command) on loopback with rate limits off, in a temporary data directory:
SQLite there, or PostgreSQL with --db or --pg-cluster (a throwaway cluster it
starts and stops), several instances with --instances.
The server runs in its own process so that its CPU time is measured apart
from the generator's. With --server it uses running servers instead.

Scenarios:
  devices  GET /v1/accounts/{id}/devices of a --devices-device account, by
           --concurrency clients over keep-alive connections, against a trivial
           net/http server writing the same bytes from memory; alternating,
           --duration each. Goal: throughput ratio >= 0.5; p50/p99 of both.
  enroll   --enrollments enrollments (request, approval, completion) by
           --workers workers; every client signature is made before the timed
           phase. Goal: completions/s >= 0.5 x the bound set by the 3 hybrid
           verifications an enrollment needs, timed here.
  revoke   --rounds rounds: --senders devices send to B and C, B fetches, C
           syncs, A revokes B. Goal: no envelope reaches B after the revocation
           is accepted; reports when C's sync shows it.

A live line on stderr shows elapsed time, requests done, current rate and
errors. The results go to stdout (text, --markdown or --json).

examples:
  go build -o bin/ ./cmd/enigm-command ./cmd/enigm-load
  bin/enigm-load                                          # SQLite, all scenarios
  bin/enigm-load --pg-cluster --instances 2 --markdown    # a throwaway PostgreSQL
  bin/enigm-load --db postgres://postgres@127.0.0.1:5432/enigm --instances 2
  bin/enigm-load --duration 5s devices
  bin/enigm-load --server http://127.0.0.1:8470 --label sqlite enroll

flags:
`

// Main runs enigm-load with args (without the program name) and returns
// the exit code: 0, 1 when the run failed, 2 for a usage error.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, tty bool) int {
	opt, err := parseFlags(args, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "enigm-load: %v\n", err)
		return 2
	}
	res, err := Run(ctx, opt, stderr, tty)
	if res != nil {
		switch {
		case opt.JSON:
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			enc.Encode(res)
		case opt.Markdown:
			writeMarkdown(stdout, res)
		default:
			writeText(stdout, res)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "enigm-load: %v\n", err)
		return 1
	}
	return 0
}

func parseFlags(args []string, stdout, stderr io.Writer) (*Options, error) {
	fs := flag.NewFlagSet("enigm-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	opt := &Options{}
	servers := fs.String("server", "", "use the running server(s) at `URL[,URL…]` instead of starting enigm-command")
	fs.StringVar(&opt.Command, "command", "", "enigm-command binary to start (`PATH`; default: next to enigm-load, then $PATH)")
	fs.StringVar(&opt.DB, "db", "", "PostgreSQL `URL` for the servers it starts (default: SQLite in the temporary data directory)")
	fs.BoolVar(&opt.PGCluster, "pg-cluster", false, "start a throwaway PostgreSQL cluster (initdb, default durability) in the temporary directory and use it")
	fs.IntVar(&opt.Instances, "instances", 1, "servers to start over the same PostgreSQL database")
	fs.StringVar(&opt.Label, "label", "", "engine label for the report (default: sqlite or postgres from --db)")
	fs.StringVar(&opt.LogLevel, "server-log-level", "info", "log level of the servers it starts (their logs go to the data directory)")
	fs.DurationVar(&opt.Duration, "duration", 10*time.Second, "devices: timed phase against each server")
	fs.IntVar(&opt.Concurrency, "concurrency", 8, "devices: concurrent clients")
	fs.IntVar(&opt.Segments, "segments", 8, "devices: alternating rounds (server, trivial) the timed phase is cut into; the report gives the spread of their ratios")
	fs.IntVar(&opt.Devices, "devices", 4, "devices: devices of the account whose list is fetched")
	fs.IntVar(&opt.Enrollments, "enrollments", 4000, "enroll: enrollments in the timed phase")
	fs.IntVar(&opt.Workers, "workers", 64, "enroll: concurrent enrollments")
	fs.IntVar(&opt.Rounds, "rounds", 5, "revoke: rounds")
	fs.IntVar(&opt.Senders, "senders", 4, "revoke: devices sending to the device that is revoked")
	fs.BoolVar(&opt.Keep, "keep", false, "keep the temporary data directory (server logs, SQLite database)")
	fs.BoolVar(&opt.JSON, "json", false, `print the results as JSON (with "version": 1)`)
	fs.BoolVar(&opt.Markdown, "markdown", false, "print the results as Markdown tables (for docs/perf.md)")
	fs.Usage = func() {
		fmt.Fprint(stdout, usage)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fs.SetOutput(stderr)
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if *servers != "" {
		opt.Servers = strings.Split(*servers, ",")
	}
	opt.Scenarios = fs.Args()
	if len(opt.Scenarios) == 0 {
		opt.Scenarios = allScenarios
	}
	for _, s := range opt.Scenarios {
		if !slices.Contains(allScenarios, s) {
			return nil, fmt.Errorf("unknown scenario %q (devices, enroll, revoke)", s)
		}
	}
	switch {
	case opt.Instances < 1:
		return nil, errors.New("--instances must be at least 1")
	case opt.Instances > 1 && opt.DB == "" && !opt.PGCluster && opt.Servers == nil:
		return nil, errors.New("--instances > 1 needs PostgreSQL (--db or --pg-cluster): SQLite serves one instance")
	case opt.PGCluster && (opt.DB != "" || opt.Servers != nil):
		return nil, errors.New("--pg-cluster excludes --db and --server")
	case opt.Duration <= 0 || opt.Concurrency < 1 || opt.Segments < 1 || opt.Devices < 1 || opt.Enrollments < 1 || opt.Workers < 1 || opt.Rounds < 1 || opt.Senders < 1:
		return nil, errors.New("--duration, --concurrency, --devices, --enrollments, --workers, --rounds and --senders must be positive")
	case opt.JSON && opt.Markdown:
		return nil, errors.New("--json and --markdown exclude each other")
	}
	return opt, nil
}

// run is one invocation: the servers and what the scenarios share.
type run struct {
	opt      *Options
	stderr   io.Writer
	tty      bool
	dir      string
	prefix   string // account names: load-<random>-…
	hc       *http.Client
	apis     []*endpoint
	servers  []*child
	postgres bool // count local postgres processes
	recovery *hybrid.PrivateKey
}

func (r *run) name(s string) string { return r.prefix + s }

func (r *run) serverPIDs() []int {
	var out []int
	for _, s := range r.servers {
		out = append(out, s.pid())
	}
	return out
}

// Run starts the servers (unless opt.Servers), runs the scenarios and
// returns what they measured; the result holds what finished even when
// an error stops the run.
func Run(ctx context.Context, opt *Options, stderr io.Writer, tty bool) (*Result, error) {
	r := &run{opt: opt, stderr: stderr, tty: tty}
	var b [4]byte
	rand.Read(b[:])
	r.prefix = "load-" + hex.EncodeToString(b[:]) + "-"
	seed := make([]byte, hybrid.SeedSize)
	rand.Read(seed)
	var err error
	if r.recovery, err = hybrid.NewPrivateKey(seed); err != nil {
		return nil, err
	}
	if r.dir, err = os.MkdirTemp("", "enigm-load-"); err != nil {
		return nil, err
	}
	if opt.Keep {
		fmt.Fprintf(stderr, "enigm-load: data directory %s (kept)\n", r.dir)
	} else {
		defer os.RemoveAll(r.dir)
	}
	conns := max(opt.Concurrency, opt.Workers, opt.Senders+2) * 2
	r.hc = newHTTPClient(conns)
	defer r.hc.CloseIdleConnections()

	res := &Result{Version: 1, Machine: machine(), Command: "enigm-load " + strings.Join(os.Args[1:], " "), Started: time.Now().UTC()}
	if opt.PGCluster {
		pg, err := startPGCluster(r.dir)
		if err != nil {
			return nil, err
		}
		defer pg.stop()
		o := *opt
		o.DB = pg.URL
		opt, r.opt = &o, &o
		res.Database = pg.version() + " (throwaway cluster, default settings)"
		fmt.Fprintf(stderr, "enigm-load: %s on %s\n", res.Database, pg.URL)
	}
	res.Engine = opt.Label
	if res.Engine == "" {
		res.Engine = "sqlite"
		if opt.DB != "" {
			res.Engine = "postgres"
		}
	}
	r.postgres = opt.DB != "" && isLocal(opt.DB)

	if len(opt.Servers) > 0 {
		for _, u := range opt.Servers {
			r.apis = append(r.apis, newAPI(u, r.hc))
		}
	} else {
		bin, err := findCommand(opt.Command)
		if err != nil {
			return nil, err
		}
		defer r.stopServers()
		for i := range opt.Instances {
			s, err := startServer(bin, r.dir, opt.DB, opt.LogLevel, i)
			if err != nil {
				return nil, err
			}
			r.servers = append(r.servers, s)
			r.apis = append(r.apis, newAPI(s.url, r.hc))
			fmt.Fprintf(stderr, "enigm-load: enigm-command #%d (pid %d) on %s, %s\n", i, s.pid(), s.url, res.Engine)
		}
	}
	res.Instances = len(r.apis)
	if err := r.waitHealthy(ctx); err != nil {
		return nil, err
	}
	for _, sc := range opt.Scenarios {
		var err error
		switch sc {
		case "devices":
			res.Devices, err = r.runDevices(ctx)
		case "enroll":
			res.Enroll, err = r.runEnroll(ctx)
		case "revoke":
			res.Revoke, err = r.runRevoke(ctx)
		}
		if err != nil {
			return res, fmt.Errorf("%s: %w", sc, err)
		}
	}
	return res, nil
}

func (r *run) stopServers() {
	for _, s := range r.servers {
		if err := s.stop(); err != nil {
			fmt.Fprintf(r.stderr, "enigm-load: stopping %s: %v\n", s.name, err)
		}
	}
}

// waitHealthy waits until every server answers /healthz.
func (r *run) waitHealthy(ctx context.Context) error {
	for _, c := range r.apis {
		deadline := time.Now().Add(30 * time.Second)
		for {
			err := c.call(ctx, "GET", "/healthz", "", nil, nil)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s is not healthy: %w", c.base, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// isLocal reports whether a database URL names this machine (so that its
// processes' CPU time can be counted).
func isLocal(url string) bool {
	for _, h := range []string{"@127.", "@localhost", "@[::1]", "//127.", "//localhost", "//[::1]"} {
		if strings.Contains(url, h) {
			return true
		}
	}
	return strings.Contains(url, "host=/") // a Unix socket
}
