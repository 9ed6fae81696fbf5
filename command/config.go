package command

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/command/store"
	"github.com/enigm/enigm/translog"
)

// Defaults of Config.
const (
	DefaultEnrollmentTTL = 15 * time.Minute
	DefaultTokenTTL      = 10 * time.Minute
	DefaultMaxLinkAge    = 10 * time.Minute
	// DefaultMaxLinkSkew is how far after Command's clock a link may be
	// dated when it is appended (docs/design/chain.md §3.1). It is small:
	// a later link may not be older than its predecessor, so every second
	// a link is dated ahead is a second in which a revocation or a veto
	// dated by an honest clock would be refused. Devices date links at
	// max(their clock, the head's time), so honest clocks within this
	// bound never see a refusal.
	DefaultMaxLinkSkew = 30 * time.Second
	// DefaultMinRecoveryDelay is the least recovery waiting period a
	// server accepts unless configured otherwise: time for the account's
	// devices to see a pending recovery and veto it.
	DefaultMinRecoveryDelay = time.Hour
	DefaultInviteTTL        = 7 * 24 * time.Hour
	// ChallengeTTL is how long an auth challenge may be answered.
	ChallengeTTL = 60 * time.Second
	// MaxCiphertext bounds one relayed envelope.
	MaxCiphertext = api.MaxCiphertext
	// MaxEnvelopes bounds the envelopes of one POST /v1/messages.
	MaxEnvelopes = api.MaxEnvelopes
)

// PassphraseEnv names the environment variable with the passphrase of
// Command's keystore.
const PassphraseEnv = "ENIGM_COMMAND_PASSPHRASE"

// Files in the data directory.
const (
	DBFile         = "command.db"          // the SQLite database (without --db)
	KeystoreDir    = "keystore"            // the organisation keys
	PassphraseFile = "keystore.passphrase" // generated passphrase when none is set
	// HeadMarksFile holds the highest head the instance verified per
	// account, outside the database (store.Marks); HeadMarksKeyFile the
	// key of their MACs.
	HeadMarksFile    = "head-marks.db"
	HeadMarksKeyFile = "head-marks.key"
)

// Config configures a Server, and the organisation commands that run on
// the server's data (CreateOrg, CreateInvite).
type Config struct {
	// DataDir holds the SQLite database (unless DatabaseURL is set) and the
	// keystore with the organisation admin keys. Created with mode 0700.
	DataDir string
	// DatabaseURL is a postgres:// URL; empty means SQLite in DataDir.
	DatabaseURL string
	// Store, when set, is used instead of opening DatabaseURL or DataDir's
	// SQLite file; the Server does not close it.
	Store store.Store

	// EnrollmentTTL is how long an enrollment request stays open
	// (default 15m).
	EnrollmentTTL time.Duration
	// TokenTTL is the lifetime of a device token (default 10m).
	TokenTTL time.Duration
	// MinRecoveryDelay is the least recovery waiting period an account
	// (or an organisation's policy) may choose; zero means
	// DefaultMinRecoveryDelay (1h), unless DevAllowZeroRecoveryDelay.
	MinRecoveryDelay time.Duration
	// DevAllowZeroRecoveryDelay is for development servers only: a zero
	// MinRecoveryDelay then means no minimum, so a recovery can complete
	// before any device could veto it. New logs a warning when it is set.
	DevAllowZeroRecoveryDelay bool
	// MaxLinkAge refuses links whose timestamp is older than this when
	// they are appended (default 10m).
	MaxLinkAge time.Duration
	// MaxLinkSkew refuses links dated more than this after Command's
	// clock when they are appended, and recovery requests dated more than
	// this before it (default DefaultMaxLinkSkew, at most
	// chain.MaxClockSkew).
	MaxLinkSkew time.Duration

	// RateLimits configures the per-instance token buckets; the zero value
	// means DefaultRateLimits.
	RateLimits *RateLimits

	// KeystorePassphrase unlocks Command's keystore. Nil means
	// $ENIGM_COMMAND_PASSPHRASE, then DataDir/keystore.passphrase
	// (generated at first use, mode 0600).
	KeystorePassphrase []byte
	// KeystoreBackend creates the backend of a new keystore and opens an
	// existing one; nil means the software backend (Argon2id).
	KeystoreBackend func(name string) (backend.Backend, error)
	// KeystoreLockTimeout is how long an admin operation waits for another
	// process (enigm-command org …) to release the keystore (default 5s).
	KeystoreLockTimeout time.Duration

	// AttestationVerifier judges attestation evidence in device records
	// (e.g. attestation.TPM with the attestation keys this deployment
	// trusts). Without one, accounts whose policy requires verified
	// attestation accept no device.
	AttestationVerifier chain.AttestationVerifier

	// LogSigner signs the transparency log's checkpoints (its origin is
	// the log's origin). Every link is a log leaf whether it is set or
	// not; without it no checkpoint is signed and /log/ is not served.
	LogSigner *translog.Signer
	// LogOrigin is the origin LogSigner gives the log when it builds the
	// signer over the keystore's log keys; empty means
	// DefaultLogOriginPrefix + the Ed25519 log key's fingerprint.
	LogOrigin string
	// LogInterval is how often new leaves are integrated and a new
	// checkpoint is signed (default DefaultLogInterval).
	LogInterval time.Duration
	// LogWitnesses are the tlog-witness witnesses every new checkpoint
	// is submitted to; their cosignatures are served with it.
	LogWitnesses []*translog.Witness
	// LogWitnessRefresh is how often an unchanged checkpoint is submitted
	// to the witnesses again for fresh cosignatures (default
	// DefaultLogWitnessRefresh).
	LogWitnessRefresh time.Duration

	// Logger receives structured logs; nil means JSON to stderr at Info.
	Logger *slog.Logger
	// Clock returns the time; nil means time.Now.
	Clock func() time.Time
	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string
	// JanitorInterval is how often expired enrollments, tokens and
	// challenges are swept (default 30s; negative disables).
	JanitorInterval time.Duration
	// StateCacheBytes is the memory budget of the verified-state cache
	// (default DefaultStateCacheBytes, at least MinStateCacheBytes): the
	// states of the accounts used least recently are evicted beyond it
	// and verified again from the store when next used. Encoded
	// whole-chain responses take up to a further eighth of it.
	StateCacheBytes int64
	// ShutdownTimeout bounds how long Serve waits for accepted requests
	// after its context ends (default 30s).
	ShutdownTimeout time.Duration
}

