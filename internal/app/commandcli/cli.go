// Package commandcli implements the enigm-command command line: serve, the
// organisation commands that run on the server's data, and the admin
// client. cmd/enigm-command is a thin main over Main; tests drive Main
// directly (transcripts).
package commandcli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/command"
	"github.com/enigm/enigm/internal/clikit"
	"github.com/enigm/enigm/keystore"
)

// Exit codes (internal/clikit: the same in enigm).
const (
	ExitOK     = clikit.ExitOK
	ExitError  = clikit.ExitError
	ExitUsage  = clikit.ExitUsage
	ExitDenied = clikit.ExitDenied // the server refused by policy (policy_rejected, device_revoked)
)

// Env is everything a command touches outside the process.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// Terminal reports whether stdin is interactive (for confirmations).
	Terminal func() bool
	// Ready, when set, is called by serve with the address it listens on.
	Ready func(addr string)
	// Config, when set, adjusts the server and organisation configuration
	// (tests: cheap keystore parameters, a clock).
	Config func(*command.Config)
	// DemoBackend, when set, builds the keystore backend of each device
	// the demo plays; nil means the software backend with its default
	// Argon2id parameters (tests: cheap parameters).
	DemoBackend func() (backend.Backend, error)
}

// OSEnv returns the process environment.
func OSEnv() *Env {
	return &Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv,
		Terminal: func() bool { return term.IsTerminal(int(os.Stdin.Fd())) }}
}

// ctx is one run: the environment, --json, the flags the org and admin
// commands share (bound to fields), and the running command's context and
// arguments.
type ctx struct {
	context.Context
	*Env
	args []string
	json bool
	data dataOpts
	adm  adminOpts
}

// dataOpts are --data and --db: where the server's data is.
type dataOpts struct{ dir, db string }

// adminOpts are the admin client's --server and --token-file.
type adminOpts struct{ server, tokenFile string }

func usagef(format string, a ...any) error { return clikit.Usagef(format, a...) }

// builders make the commands of one run.
var builders []func(c *ctx) *clikit.Command

func register(bs ...func(c *ctx) *clikit.Command) { builders = append(builders, bs...) }

// do adapts a command's body to clikit.Command.Run.
func (c *ctx) do(f func(c *ctx) error) func(context.Context, []string) error {
	return func(cx context.Context, args []string) error {
		c.Context, c.args = cx, args
		return f(c)
	}
}

const footer = `Quick start:
  enigm-command demo                                  # the whole model in-process, in a few seconds
  enigm-command serve                                 # SQLite in ./enigm-data, 127.0.0.1:8470
  enigm-command org create acme --require-admin-approval --json
  enigm-command org invite acme --account alice --json
  ENIGM_ADMIN_TOKEN=eat_... enigm-command admin enrollments

Accounts are named by id or name, and devices by id, a unique prefix of at
least 6 hex digits of it, or name, wherever a command takes one.`

// Main runs the command line with args (without the program name) and
// returns the exit code.
func Main(cx context.Context, env *Env, args []string) int {
	c := &ctx{Context: cx, Env: env}
	p := &clikit.Program{
		Name: "enigm-command",
		Title: `enigm-command is Enigm Command: the server that holds the account device
chains, runs the enrollment, revocation and recovery workflows, organisation
administration and the message relay. It holds only public material.`,
		Synopsis:  "COMMAND [flags] [args]",
		Footer:    footer,
		ExitCodes: "  5    monitor --once: it reported findings (JSON lines on stdout)\n",
		Groups: []clikit.Group{
			{ID: "server", Title: "The server"},
			{ID: "org", Title: "Organisations (on the server's data)"},
			{ID: "admin", Title: "Organisation administration (through the API)"},
		},
		Words: map[string]clikit.Word{
			"org":   {Group: "org", Summary: "organisations, on the server's data", Flags: c.dataFlags},
			"log":   {Group: "server", Summary: "the transparency log, on the server's data", Flags: c.dataFlags},
			"admin": {Group: "admin", Summary: "the organisation admin client", Flags: c.adminFlags},
		},
		Global: func(fs *pflag.FlagSet) {
			fs.BoolVar(&c.json, "json", false, "print JSON (with \"version\": 1)")
		},
		JSON:     func() bool { return c.json },
		Classify: classify,
	}
	for _, b := range builders {
		p.Commands = append(p.Commands, b(c))
	}
	return p.Run(cx, clikit.IO{Stdin: env.Stdin, Stdout: env.Stdout, Stderr: env.Stderr}, args)
}

// classify: the server's policy refusals are denials (exit 3); its error
// code is the --json code.
func classify(err error) clikit.Failure {
	var ae *apiError
	if errors.As(err, &ae) {
		f := clikit.Failure{Code: ae.Code}
		switch ae.Code {
		case "policy_rejected", "device_revoked":
			f.Exit = ExitDenied
		case "unauthorized":
			f.Hint = "check the admin token ($ENIGM_ADMIN_TOKEN or --token-file): it is the organisation's, printed once by `enigm-command org create`"
		}
		return f
	}
	switch {
	case errors.Is(err, clikit.ErrNoMatch):
		return clikit.Failure{Code: "not_found", Hint: "`enigm-command admin accounts` and `admin devices ACCOUNT` list the ids and names"}
	case errors.Is(err, clikit.ErrAmbiguous):
		return clikit.Failure{Code: "ambiguous", Hint: "give the whole id"}
	case errors.Is(err, keystore.ErrBadPassphrase):
		return clikit.Failure{Code: "bad_passphrase", Hint: "the organisation keystore opens with $ENIGM_COMMAND_PASSPHRASE (or the keystore.passphrase file in the data directory)"}
	}
	return clikit.Failure{}
}

func writeJSON(w io.Writer, v any) { clikit.WriteJSON(w, v) }

// confirm asks a yes/no question on an interactive stdin.
func (c *ctx) confirm(question string) (bool, error) {
	if c.Terminal == nil || !c.Terminal() {
		return false, usagef("%s: not asked without a terminal; pass --yes", question)
	}
	fmt.Fprintf(c.Stderr, "%s [y/N] ", question)
	line, err := bufio.NewReader(c.Stdin).ReadString('\n')
	if err != nil && line == "" {
		return false, err
	}
	a := strings.ToLower(strings.TrimSpace(line))
	return a == "y" || a == "yes", nil
}

// dataConfig builds the configuration of the server's data from the
// --data and --db flags (and $ENIGM_COMMAND_DB).
func (c *ctx) dataConfig() command.Config {
	cfg := command.Config{DataDir: c.data.dir, DatabaseURL: c.data.db, Getenv: c.Getenv}
	if cfg.DatabaseURL == "" {
		cfg.DatabaseURL = c.Getenv("ENIGM_COMMAND_DB")
	}
	cfg.Logger = slog.New(slog.NewTextHandler(c.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if c.Env.Config != nil {
		c.Env.Config(&cfg)
	}
	return cfg
}

func (c *ctx) dataFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.data.dir, "data", "./enigm-data", "data `DIR`: the SQLite database and the organisation keystore")
	fs.StringVar(&c.data.db, "db", "", "PostgreSQL `URL` (postgres://…) instead of SQLite in the data directory (default $ENIGM_COMMAND_DB)")
}
