package command

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/soft"
	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/keystore"
	"github.com/enigm/enigm/lifecycle"
	"github.com/enigm/enigm/translog"
)

func keystoreLogConfig(t *testing.T) Config {
	return Config{DataDir: t.TempDir(), KeystorePassphrase: []byte("test passphrase"), KeystoreBackend: testkit.SoftBackend,
		Logger: slog.New(slog.NewTextHandler(&testkit.Buffer{}, nil))}
}

// TestLogKeysKeystore: the log keys are generated in Command's keystore at
// the first call and loaded by later ones (same verifier keys); the
// default origin is derived from the Ed25519 key; the signer's
// checkpoints verify; an operator's origin is used as given; the keystore
// is free between checkpoints (an organisation can be created while the
// signer exists).
func TestLogKeysKeystore(t *testing.T) {
	ctx := context.Background()
	cfg := keystoreLogConfig(t)
	s1, err := LogSigner(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := LogSigner(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(s1.VerifierKeys(), " ") != strings.Join(s2.VerifierKeys(), " ") {
		t.Fatalf("the second start made new keys:\n%v\n%v", s1.VerifierKeys(), s2.VerifierKeys())
	}
	if o := s1.Origin(); !strings.HasPrefix(o, DefaultLogOriginPrefix) || len(o) != len(DefaultLogOriginPrefix)+16 {
		t.Fatalf("default origin %q", o)
	}
	c := translog.Checkpoint{Origin: s1.Origin(), Size: 3}
	signed, err := s2.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := translog.VerifyCheckpoint(signed, s1.Origin(), s1.VerifierKeys()); err != nil {
		t.Fatalf("a checkpoint signed with the keystore's keys: %v", err)
	}
	// Another key name over the same keys.
	cfg.LogOrigin = "log.example.org/enigm"
	s3, err := LogSigner(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s3.Origin() != cfg.LogOrigin || !strings.HasPrefix(s3.VerifierKeys()[0], cfg.LogOrigin+"+") {
		t.Fatalf("configured origin: %q %v", s3.Origin(), s3.VerifierKeys())
	}
	if signed, err := s3.Sign(translog.Checkpoint{Origin: cfg.LogOrigin, Size: 1}); err != nil {
		t.Fatal(err)
	} else if _, err := translog.VerifyCheckpoint(signed, cfg.LogOrigin, s3.VerifierKeys()); err != nil {
		t.Fatal(err)
	}
	if _, err := CreateOrg(ctx, cfg, OrgSpec{Name: "acme"}); err != nil {
		t.Fatalf("the keystore is held by the log signer: %v", err)
	}
	cfg.LogOrigin = "bad origin"
	if _, err := LogSigner(ctx, cfg); err == nil {
		t.Fatal("an origin with a space was accepted")
	}
	// A wrong passphrase: no checkpoint is signed (the keys are wrapped
	// under the keystore's passphrase, not held by the signer).
	cfgBad := cfg
	cfgBad.LogOrigin = ""
	cfgBad.KeystorePassphrase = []byte("wrong")
	if _, err := LogSigner(ctx, cfgBad); !errors.Is(err, keystore.ErrBadPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
}

// TestLogKeysAmbiguous: a keystore with two active Ed25519 log keys is
// refused with an error naming both, instead of signing with either.
func TestLogKeysAmbiguous(t *testing.T) {
	ctx := context.Background()
	cfg := keystoreLogConfig(t)
	if _, err := LogSigner(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	k := newOrgKeys(&cfg)
	st, err := k.open(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	st.Authenticate("test")
	st.SetAppAuthorized(true)
	extra, err := st.Generate(keystore.ClassIdentity, keystore.GenerateOptions{Cause: lifecycle.AccountSetup, Activate: true, Algorithm: keystore.AlgCheckpointEd25519})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	_, err = LogSigner(ctx, cfg)
	if err == nil || !strings.Contains(err.Error(), "2 active checkpoint-ed25519 log keys") || !strings.Contains(err.Error(), extra.ID.String()) {
		t.Fatalf("two Ed25519 log keys: %v", err)
	}
}

// TestLogKeysServer: a server whose signer is LogSigner (keys in the
// keystore of its own data directory) publishes checkpoints that verify
// under the signer's keys.
func TestLogKeysServer(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := LogSigner(ctx, Config{DataDir: dir, KeystorePassphrase: []byte("test passphrase"), KeystoreBackend: testkit.SoftBackend,
		Logger: slog.New(slog.NewTextHandler(&testkit.Buffer{}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvDSN(t, filepath.Join(dir, DBFile), func(c *Config) { c.LogSigner, c.LogInterval = s, 20*time.Millisecond })
	e.newAccount("ks-alice", newDev("ks/a1"), chain.Policy{})
	waitCheckpoint(e, s.Origin(), s.VerifierKeys(), 1)
	// The same database under another origin: refused at start, naming
	// the origin the log was published as.
	cfg := e.cfg
	cfg.LogOrigin = "other.example/log"
	other, err := LogSigner(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.LogSigner = other
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "published as origin \""+s.Origin()+"\"") {
		t.Fatalf("a server continuing the log under another origin: %v", err)
	}
}

// BenchmarkLogKeystoreSign: one checkpoint signed with the keystore's
// log keys (open, unlock, two signatures, close), with the software
// backend's recommended Argon2id parameters (what serve uses) and with
// the tests' fast ones; the difference is the passphrase derivation.
func BenchmarkLogKeystoreSign(b *testing.B) {
	for _, bc := range []struct {
		name string
		be   func(string) (backend.Backend, error)
	}{
		{"recommended-kdf", func(string) (backend.Backend, error) { return soft.New(soft.Options{}) }},
		{"fast-kdf", testkit.SoftBackend},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := Config{DataDir: b.TempDir(), KeystorePassphrase: []byte("bench passphrase"), KeystoreBackend: bc.be,
				Logger: slog.New(slog.NewTextHandler(&testkit.Buffer{}, nil))}
			s, err := LogSigner(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			c := translog.Checkpoint{Origin: s.Origin(), Size: 1}
			b.ResetTimer()
			for b.Loop() {
				if _, err := s.Sign(c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