func (c *Config) withDefaults() (Config, error) {
	cfg := *c
	if cfg.DataDir == "" {
		return cfg, errors.New("command: Config.DataDir is required")
	}
	if cfg.EnrollmentTTL == 0 {
		cfg.EnrollmentTTL = DefaultEnrollmentTTL
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	if cfg.MaxLinkAge == 0 {
		cfg.MaxLinkAge = DefaultMaxLinkAge
	}
	if cfg.MaxLinkSkew == 0 {
		cfg.MaxLinkSkew = DefaultMaxLinkSkew
	}
	if cfg.MinRecoveryDelay == 0 && !cfg.DevAllowZeroRecoveryDelay {
		cfg.MinRecoveryDelay = DefaultMinRecoveryDelay
	}
	if cfg.EnrollmentTTL < 0 || cfg.TokenTTL < 0 || cfg.MaxLinkAge < 0 || cfg.MinRecoveryDelay < 0 || cfg.MaxLinkSkew < 0 {
		return cfg, errors.New("command: durations in Config must not be negative")
	}
	if cfg.MaxLinkSkew > chain.MaxClockSkew || cfg.MaxLinkSkew%time.Second != 0 {
		return cfg, fmt.Errorf("command: Config.MaxLinkSkew must be whole seconds, at most %v", chain.MaxClockSkew)
	}
	if cfg.RateLimits == nil {
		rl := DefaultRateLimits()
		cfg.RateLimits = &rl
	}
	if cfg.KeystoreLockTimeout == 0 {
		cfg.KeystoreLockTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Getenv == nil {
		cfg.Getenv = os.Getenv
	}
	if cfg.JanitorInterval == 0 {
		cfg.JanitorInterval = 30 * time.Second
	}
	if cfg.StateCacheBytes == 0 {
		cfg.StateCacheBytes = DefaultStateCacheBytes
	}
	if cfg.StateCacheBytes < MinStateCacheBytes {
		return cfg, fmt.Errorf("command: Config.StateCacheBytes is %d, want at least %d (1 MiB)", cfg.StateCacheBytes, MinStateCacheBytes)
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 30 * time.Second
	}
	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return cfg, fmt.Errorf("command: data directory: %w", err)
		}
	}
	return cfg, nil
}

// dsn returns the database to open.
func (c *Config) dsn() string {
	if c.DatabaseURL != "" {
		return c.DatabaseURL
	}
	return filepath.Join(c.DataDir, DBFile)
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))
