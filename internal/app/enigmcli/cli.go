// Package enigmcli implements the enigm command line. cmd/enigm is a thin main
// over Main; tests drive Main directly with their own Env (transcripts).
package enigmcli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/device"
	"github.com/enigm/enigm/keystore"
)

// Exit codes.
const (
	ExitOK     = 0
	ExitError  = 1
	ExitUsage  = 2
	ExitDenied = 3 // a key use was denied by policy or lifecycle
	// ExitRecoveryPending: `enigm sync` on an active device found a
	// recovery of its account pending in the verified chain.
	ExitRecoveryPending = 4
)

// Env is everything a command touches outside the process.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// Terminal reports whether stdin is an interactive terminal, and
	// ReadPassword reads a line from it without echo.
	Terminal     func() bool
	ReadPassword func(prompt string) ([]byte, error)
	// Backend builds a backend by name for a given home; nil means the
	// built-in registry (Backends).
	Backend func(name string, g *Globals) (backend.Backend, error)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// HomeDir returns the user's home directory; nil means os.UserHomeDir.
	HomeDir func() (string, error)
}

// OSEnv returns the real process environment.
func OSEnv() *Env {
	fd := int(os.Stdin.Fd())
	return &Env{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv,
		Terminal: func() bool { return term.IsTerminal(fd) },
		ReadPassword: func(prompt string) ([]byte, error) {
			fmt.Fprint(os.Stderr, prompt)
			b, err := term.ReadPassword(fd)
			fmt.Fprintln(os.Stderr)
			return b, err
		},
	}
}

// Globals are flags every command accepts.
type Globals struct {
	Home           string
	PassphraseFile string
	JSON           bool
	Yes            bool
	Help           bool
}

func (g *Globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.Home, "home", g.Home, "keystore home `DIR` (default $ENIGM_HOME, then ~/.enigm)")
	fs.StringVar(&g.PassphraseFile, "passphrase-file", g.PassphraseFile, "read the passphrase from `FILE` (default $ENIGM_PASSPHRASE, then a prompt)")
	fs.BoolVar(&g.JSON, "json", g.JSON, "print JSON (with \"version\": 1)")
	fs.BoolVar(&g.Yes, "yes", g.Yes, "do not ask for confirmation")
	fs.BoolVar(&g.Help, "help", false, "show help")
	fs.BoolVar(&g.Help, "h", false, "show help")
}

// Command is one CLI command.
type Command struct {
	Path    string // "keys sign"
	Summary string
	Usage   string // argument synopsis after the path
	Help    string // description and examples
	Flags   func(fs *flag.FlagSet)
	// Args is the number of positional arguments: exactly this many, or
	// -1 for any.
	Args int
	Run  func(c *Ctx) error
}

// Ctx is a running command.
type Ctx struct {
	*Env
	G     *Globals
	Args  []string
	ctx   context.Context
	cmd   *Command
	flags *flag.FlagSet
}

// Context returns the command's context.
func (c *Ctx) Context() context.Context { return c.ctx }

var commands []*Command

// Register adds commands (called from init functions).
func Register(cs ...*Command) { commands = append(commands, cs...) }

// usageError is a command-line mistake: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// Usagef returns a usage error.
func Usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// Main runs the CLI with args (without the program name) and returns the
// exit code.
func Main(ctx context.Context, env *Env, args []string) int {
	g := &Globals{}
	gfs := flag.NewFlagSet("enigm", flag.ContinueOnError)
	gfs.SetOutput(io.Discard)
	g.register(gfs)
	if err := gfs.Parse(args); err != nil {
		fmt.Fprintf(env.Stderr, "enigm: %v\n\n", err)
		printOverview(env.Stderr)
		return ExitUsage
	}
	rest := gfs.Args()
	if len(rest) == 0 || rest[0] == "help" {
		if len(rest) > 1 {
			if cmd, _ := find(rest[1:]); cmd != nil {
				printHelp(env.Stdout, cmd)
				return ExitOK
			}
		}
		printOverview(env.Stdout)
		if len(rest) == 0 && !g.Help {
			return ExitUsage
		}
		return ExitOK
	}
	cmd, n := find(rest)
	if cmd == nil {
		fmt.Fprintf(env.Stderr, "enigm: unknown command %q\n\n", strings.Join(rest, " "))
		printOverview(env.Stderr)
		return ExitUsage
	}
	fs := flag.NewFlagSet("enigm "+cmd.Path, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	g.register(fs)
	if cmd.Flags != nil {
		cmd.Flags(fs)
	}
	pos, err := parseInterspersed(fs, rest[n:])
	if g.Help {
		printHelp(env.Stdout, cmd)
		return ExitOK
	}
	if err == nil && cmd.Args >= 0 && len(pos) != cmd.Args {
		err = Usagef("%s takes %d argument(s), got %d", cmd.Path, cmd.Args, len(pos))
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "enigm %s: %v\nusage: enigm %s %s\n(see `enigm %s --help`)\n", cmd.Path, err, cmd.Path, cmd.Usage, cmd.Path)
		return ExitUsage
	}
	c := &Ctx{Env: env, G: g, Args: pos, ctx: ctx, cmd: cmd, flags: fs}
	if err := cmd.Run(c); err != nil {
		return c.fail(err)
	}
	return ExitOK
}

