package commandcli

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/enigm/enigm/attestation"
	"github.com/enigm/enigm/backend/tpm/attest"
	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/command"
	"github.com/enigm/enigm/internal/clikit"
	"github.com/enigm/enigm/translog"
)

type serveOpts struct {
	listen, trustAK, bootState, logLevel           string
	logOrigin                                      string
	logInterval                                    time.Duration
	witnesses                                      []string
	enrollmentTTL, tokenTTL, minRecoveryDelay      time.Duration
	maxLinkAge, maxLinkSkew                        time.Duration
	devAllowZero, noRateLimit, minRecoveryDelaySet bool
	stateCacheMiB                                  int64
}

func init() {
	register(func(c *ctx) *clikit.Command {
		o := &serveOpts{}
		return &clikit.Command{
			Path: "serve", Group: "server", Usage: "[--listen ADDR] [--data DIR] [--db URL] [flags]",
			Summary: "run Enigm Command",
			Help: `Serves the Command API (docs/design/command-api.md) until SIGINT or SIGTERM,
then stops accepting connections, finishes the requests it accepted and closes
the database. The embedded default keeps a SQLite database in the data
directory; --db postgres://… uses PostgreSQL, where several instances can run
behind a load balancer. The schema is migrated at start; a database migrated
by a newer enigm-command is refused.

Accounts and organisation policies must choose a recovery waiting period of
at least --min-recovery-delay (default 1h), so that the account's devices can
see a pending recovery and veto it. Only a development server may accept a
zero delay, with --dev-allow-zero-recovery-delay (logged as a warning at start).
Links dated more than --max-link-skew after this server's clock are refused.

Organisation admin keys live in the keystore in the data directory, unlocked
with $ENIGM_COMMAND_PASSPHRASE (or a generated keystore.passphrase file).

Every accepted link is a leaf of the transparency log, published under /log/
(c2sp.org/tlog-tiles); new leaves are integrated every --log-interval and
each new checkpoint is signed by the log's Ed25519 and ML-DSA-44 keys. The keys are generated in the keystore at the
first start and sign nothing but this log's checkpoints; enigm-command log
public-key prints them. The log's origin (its key name) is --log-origin,
by default enigm-command/ followed by a fingerprint of the Ed25519 key; it
must not change once checkpoints are published. Each --witness URL=VKEY is
sent every new checkpoint (c2sp.org/tlog-witness add-checkpoint at
URL/add-checkpoint) and its cosignature, checked against VKEY, is served with
the checkpoint.
Logs are JSON on stderr; the listen address is printed on stdout. SIGTERM
stops it with exit 0; Ctrl-C (SIGINT) stops it the same way and exits 130.

examples:
  enigm-command serve
  enigm-command serve --listen 127.0.0.1:9000 --data /var/lib/enigm
  ENIGM_COMMAND_DB=postgres://enigm@db/enigm enigm-command serve --listen 0.0.0.0:8470
  enigm-command serve --min-recovery-delay 24h --enrollment-ttl 10m --json
  enigm-command serve --log-origin enigm.example.org/log --witness https://witness.example/=witness.example+1a2b3c4d+AQ…
  enigm-command serve --dev-allow-zero-recovery-delay   # development only`,
			Flags: func(fs *pflag.FlagSet) {
				fs.StringVar(&o.listen, "listen", "127.0.0.1:8470", "listen `ADDR` (host:port)")
				c.dataFlags(fs)
				fs.DurationVar(&o.enrollmentTTL, "enrollment-ttl", command.DefaultEnrollmentTTL, "how long an enrollment request stays open")
				fs.DurationVar(&o.tokenTTL, "token-ttl", command.DefaultTokenTTL, "lifetime of a device token")
				o.minRecoveryDelay = command.DefaultMinRecoveryDelay
				fs.Var(&setDuration{&o.minRecoveryDelay, &o.minRecoveryDelaySet}, "min-recovery-delay", "least recovery waiting period an account may choose (0 only with --dev-allow-zero-recovery-delay)")
				fs.BoolVar(&o.devAllowZero, "dev-allow-zero-recovery-delay", false, "DEVELOPMENT ONLY: accept recovery waiting periods of zero (no chance to veto); makes --min-recovery-delay default to 0")
				fs.DurationVar(&o.maxLinkAge, "max-link-age", command.DefaultMaxLinkAge, "refuse links dated earlier than this before now")
				fs.DurationVar(&o.maxLinkSkew, "max-link-skew", command.DefaultMaxLinkSkew, "refuse links dated later than this after now (at most 5m)")
				fs.BoolVar(&o.noRateLimit, "no-rate-limit", false, "disable the rate limits (load tests only)")
				fs.Int64Var(&o.stateCacheMiB, "state-cache-mib", command.DefaultStateCacheBytes>>20, "memory budget of the verified-state cache, in `MiB` (at least 1; least recently used accounts are verified again)")
				fs.StringVar(&o.trustAK, "trust-tpm-ak", "", "judge TPM attestation evidence against the attestation keys in `FILE` (hex, one per line; `enigm keystore attestation-key` prints a TPM's)")
				fs.StringVar(&o.bootState, "tpm-boot-state", "", "with --trust-tpm-ak: require a boot-state quote with PCR values allowed by `FILE` (JSON: {\"version\":1,\"allowed\":[{\"0\":\"<hex>\",\"7\":\"<hex>\"}]})")
				fs.StringVar(&o.logLevel, "log-level", "info", "log `LEVEL`: debug, info, warn, error")
				fs.StringVar(&o.logOrigin, "log-origin", "", "the transparency log's `ORIGIN` (default enigm-command/<Ed25519 log key fingerprint>)")
				fs.DurationVar(&o.logInterval, "log-interval", command.DefaultLogInterval, "how often new log leaves are integrated and a checkpoint is signed")
				fs.StringArrayVar(&o.witnesses, "witness", nil, "send each checkpoint to the tlog-witness at `URL=VKEY` (its submission prefix = its note verifier key; repeatable)")
			},
			Run: c.do(func(c *ctx) error { return runServe(c, o) }),
		}
	})
}

