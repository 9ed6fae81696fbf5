package enigmcli

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/command"
	"github.com/enigm/enigm/command/commandtest"
	"github.com/enigm/enigm/internal/clikit/scripttest"
	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/translog/translogtest"
)

// TestMain makes this test binary also the enigm of the transcripts: the
// real Main over the process environment, with cheap Argon2id parameters
// for the soft backend.
func TestMain(m *testing.M) {
	scripttest.Main(m, "enigm", func(ctx context.Context, args []string) int {
		env := OSEnv()
		env.Terminal = func() bool { return false }
		env.Backend = func(name string, _ *Globals) (backend.Backend, error) { return testkit.SoftBackend(name) }
		return Main(ctx, env, args)
	})
}

// scriptCommandConfig is the configuration of the Command a transcript
// starts: on command-data in the script's directory, without rate
// limits, its keystore on the soft backend at testkit's cheap costs, its
// log discarded.
func scriptCommandConfig(ts *testscript.TestScript) command.Config {
	return command.Config{DataDir: ts.MkAbs("command-data"), RateLimits: &command.RateLimits{Disabled: true},
		KeystoreBackend: testkit.SoftBackend, KeystorePassphrase: []byte("command"), MinRecoveryDelay: time.Hour,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), JanitorInterval: -1}
}

// TestScripts runs the CLI transcripts in testdata/script: what a user
// types and sees, exit codes included.
func TestScripts(t *testing.T) {
	cmds := scripttest.Cmds()
	// server starts Enigm Command in the test process and points
	// $ENIGM_SERVER at it. "server log" also publishes its transparency
	// log (a checkpoint every 50 ms) and sets $LOGKEY1 and $LOGKEY2 to the
	// log's keys and $OTHERKEY to a key of another log of the same origin.
	cmds["server"] = func(ts *testscript.TestScript, neg bool, args []string) {
		cfg := scriptCommandConfig(ts)
		if len(args) == 1 && args[0] == "log" {
			s, err := command.LogSigner(context.Background(), cfg)
			ts.Check(err)
			cfg.LogSigner, cfg.LogInterval = s, 50*time.Millisecond
			keys := s.VerifierKeys()
			ts.Setenv("LOGKEY1", keys[0])
			ts.Setenv("LOGKEY2", keys[1])
			ts.Setenv("OTHERKEY", translogtest.NewSigner(t, s.Origin()).VerifierKeys()[0])
		} else if len(args) > 0 {
			ts.Fatalf("usage: server [log]")
		}
		commandtest.ServeScript(ts, cfg)
	}
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script", Cmds: cmds, RequireExplicitExec: true,
		Setup: func(e *testscript.Env) error {
			e.Setenv("ENIGM_HOME", filepath.Join(e.WorkDir, "home"))
			e.Setenv("ENIGM_PASSPHRASE", "pw one")
			return nil
		},
	})
}
