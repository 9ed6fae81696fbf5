package commandcli

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/internal/clikit"
	"github.com/enigm/enigm/translog"
	"github.com/enigm/enigm/translog/monitor"
)

// ExitFindings: `monitor --once` found something (printed as JSON lines).
const ExitFindings = 5

type monitorOpts struct {
	state       string
	origin      string
	logKeys     []string
	witnessKeys []string
	maxAge      time.Duration
	interval    time.Duration
	once        bool
}

func init() {
	register(func(c *ctx) *clikit.Command {
		o := &monitorOpts{}
		return &clikit.Command{
			Path: "monitor", Group: "server", Usage: "URL [--state DIR] [--log-key VKEY]... [--origin ORIGIN] [--witness-key VKEY]... [--max-age D] [--once]",
			Summary: "follow an Enigm Command's transparency log and report what is wrong with it",
			Help: `Follows the transparency log that the Enigm Command server at URL publishes
under URL/log/ (c2sp.org/tlog-tiles), from its checkpoint, hash tiles and
entry bundles alone, and checks:

  - every checkpoint is signed by every pinned log key (Ed25519 and
    ML-DSA-44);
  - every new checkpoint extends the last one verified: no smaller tree
    (rollback), no other root at the same size, a consistency proof from
    the hash tiles that verifies (fork);
  - the entry bundles hash to the checkpoint's root, and the hash tiles hold
    the hashes the entries give;
  - every leaf is a chain link that the account's previous links accept
    (chain.Apply, signatures included), never a second link at one account
    and sequence number;
  - every map leaf (enigm.map/v1) names its own index and commits to the
    map of every account's newest link in the leaves before it (the
    monitor recomputes that sparse Merkle map and compares roots: a map
    that names an old head, leaves an account out or is made up is
    map_leaf_invalid, reason root), and every checkpoint ends in its map
    leaf (reason missing), which freshness proofs are made from;
  - the checkpoint is not stale (below).

Each finding is one JSON object on a line of stdout, with "version": 1 and a
"kind": inconsistent_checkpoint (reason rollback or fork), bad_signature,
bad_entry_bundle, bad_tile, link_invalid (with the chain's "code"), duplicate_link,
map_leaf_invalid (reason malformed, size, root or missing), stale_checkpoint; "checkpoint" lines are progress: a new
checkpoint verified. Progress while catching up goes to stderr.

Stale: with --max-age D (default 1h; 0 turns it off) a checkpoint is stale
when the server has served exactly the same checkpoint bytes for longer
than D as this monitor saw it, or, with --witness-key, when no cosignature
of those witnesses on it verifies with a timestamp within D. A quiet log
that makes no new checkpoint and has no witnesses refreshing their
cosignatures goes stale by the first rule: set D above its quiet time.

Trust on first use: the state directory (--state, SQLite) pins the log's
origin and keys at the first run. Give them with --log-key (repeatable,
name+hash+base64 as "enigm-command log public-key" prints them; the name is
the origin) to trust nothing from the server; with only --origin, the keys
are taken from the server's GET /v1/info at the first run, so a server that
is already hostile then can pin its own keys. Later runs check against the
pinned keys and refuse other ones. The state also keeps the last verified
checkpoint, the compact range of the leaves and each account's head (and
its newest logged link where the monitor refused that link), so a run
resumes where the last stopped; the map is rebuilt from those heads at the
first map leaf of each run.

Links of accounts whose policy requires verified hardware attestation are
reported as link_invalid (attestation_required): this command has no
attestation roots.

Without --once it checks every --interval until interrupted; with --once it
checks once and exits 5 if it reported any finding.

examples:
  enigm-command monitor https://command.example --origin enigm-command/0123456789abcdef --once
  enigm-command monitor https://command.example --log-key "$(enigm-command log public-key | head -1)" --log-key "$(enigm-command log public-key | tail -1)"
  enigm-command monitor https://command.example --state /var/lib/enigm-monitor --max-age 2h --witness-key w.example+1a2b3c4d+BA...`,
			Args: 1,
			Flags: func(fs *pflag.FlagSet) {
				fs.StringVar(&o.state, "state", "./enigm-monitor", "state `DIR` (SQLite): the pinned keys, the verified checkpoint, the accounts' heads")
				fs.StringVar(&o.origin, "origin", "", "the log's `ORIGIN` (needed at the first run without --log-key)")
				fs.StringArrayVar(&o.logKeys, "log-key", nil, "a log note verifier `VKEY` to pin (repeat for both; default: pinned, or GET /v1/info at the first run)")
				fs.StringArrayVar(&o.witnessKeys, "witness-key", nil, "a witness cosignature verifier `VKEY` whose timestamps must be within --max-age (repeatable)")
				fs.DurationVar(&o.maxAge, "max-age", time.Hour, "how long a checkpoint may stay the same (or its witness cosignatures be old) before it is stale; 0: never")
				fs.DurationVar(&o.interval, "interval", 10*time.Second, "time between checks without --once")
				fs.BoolVar(&o.once, "once", false, "check once; exit 5 if anything was found")
			},
			Run: c.do(func(c *ctx) error { return runMonitor(c, o) }),
		}
	})
}

