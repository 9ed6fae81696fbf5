// Package enigmcli implements the enigm command line. cmd/enigm is a thin main
// over Main; tests drive Main directly with their own Env (transcripts).
package enigmcli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/pkcs11"
	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/device"
	"github.com/enigm/enigm/internal/clikit"
	"github.com/enigm/enigm/keystore"
)

// Exit codes (internal/clikit: the same in enigm-command).
const (
	ExitOK              = clikit.ExitOK
	ExitError           = clikit.ExitError
	ExitUsage           = clikit.ExitUsage
	ExitDenied          = clikit.ExitDenied // a key use was denied by policy or lifecycle
	ExitRecoveryPending = clikit.ExitRecoveryPending
	ExitInterrupted     = clikit.ExitInterrupted
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
}

func (g *Globals) register(fs *pflag.FlagSet) {
	fs.StringVar(&g.Home, "home", g.Home, "keystore home `DIR` (default $ENIGM_HOME, then ~/.enigm)")
	fs.StringVar(&g.PassphraseFile, "passphrase-file", g.PassphraseFile, "read the passphrase from `FILE` (default $ENIGM_PASSPHRASE, then a prompt)")
	fs.BoolVar(&g.JSON, "json", g.JSON, "print JSON (with \"version\": 1)")
	fs.BoolVar(&g.Yes, "yes", g.Yes, "do not ask for confirmation")
}

// Ctx is one run of the CLI: the environment, the global flags, and the
// flags that several commands share (--server, --backend), each bound to
// a field.
type Ctx struct {
	*Env
	G    *Globals
	Args []string
	ctx  context.Context

	server      string // --server
	backendName string // --backend
	pkcs11KeyID string // --pkcs11-key-id (hex CKA_ID of a key to adopt)
}

// Context returns the command's context.
func (c *Ctx) Context() context.Context { return c.ctx }

// builders make the commands of one run; each binds its flags to the
// fields of its own options.
var builders []func(c *Ctx) *clikit.Command

// register adds command builders (called from init functions).
func register(bs ...func(c *Ctx) *clikit.Command) { builders = append(builders, bs...) }

// do adapts a command's body to clikit.Command.Run.
func (c *Ctx) do(f func(c *Ctx) error) func(context.Context, []string) error {
	return func(ctx context.Context, args []string) error {
		c.ctx, c.Args = ctx, args
		return f(c)
	}
}

// Usagef returns a usage error (exit 2).
func Usagef(format string, a ...any) error { return clikit.Usagef(format, a...) }

// Command groups of the overview.
var groups = []clikit.Group{
	{ID: "keystore", Title: "The keystore on this device"},
	{ID: "account", Title: "Account and devices"},
	{ID: "messages", Title: "Messages and calls"},
	{ID: "info", Title: "Information"},
}

var words = map[string]clikit.Word{
	"keystore": {Group: "keystore", Summary: "the protected keystore of this device"},
	"keys":     {Group: "keystore", Summary: "keys in the keystore: generate, sign, rotate, revoke"},
	"recovery": {Group: "account", Summary: "the account's recovery code"},
	"log":      {Group: "account", Summary: "the transparency log: export a link's proof, check one offline"},
}

// Main runs the CLI with args (without the program name) and returns the
// exit code.
func Main(ctx context.Context, env *Env, args []string) int {
	c := &Ctx{Env: env, G: &Globals{}, ctx: ctx, backendName: "auto"}
	p := &clikit.Program{
		Name: "enigm", Title: "enigm — Enigm device key management",
		Synopsis: "[--home DIR] [--json] COMMAND [flags]",
		Footer: `The passphrase comes from $ENIGM_PASSPHRASE, --passphrase-file, or a prompt on
a terminal; never from a flag value. --home defaults to $ENIGM_HOME, then
~/.enigm. Names are accepted where ids are (accounts, devices), and so is a
unique prefix of at least 6 hex digits of a key or device id.`,
		ExitCodes: "  4    a recovery of the account is pending (sync; see \"enigm veto --help\")\n",
		Groups:    groups, Words: words,
		Global:   c.G.register,
		JSON:     func() bool { return c.G.JSON },
		Classify: classify,
	}
	for _, b := range builders {
		p.Commands = append(p.Commands, b(c))
	}
	return p.Run(ctx, clikit.IO{Stdin: env.Stdin, Stdout: env.Stdout, Stderr: env.Stderr}, args)
}

// classify maps the errors enigm recognises to an exit code, the --json
// error code and the next step.
func classify(err error) clikit.Failure {
	var de *keystore.DeniedError
	var rp *recoveryPendingError
	var ae *client.APIError
	switch {
	case errors.As(err, &rp):
		// The status (with the recovery) is already on stdout, as JSON
		// under --json: only the warning goes to stderr.
		return clikit.Failure{Exit: ExitRecoveryPending, Code: "recovery_pending", Quiet: true}
	case errors.As(err, &de):
		return clikit.Failure{Exit: ExitDenied, Code: "denied", Reasons: de.Codes()}
	case errors.Is(err, keystore.ErrDeviceRevoked), errors.Is(err, device.ErrRevoked):
		return clikit.Failure{Exit: ExitDenied, Code: "device_revoked", Hint: "this device was revoked in its account: its keys are destroyed; set up a new device with `enigm enroll` or `enigm recover`"}
	case errors.As(err, &ae) && (ae.Code == "policy_rejected" || ae.Code == "device_revoked"):
		return clikit.Failure{Exit: ExitDenied, Code: ae.Code}
	}
	f := clikit.Failure{Code: errorCode(err), Hint: hintFor(err)}
	return f
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
		{clikit.ErrNoMatch, "not_found"}, {clikit.ErrAmbiguous, "ambiguous"},
		{device.ErrNoAccount, "no_account"}, {device.ErrNoServer, "no_server"}, {device.ErrEnrollmentPending, "pending"},
		{client.ErrLogRollback, "log_rollback"}, {client.ErrLogFork, "log_fork"}, {client.ErrLogKeys, "log_keys"},
		{client.ErrWitness, "log_witness"}, {client.ErrNotLoggedYet, "not_logged_yet"}, {client.ErrNotLogged, "not_logged"},
		{client.ErrStaleHead, "stale_head"}, {client.ErrHeadNotLogged, "head_not_logged"}, {client.ErrNotFresh, "not_fresh"},
		{client.ErrRecoveryNotWitnessed, "recovery_not_witnessed"},
	} {
		if errors.Is(err, x.err) {
			return x.code
		}
	}
	var ae *client.APIError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return "error"
}