// parseInterspersed lets flags follow positional arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
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

func find(args []string) (*Command, int) {
	var best *Command
	n := 0
	for _, c := range commands {
		words := strings.Fields(c.Path)
		if len(words) > len(args) || len(words) <= n {
			continue
		}
		match := true
		for i, w := range words {
			if args[i] != w {
				match = false
				break
			}
		}
		if match {
			best, n = c, len(words)
		}
	}
	return best, n
}

func printOverview(w io.Writer) {
	fmt.Fprint(w, `enigm — Enigm device key management

usage: enigm [--home DIR] [--json] COMMAND [flags]

commands:
`)
	cs := append([]*Command(nil), commands...)
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].Path < cs[j].Path })
	for _, c := range cs {
		fmt.Fprintf(w, "  %-22s %s\n", c.Path, c.Summary)
	}
	fmt.Fprint(w, `
The passphrase comes from $ENIGM_PASSPHRASE, --passphrase-file, or a prompt on
a terminal; never from a flag value. --home defaults to $ENIGM_HOME, then
~/.enigm. Exit codes: 0 ok, 1 error, 2 usage, 3 denied by policy, 4 a recovery
of the account is pending (sync; see "enigm veto --help").
Run "enigm COMMAND --help" for a command's flags and examples.
`)
}

func printHelp(w io.Writer, c *Command) {
	fmt.Fprintf(w, "usage: enigm %s %s\n\n%s\n", c.Path, c.Usage, c.Summary)
	if c.Help != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimRight(c.Help, "\n"))
	}
	fs := flag.NewFlagSet(c.Path, flag.ContinueOnError)
	if c.Flags != nil {
		c.Flags(fs)
	}
	var own bytes.Buffer
	fs.SetOutput(&own)
	fs.PrintDefaults()
	if own.Len() > 0 {
		fmt.Fprintf(w, "\nflags:\n%s", own.String())
	}
	gfs := flag.NewFlagSet("", flag.ContinueOnError)
	(&Globals{}).register(gfs)
	var glob bytes.Buffer
	gfs.SetOutput(&glob)
	gfs.PrintDefaults()
	fmt.Fprintf(w, "\nglobal flags:\n%s", glob.String())
}

// fail reports err and returns the exit code.
func (c *Ctx) fail(err error) int {
	code := ExitError
	var ue *usageError
	var de *keystore.DeniedError
	var rp *recoveryPendingError
	switch {
	case errors.As(err, &ue):
		code = ExitUsage
	case errors.As(err, &de):
		code = ExitDenied
	case errors.As(err, &rp):
		// The status (with the recovery) is already on stdout, as JSON
		// under --json: only the warning goes to stderr.
		fmt.Fprintf(c.Stderr, "enigm %s: %v\n", c.cmd.Path, err)
		return ExitRecoveryPending
	}
	fmt.Fprintf(c.Stderr, "enigm %s: %v\n", c.cmd.Path, err)
	if hint := hintFor(err); hint != "" {
		fmt.Fprintf(c.Stderr, "hint: %s\n", hint)
	}
	if c.G.JSON {
		e := map[string]any{"code": errorCode(err), "message": err.Error()}
		if de != nil {
			e["reasons"] = de.Codes()
		}
		c.writeJSON(map[string]any{"error": e})
	}
	return code
}

func errorCode(err error) string {
	for _, x := range []struct {
		err  error
		code string
	}{
		{keystore.ErrDenied, "denied"}, {keystore.ErrLocked, "locked"}, {keystore.ErrBadPassphrase, "bad_passphrase"},
		{keystore.ErrNotFound, "not_found"}, {keystore.ErrAmbiguous, "ambiguous"}, {keystore.ErrCorrupt, "corrupt"},
		{keystore.ErrInUse, "in_use"}, {keystore.ErrPermissions, "permissions"}, {keystore.ErrNotInitialized, "not_initialized"},
		{keystore.ErrExists, "exists"}, {keystore.ErrDeviceRevoked, "device_revoked"}, {keystore.ErrWrongClass, "wrong_class"},
		{keystore.ErrUnsupported, "unsupported"}, {backend.ErrUnavailable, "backend_unavailable"}, {backend.ErrLockedOut, "locked_out"},
	} {
		if errors.Is(err, x.err) {
			return x.code
		}
	}
	var ue *usageError
	if errors.As(err, &ue) {
		return "usage"
	}
	return "error"
}

