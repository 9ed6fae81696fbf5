package commandcli

import (
	"context"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/enigm/enigm/command"
	"github.com/enigm/enigm/command/commandtest"
	"github.com/enigm/enigm/internal/clikit/scripttest"
	"github.com/enigm/enigm/internal/testkit"
)

// testConfig is the test servers' and the transcripts' configuration:
// cheap keystore parameters, a fixed keystore passphrase.
func testConfig(c *command.Config) {
	c.KeystoreBackend = testkit.SoftBackend
	c.KeystorePassphrase = []byte("cli test")
	c.JanitorInterval = -1
}

// TestMain makes this test binary also the enigm-command of the
// transcripts: the real Main over the process environment.
func TestMain(m *testing.M) {
	scripttest.Main(m, "enigm-command", func(ctx context.Context, args []string) int {
		env := OSEnv()
		env.Terminal = func() bool { return false }
		env.Config = testConfig
		return Main(ctx, env, args)
	})
}

// TestScripts runs the CLI transcripts in testdata/script.
func TestScripts(t *testing.T) {
	cmds := scripttest.Cmds()
	// server DATA starts Enigm Command on DATA in the test process and
	// points $ENIGM_SERVER at it.
	cmds["server"] = func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) != 1 {
			ts.Fatalf("usage: server DATA")
		}
		cfg := command.Config{DataDir: ts.MkAbs(args[0]), RateLimits: &command.RateLimits{Disabled: true}}
		testConfig(&cfg)
		commandtest.ServeScript(ts, cfg)
	}
	// managed-account NAME ORG_ID INVITE creates an invited account with
	// one device ("laptop") through the API, as a device would.
	cmds["managed-account"] = func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) != 3 {
			ts.Fatalf("usage: managed-account NAME ORG_ID INVITE")
		}
		url := ts.Getenv("ENIGM_SERVER")
		admin, err := fetchInviteAdminKey(url, args[2])
		ts.Check(err)
		_, _, err = createManagedAccount(url, args[0], args[1], args[2], admin, command.Policy{RecoveryDelaySeconds: 86400})
		ts.Check(err)
	}
	testscript.Run(t, testscript.Params{Dir: "testdata/script", Cmds: cmds, RequireExplicitExec: true})
}
