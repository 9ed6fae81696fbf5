// Package clikit is the command-line kit both Enigm binaries are built
// with (enigm and enigm-command): a thin layer over spf13/cobra that fixes
// what the two must share.
//
// # Commands
//
// A program is a list of [Command] specs named by their path ("keys
// sign"); the kit builds the cobra tree, the group words ("keys") and the
// help. Flags are bound by each command to typed fields of its own option
// struct (pflag's StringVar, BoolVar, DurationVar…), so a flag is read as
// a Go field, never looked up by name. A program builds its commands anew
// on every run, so options never leak from one run to the next (tests run
// many in one process).
//
// # Exit codes
//
// One table for both binaries ([ExitOK] … [ExitInterrupted]), printed in
// each program's help: 0 ok, 1 error, 2 usage, 3 denied by a policy or
// lifecycle rule, 4 a recovery of the account is pending (enigm sync),
// 130 interrupted (SIGINT).
//
// # Output
//
// --json output is a typed struct written by [WriteJSON], which adds the
// "version": 1 field every JSON answer carries. An error under --json is
// {"version": 1, "error": {"code", "message", "reasons"}} on stdout, and
// the message with its hint on stderr in either case.
//
// # Errors
//
// Library errors say what failed; the program's Classify maps the ones it
// recognises to an exit code, a stable code and a hint (the next command to
// run). The kit prints the message without the Go package prefixes
// ("keystore: ", "device: ") that wrapping repeats.
package clikit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes, the same in both binaries.
const (
	ExitOK    = 0
	ExitError = 1
	// ExitUsage: a mistake on the command line (unknown command or flag,
	// wrong number of arguments, a missing required flag); nothing ran.
	ExitUsage = 2
	// ExitDenied: the request was understood and refused by a policy or
	// lifecycle rule (a key use denied, a revoked device, an organisation
	// policy the server enforces).
	ExitDenied = 3
	// ExitRecoveryPending: `enigm sync` on an active device found a
	// recovery of its account pending in the verified chain.
	ExitRecoveryPending = 4
	// ExitInterrupted: the run was interrupted with SIGINT (Ctrl-C), the
	// shells' 128+2.
	ExitInterrupted = 130
)

// exitCodesHelp is the exit code table printed in a program's help;
// Program.ExitCodes adds the program's own lines.
const exitCodesHelp = `exit codes:
  0    ok
  1    error
  2    usage: a mistake on the command line; nothing was done
  3    denied by a policy or lifecycle rule (the reasons are printed)
%s  130  interrupted (Ctrl-C)
`

// ErrInterrupted is the cause of a context cancelled by SIGINT, and
// ErrTerminated by SIGTERM (see [SignalContext]).
var (
	ErrInterrupted = errors.New("interrupted")
	ErrTerminated  = errors.New("terminated")
)

// SignalContext returns a context cancelled with cause ErrInterrupted on
// SIGINT and ErrTerminated on SIGTERM. After the first signal the default
// handling comes back, so a second Ctrl-C ends a command that does not
// stop. stop releases the signals.
func SignalContext(parent context.Context) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case s := <-ch:
			signal.Stop(ch)
			if s == os.Interrupt {
				cancel(ErrInterrupted)
			} else {
				cancel(ErrTerminated)
			}
		case <-ctx.Done():
		}
	}()
	return ctx, func() { signal.Stop(ch); cancel(nil) }
}

// RunMain is all a cmd/ main does: it runs run with a SignalContext and the
// process's arguments, then exits the process with the code run returns.
// SIGINT ends the run with exit code 130; SIGTERM ends it as the command
// decides (serve: a graceful stop, exit 0).
func RunMain(run func(ctx context.Context, args []string) int) {
	ctx, stop := SignalContext(context.Background())
	code := run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// UsageError is a mistake on the command line: exit code 2.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a usage error.
func Usagef(format string, a ...any) error {
	return &UsageError{fmt.Errorf(format, a...)}
}

// exitError ends a run with a code and no message: what was to say is
// already printed.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// Exit returns an error that ends the run with code and prints nothing.
func Exit(code int) error { return &exitError{code} }

// Failure is what a program knows of an error a command returned.
type Failure struct {
	// Exit is the exit code; 0 means ExitError.
	Exit int
	// Code is the stable code of the --json error ("not_found"); ""
	// means "error".
	Code string
	// Hint is the next step for the user, printed after the message.
	Hint string
	// Reasons are a denial's reason codes.
	Reasons []string
	// Quiet: the command already printed its answer (as JSON under
	// --json); only the message goes to stderr.
	Quiet bool
}
