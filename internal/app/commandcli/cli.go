// Package commandcli implements the enigm-command command line: serve, the
// organisation commands that run on the server's data, and the admin
// client. cmd/enigm-command is a thin main over Main; tests drive Main
// directly (transcripts).
package commandcli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/command"
)

// Exit codes.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
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

type cmd struct {
	path    string
	usage   string
	summary string
	help    string
	args    int // exact positional count, -1 any
	flags   func(fs *flag.FlagSet)
	run     func(c *ctx) error
}

type ctx struct {
	context.Context
	*Env
	fs   *flag.FlagSet
	args []string
	json bool
}

type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

var commands []*cmd

func register(cs ...*cmd) { commands = append(commands, cs...) }

const overview = `enigm-command is Enigm Command: the server that holds the account device
chains, runs the enrollment, revocation and recovery workflows, organisation
administration and the message relay. It holds only public material.

usage: enigm-command <command> [flags] [args]

commands:
%s
Run "enigm-command <command> --help" for a command's flags and examples.

Quick start:
  enigm-command demo                                  # the whole model in-process, in a few seconds
  enigm-command serve                                 # SQLite in ./enigm-data, 127.0.0.1:8470
  enigm-command org create acme --require-admin-approval --json
  enigm-command org invite acme --account alice --json
  ENIGM_ADMIN_TOKEN=eat_... enigm-command admin enrollments
`

func printOverview(w io.Writer) {
	var b strings.Builder
	cs := append([]*cmd(nil), commands...)
	sort.Slice(cs, func(i, j int) bool { return cs[i].path < cs[j].path })
	for _, c := range cs {
		fmt.Fprintf(&b, "  %-22s %s\n", c.path, c.summary)
	}
	fmt.Fprintf(w, overview, b.String())
}

// Main runs the command line with args (without the program name) and
// returns the exit code.
func Main(cx context.Context, env *Env, args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "--help" || args[0] == "-h" {
		if len(args) > 1 {
			args = append(args[1:], "--help")
		} else {
			printOverview(env.Stdout)
			if len(args) == 0 {
				return ExitUsage
			}
			return ExitOK
		}
	}
	args = hoistGroupFlags(args)
	var c *cmd
	rest := args
	for _, cand := range commands {
		parts := strings.Fields(cand.path)
		if len(args) >= len(parts) && strings.Join(args[:len(parts)], " ") == cand.path && (c == nil || len(parts) > len(strings.Fields(c.path))) {
			c, rest = cand, args[len(parts):]
		}
	}
	if c == nil {
		// "org" or "admin" alone: show the commands under it.
		var under []*cmd
		for _, cand := range commands {
			if strings.HasPrefix(cand.path, args[0]+" ") {
				under = append(under, cand)
			}
		}
		if len(under) > 0 {
			fmt.Fprintf(env.Stderr, "enigm-command %s: a subcommand is required:\n", args[0])
			for _, u := range under {
				fmt.Fprintf(env.Stderr, "  %-22s %s\n", u.path, u.summary)
			}
			return ExitUsage
		}
		fmt.Fprintf(env.Stderr, "enigm-command: unknown command %q\n\n", args[0])
		printOverview(env.Stderr)
		return ExitUsage
	}
	fs := flag.NewFlagSet(c.path, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	jsonOut := fs.Bool("json", false, `print JSON (with "version": 1)`)
	help := fs.Bool("help", false, "show help")
	fs.BoolVar(help, "h", false, "show help")
	if c.flags != nil {
		c.flags(fs)
	}
	pos, err := parseInterleaved(fs, rest)
	if *help {
		printHelp(env.Stdout, c, fs)
		return ExitOK
	}
	if err == nil && c.args >= 0 && len(pos) != c.args {
		err = usagef("%s takes %d argument(s), got %d", c.path, c.args, len(pos))
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "enigm-command %s: %v\n\n", c.path, err)
		printHelp(env.Stderr, c, fs)
		return ExitUsage
	}
	x := &ctx{Context: cx, Env: env, fs: fs, args: pos, json: *jsonOut}
	if err := c.run(x); err != nil {
		var ue *usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(env.Stderr, "enigm-command %s: %v\n", c.path, err)
			return ExitUsage
		}
		if x.json {
			writeJSON(env.Stdout, map[string]any{"version": 1, "error": err.Error()})
		}
		fmt.Fprintf(env.Stderr, "enigm-command %s: %v\n", c.path, err)
		return ExitError
	}
	return ExitOK
}

// valueFlags are the flags that take a value and may stand between a
// command group and its subcommand ("admin --server URL approve RID").
var valueFlags = map[string]bool{"server": true, "token-file": true, "data": true, "db": true}

// hoistGroupFlags moves flags between a group word ("admin", "org") and
// its subcommand to after the subcommand.
func hoistGroupFlags(args []string) []string {
	if len(args) < 2 || (args[0] != "admin" && args[0] != "org") {
		return args
	}
	var flags []string
	i := 1
	for i < len(args) && strings.HasPrefix(args[i], "-") && args[i] != "--" {
		name := strings.TrimLeft(args[i], "-")
		flags = append(flags, args[i])
		if valueFlags[name] && i+1 < len(args) {
			flags = append(flags, args[i+1])
			i++
		}
		i++
	}
	if len(flags) == 0 || i >= len(args) {
		return args
	}
	out := append([]string{args[0], args[i]}, flags...)
	return append(out, args[i+1:]...)
}

// parseInterleaved parses flags wherever they appear among the arguments.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func printHelp(w io.Writer, c *cmd, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: enigm-command %s %s\n\n%s\n", c.path, c.usage, c.summary)
	if c.help != "" {
		fmt.Fprintf(w, "\n%s\n", c.help)
	}
	fmt.Fprintln(w, "\nflags:")
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "h" {
			return
		}
		name, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		def := ""
		if f.DefValue != "" && f.DefValue != "false" {
			def = " (default " + f.DefValue + ")"
		}
		fmt.Fprintf(w, "%-30s %s%s\n", line, usage, def)
	})
}

func writeJSON(w io.Writer, v any) {
	b, _ := json.MarshalIndent(v, "", "  ")
	fmt.Fprintf(w, "%s\n", b)
}

func (c *ctx) str(name string) string { return c.fs.Lookup(name).Value.(flag.Getter).Get().(string) }
func (c *ctx) boolean(name string) bool {
	return c.fs.Lookup(name).Value.(flag.Getter).Get().(bool)
}
func (c *ctx) duration(name string) time.Duration {
	return c.fs.Lookup(name).Value.(flag.Getter).Get().(time.Duration)
}
func (c *ctx) integer(name string) int { return c.fs.Lookup(name).Value.(flag.Getter).Get().(int) }

func (c *ctx) flagSet(name string) bool {
	set := false
	c.fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

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
	cfg := command.Config{DataDir: c.str("data"), DatabaseURL: c.str("db"), Getenv: c.Getenv}
	if cfg.DatabaseURL == "" {
		cfg.DatabaseURL = c.Getenv("ENIGM_COMMAND_DB")
	}
	cfg.Logger = slog.New(slog.NewTextHandler(c.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if c.Env.Config != nil {
		c.Env.Config(&cfg)
	}
	return cfg
}

func dataFlags(fs *flag.FlagSet) {
	fs.String("data", "./enigm-data", "data `DIR`: the SQLite database and the organisation keystore")
	fs.String("db", "", "PostgreSQL `URL` (postgres://…) instead of SQLite in the data directory (default $ENIGM_COMMAND_DB)")
}