// hints are the next steps after errors, the first whose error matches:
// the library errors say what failed, the CLI says which command to run.
var hints = []struct {
	errs []error
	hint string
}{
	{[]error{keystore.ErrNotInitialized}, "create one with `enigm keystore init` (or `enigm init` for an account), or point --home at an existing one"},
	{[]error{keystore.ErrBadPassphrase}, "check $ENIGM_PASSPHRASE or --passphrase-file; nothing was changed"},
	{[]error{keystore.ErrInUse}, "another enigm process holds the keystore; retry when it has finished"},
	{[]error{keystore.ErrCorrupt}, "the damaged item was left untouched; the other keys still work"},
	{[]error{keystore.ErrNotFound, keystore.ErrAmbiguous}, "`enigm keys list` shows the key ids"},
	{[]error{device.ErrNoAccount}, "set up an account with `enigm init`, or join one with `enigm enroll` (or `enigm recover`)"},
	{[]error{device.ErrNoServer}, "pass --server URL or set $ENIGM_SERVER (init and enroll save it)"},
	{[]error{device.ErrEnrollmentPending}, "finish it with `enigm sync` (after the approving device ran `enigm approve`)"},
	{[]error{device.ErrRevokeThisDevice}, "nothing was revoked; to revoke this device, add --this-device"},
	{[]error{device.ErrRevokeLastDevice}, "nothing was revoked; to revoke the account's last active device, add --last-device"},
	{[]error{device.ErrNoPendingRecovery}, "nothing was vetoed; `enigm sync` shows a pending recovery of this account"},
	{[]error{pkcs11.ErrAdoptedKey}, "nothing was created or changed; `pkcs11-tool --module MODULE --login --list-objects` lists the token's keys; on a YubiKey make the key with `ykman piv keys generate` and a certificate (README, \"Using a YubiKey or other PIV token\")"},
	{[]error{pkcs11.ErrNoPublicObjects}, "for a TPM, `enigm keystore init --backend tpm` seals to it directly; for a token that keeps every key behind the PIN, see ENIGM_PKCS11_PIN_ONLY_DESTROY in `enigm keystore init --help`"},
	{[]error{clikit.ErrNoMatch, clikit.ErrAmbiguous}, "`enigm devices` lists the account's devices with their ids and names"},
	{[]error{client.ErrLogRollback, client.ErrLogFork, client.ErrNotLogged}, "the server showed this device a history it cannot prove in its transparency log; nothing was accepted from it: report it to the server's operator (`enigm log status` lists the refused checkpoints kept as evidence)"},
	{[]error{client.ErrStaleHead}, "the server keeps showing an older head than its own log holds: it is hiding a newer link (perhaps a revocation) from this device; nothing after the logged head was accepted: report it to the server's operator"},
	{[]error{client.ErrNotFresh, client.ErrHeadNotLogged}, "the server cannot prove that the head it shows is the account's newest in its transparency log; run the command again in a few seconds, and report it to the server's operator if it persists"},
	{[]error{client.ErrLogKeys}, "the server's log is not signed by the keys this device follows; check --log-key against `enigm-command log public-key` (`enigm log status` shows the pinned keys)"},
	{[]error{client.ErrWitness}, "the server's checkpoints lack the witness cosignatures this device requires, or they are too old; `enigm log status` shows the policy and the refused checkpoints"},
	{[]error{client.ErrNotLoggedYet}, "a checkpoint follows within about a second: run the command again"},
	{[]error{client.ErrRecoveryNotWitnessed}, "the server cannot show that the recovery's waiting period has passed by the witnesses' time, so its completion was not accepted and the recovery is still pending: if it is not yours, veto it with `enigm veto`; report it to the server's operator (`enigm log status` lists the refused checkpoints kept as evidence)"},
}

// hintFor is the next step after err, or "".
func hintFor(err error) string {
	for _, h := range hints {
		for _, e := range h.errs {
			if errors.Is(err, e) {
				return h.hint
			}
		}
	}
	return ""
}

// Output prints v (a typed JSON struct; "version": 1 is added) under
// --json, else runs text.
func (c *Ctx) Output(v any, text func()) error {
	if c.G.JSON {
		return clikit.WriteJSON(c.Stdout, v)
	}
	text()
	return nil
}

// Printf writes human output (suppressed under --json).
func (c *Ctx) Printf(format string, a ...any) {
	if !c.G.JSON {
		fmt.Fprintf(c.Stdout, format, a...)
	}
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