func hintFor(err error) string {
	switch {
	case errors.Is(err, keystore.ErrNotInitialized):
		return "create one with `enigm keystore init`"
	case errors.Is(err, keystore.ErrBadPassphrase):
		return "check $ENIGM_PASSPHRASE or --passphrase-file; nothing was changed"
	case errors.Is(err, keystore.ErrInUse):
		return "another enigm process holds the keystore; retry when it has finished"
	case errors.Is(err, keystore.ErrCorrupt):
		return "the damaged item was left untouched; the other keys still work"
	case errors.Is(err, device.ErrRevokeThisDevice):
		return "nothing was revoked; to revoke this device, add --this-device"
	case errors.Is(err, device.ErrRevokeLastDevice):
		return "nothing was revoked; to revoke the account's last active device, add --last-device"
	case errors.Is(err, device.ErrNoPendingRecovery):
		return "nothing was vetoed; `enigm sync` shows a pending recovery of this account"
	}
	return ""
}

// writeJSON prints v with "version": 1 added.
func (c *Ctx) writeJSON(v map[string]any) error {
	v["version"] = 1
	enc := json.NewEncoder(c.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Printf writes human output (suppressed under --json).
func (c *Ctx) Printf(format string, a ...any) {
	if !c.G.JSON {
		fmt.Fprintf(c.Stdout, format, a...)
	}
}

// Output prints JSON under --json, else runs text.
func (c *Ctx) Output(v map[string]any, text func()) error {
	if c.G.JSON {
		return c.writeJSON(v)
	}
	text()
	return nil
}

// Home resolves the keystore home.
func (c *Ctx) Home() (string, error) {
	if c.G.Home != "" {
		return filepath.Abs(c.G.Home)
	}
	if h := c.Getenv("ENIGM_HOME"); h != "" {
		return filepath.Abs(h)
	}
	hd := os.UserHomeDir
	if c.HomeDir != nil {
		hd = c.HomeDir
	}
	d, err := hd()
	if err != nil {
		return "", fmt.Errorf("cannot find a home directory (set --home or $ENIGM_HOME): %w", err)
	}
	return filepath.Join(d, ".enigm"), nil
}

// Passphrase returns the unlock secret from $ENIGM_PASSPHRASE,
// --passphrase-file or a terminal prompt (twice when confirm is set).
func (c *Ctx) Passphrase(confirm bool) ([]byte, error) {
	if c.G.PassphraseFile != "" {
		b, err := os.ReadFile(c.G.PassphraseFile)
		if err != nil {
			return nil, fmt.Errorf("reading the passphrase file: %w", err)
		}
		b = bytes.TrimRight(b, "\r\n")
		if len(b) == 0 {
			return nil, errors.New("the passphrase file is empty")
		}
		return b, nil
	}
	if p := c.Getenv("ENIGM_PASSPHRASE"); p != "" {
		return []byte(p), nil
	}
	if c.Terminal == nil || !c.Terminal() || c.ReadPassword == nil {
		return nil, errors.New("no passphrase: set $ENIGM_PASSPHRASE, use --passphrase-file FILE, or run on a terminal")
	}
	p, err := c.ReadPassword("Passphrase: ")
	if err != nil {
		return nil, err
	}
	if len(p) == 0 {
		return nil, errors.New("empty passphrase")
	}
	if confirm {
		q, err := c.ReadPassword("Repeat passphrase: ")
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(p, q) {
			return nil, errors.New("the passphrases do not match")
		}
	}
	return p, nil
}

// Confirm asks a yes/no question unless --yes was given; without a
// terminal it refuses.
func (c *Ctx) Confirm(question string) error {
	if c.G.Yes {
		return nil
	}
	if c.Terminal == nil || !c.Terminal() {
		return Usagef("%s: pass --yes to confirm (no terminal to ask on)", question)
	}
	fmt.Fprintf(c.Stderr, "%s [y/N] ", question)
	line, _ := bufio.NewReader(c.Stdin).ReadString('\n')
	if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
		return errors.New("not confirmed")
	}
	return nil
}

// ReadInput reads FILE, or stdin when path is "" or "-". It refuses inputs
// larger than max.
func (c *Ctx) ReadInput(path string, max int64) ([]byte, error) {
	var r io.Reader = c.Stdin
	if path != "" && path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("input larger than %d bytes", max)
	}
	return b, nil
}