// setDuration is a duration flag that records whether it was given.
type setDuration struct {
	d   *time.Duration
	set *bool
}

func (s *setDuration) String() string {
	if s.d == nil {
		return ""
	}
	return s.d.String()
}

func (s *setDuration) Set(v string) error {
	d, err := time.ParseDuration(v)
	if err != nil {
		return err
	}
	*s.d, *s.set = d, true
	return nil
}

func (s *setDuration) Type() string { return "duration" }

func runServe(c *ctx, o *serveOpts) error {
	cfg := c.dataConfig()
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return usagef("--log-level: %v", err)
	}
	cfg.Logger = slog.New(slog.NewJSONHandler(c.Stderr, &slog.HandlerOptions{Level: level}))
	cfg.EnrollmentTTL = o.enrollmentTTL
	cfg.TokenTTL = o.tokenTTL
	cfg.MaxLinkAge = o.maxLinkAge
	cfg.MaxLinkSkew = o.maxLinkSkew
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"enrollment-ttl", o.enrollmentTTL}, {"token-ttl", o.tokenTTL}, {"max-link-age", o.maxLinkAge}, {"max-link-skew", o.maxLinkSkew}} {
		if d.v <= 0 {
			return usagef("--%s must be positive", d.name)
		}
	}
	if cfg.MaxLinkSkew > chain.MaxClockSkew || cfg.MaxLinkSkew%time.Second != 0 {
		return usagef("--max-link-skew must be whole seconds, at most %v", chain.MaxClockSkew)
	}
	cfg.MinRecoveryDelay = o.minRecoveryDelay
	cfg.DevAllowZeroRecoveryDelay = o.devAllowZero
	switch {
	case cfg.MinRecoveryDelay < 0:
		return usagef("--min-recovery-delay must not be negative")
	case cfg.DevAllowZeroRecoveryDelay && !o.minRecoveryDelaySet:
		cfg.MinRecoveryDelay = 0
	case cfg.MinRecoveryDelay == 0 && !cfg.DevAllowZeroRecoveryDelay:
		return usagef("--min-recovery-delay 0 lets a recovery complete before any device could veto it; use a positive delay (default %v), or --dev-allow-zero-recovery-delay on a development server", command.DefaultMinRecoveryDelay)
	}
	if o.stateCacheMiB < 1 || o.stateCacheMiB > 1<<30 {
		return usagef("--state-cache-mib must be between 1 and %d", int64(1<<30))
	}
	cfg.StateCacheBytes = o.stateCacheMiB << 20
	if o.noRateLimit {
		cfg.RateLimits = &command.RateLimits{Disabled: true}
	}
	if f := o.trustAK; f != "" {
		aks, err := readAKs(f)
		if err != nil {
			return err
		}
		v := &attestation.TPM{Trusted: aks}
		if bf := o.bootState; bf != "" {
			b, err := os.ReadFile(bf)
			if err != nil {
				return err
			}
			if v.Boot, err = attestation.ParseBootState(b); err != nil {
				return fmt.Errorf("--tpm-boot-state %s: %w", bf, err)
			}
		}
		cfg.AttestationVerifier = v
	} else if o.bootState != "" {
		return usagef("--tpm-boot-state needs --trust-tpm-ak: the boot-state quote is judged with the TPM evidence")
	}
	if o.logInterval <= 0 {
		return usagef("--log-interval must be positive")
	}
	cfg.LogInterval = o.logInterval
	cfg.LogOrigin = o.logOrigin
	for _, w := range o.witnesses {
		wt, err := parseWitness(w)
		if err != nil {
			return err
		}
		cfg.LogWitnesses = append(cfg.LogWitnesses, wt)
	}
	if c.Env.Config != nil {
		c.Env.Config(&cfg)
	}
	if cfg.LogSigner == nil {
		signer, err := command.LogSigner(c, cfg)
		if err != nil {
			return err
		}
		cfg.LogSigner = signer
	}
	srv, err := command.New(cfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", o.listen, err)
	}
	addr := ln.Addr().String()
	url := "http://" + addr
	if c.json {
		writeJSON(c.Stdout, struct {
			Listen string `json:"listen"`
			URL    string `json:"url"`
		}{addr, url})
	} else {
		fmt.Fprintf(c.Stdout, "enigm-command: listening on %s\n", url)
	}
	if !strings.HasPrefix(addr, "127.") && !strings.HasPrefix(addr, "[::1]") {
		cfg.Logger.Warn("listening beyond loopback without TLS: put a TLS-terminating proxy in front", "addr", addr)
	}
	if c.Ready != nil {
		c.Ready(addr)
	}
	start := time.Now()
	err = srv.Serve(c.Context, ln)
	cfg.Logger.Info("stopped", "uptime", time.Since(start).Round(time.Second).String())
	return err
}

// parseWitness parses --witness URL=VKEY (split at the first "=": a
// witness's submission prefix carries no query).
func parseWitness(s string) (*translog.Witness, error) {
	url, vkey, ok := strings.Cut(s, "=")
	if !ok || url == "" || vkey == "" {
		return nil, usagef("--witness %q: want URL=VKEY (the witness's submission prefix, \"=\", its note verifier key name+hash+base64)", s)
	}
	if !strings.HasPrefix(url, "https://") && !strings.HasPrefix(url, "http://") {
		return nil, usagef("--witness %q: the URL must start with https:// (or http://)", s)
	}
	w, err := translog.NewWitness(url, vkey, nil)
	if err != nil {
		return nil, usagef("--witness %s: %v", url, err)
	}
	return w, nil
}

// readAKs reads attestation keys: hex, one per line, # comments.
func readAKs(path string) ([]attest.AK, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out, err := clikit.ParseHexLines[attest.AK](b, path, "attestation key", 32, 1024)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no attestation key", path)
	}
	return out, nil
}