// findingJSON is one JSON line of monitor.
type findingJSON struct {
	Version      int     `json:"version"`
	Kind         string  `json:"kind"`
	Reason       string  `json:"reason,omitempty"`
	Message      string  `json:"message"`
	Size         uint64  `json:"size"`
	Root         string  `json:"root,omitempty"`
	PreviousSize *uint64 `json:"previous_size,omitempty"`
	PreviousRoot string  `json:"previous_root,omitempty"`
	Index        *uint64 `json:"index,omitempty"`
	FirstIndex   *uint64 `json:"first_index,omitempty"`
	Account      string  `json:"account,omitempty"`
	Seq          *uint64 `json:"seq,omitempty"`
	Code         string  `json:"code,omitempty"`
	Since        string  `json:"since,omitempty"`
}

func findingLine(f monitor.Finding) []byte {
	j := findingJSON{Version: 1, Kind: string(f.Kind), Reason: f.Reason, Message: f.Message, Size: f.Size,
		Index: f.Index, FirstIndex: f.FirstIndex, Seq: f.Seq, Code: f.Code}
	if f.Root != nil {
		j.Root = hex.EncodeToString(f.Root)
	}
	if f.PreviousRoot != nil {
		p := f.PreviousSize
		j.PreviousSize, j.PreviousRoot = &p, hex.EncodeToString(f.PreviousRoot)
	}
	if f.Account != nil {
		j.Account = f.Account.String()
	}
	if !f.Since.IsZero() {
		j.Since = f.Since.UTC().Format(time.RFC3339)
	}
	b, _ := json.Marshal(j)
	return append(b, '\n')
}

func runMonitor(c *ctx, o *monitorOpts) error {
	u, err := url.Parse(c.args[0])
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usagef("monitor: %q is not the http(s) URL of an Enigm Command server", c.args[0])
	}
	base := strings.TrimSuffix(u.String(), "/")
	if o.interval <= 0 {
		return usagef("--interval must be positive")
	}
	if o.maxAge < 0 {
		return usagef("--max-age must not be negative")
	}
	for _, k := range o.logKeys {
		name, _, _ := strings.Cut(k, "+")
		if o.origin == "" {
			o.origin = name
		}
		if name != o.origin {
			return usagef("--log-key %q is named %q, the log is %q: a log's keys are named by its origin", k, name, o.origin)
		}
		if _, err := translog.VerifyCheckpoint(nil, name, []string{k}); errors.Is(err, translog.ErrBadKey) {
			return usagef("--log-key: %s", clikit.Message(err))
		}
	}
	for _, k := range o.witnessKeys {
		if _, err := translog.Cosignatures(nil, []string{k}); errors.Is(err, translog.ErrBadKey) {
			return usagef("--witness-key: %s", clikit.Message(err))
		}
	}
	st, err := monitor.OpenStore(o.state)
	if err != nil {
		return err
	}
	defer st.Close()
	hc := &http.Client{Timeout: time.Minute}
	cfg := monitor.Config{Fetcher: monitor.HTTPFetcher(base+"/log/", hc), Store: st, Origin: o.origin, LogKeys: o.logKeys,
		WitnessKeys: o.witnessKeys, MaxAge: o.maxAge,
		Report: func(f monitor.Finding) { c.Stdout.Write(findingLine(f)) }}
	lastProgress := time.Time{}
	cfg.Progress = func(p monitor.Progress) {
		if p.Done < p.Total && time.Since(lastProgress) < time.Second {
			return
		}
		lastProgress = time.Now()
		fmt.Fprintf(c.Stderr, "monitor: %d/%d leaves verified (%.0f%%), %.0f leaves/s\n", p.Done, p.Total, 100*float64(p.Done)/float64(max(p.Total, 1)), p.Rate)
	}
	pinned, _, err := st.Pinned(c)
	if err != nil {
		return err
	}
	if pinned == "" && len(o.logKeys) == 0 && o.origin != "" {
		// Trust on first use: the keys the server advertises.
		cl, err := client.New(base, hc)
		if err != nil {
			return err
		}
		info, err := cl.Info(c)
		if err != nil {
			return fmt.Errorf("fetching the log keys from %s/v1/info: %w", base, err)
		}
		if info.Log == nil {
			return fmt.Errorf("%s publishes no transparency log (GET /v1/info has no log)", base)
		}
		if info.Log.Origin != o.origin {
			return fmt.Errorf("%s publishes the log %q, not %q", base, info.Log.Origin, o.origin)
		}
		fmt.Fprintf(c.Stderr, "monitor: pinning the %d log keys %s advertises for %s (trust on first use)\n", len(info.Log.PublicKeys), base, o.origin)
		cfg.LogKeys = info.Log.PublicKeys
	}
	m, err := monitor.New(c, cfg)
	if err != nil {
		return err
	}
	for {
		err := m.Check(c)
		if o.once {
			if err != nil {
				return err
			}
			if m.Problems() > 0 {
				return clikit.Exit(ExitFindings)
			}
			return nil
		}
		if err != nil {
			if c.Err() != nil {
				return c.Err()
			}
			fmt.Fprintf(c.Stderr, "monitor: %s (trying again in %v)\n", clikit.Message(err), o.interval)
		}
		select {
		case <-c.Done():
			return c.Err()
		case <-time.After(o.interval):
		}
	}
}
