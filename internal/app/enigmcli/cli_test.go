package enigmcli

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/internal/clikit"
	"github.com/enigm/enigm/internal/testkit"
)

// transcript runs enigm commands against one home directory.
type transcript struct {
	t    *testing.T
	home string
	env  map[string]string
}

func newTranscript(t *testing.T) *transcript {
	return &transcript{t: t, home: filepath.Join(t.TempDir(), "home"), env: map[string]string{"ENIGM_PASSPHRASE": "pw one"}}
}

type result struct {
	code           int
	stdout, stderr string
}

func (r result) json(t *testing.T) map[string]any {
	t.Helper()
	return testkit.VersionedJSON(t, r.stdout)
}

func fastSoft(string, *Globals) (backend.Backend, error) {
	return testkit.SoftBackend("")
}

func (tr *transcript) run(stdin string, args ...string) result {
	return tr.runWith(fastSoft, stdin, args...)
}

func (tr *transcript) runWith(mk func(string, *Globals) (backend.Backend, error), stdin string, args ...string) result {
	var out, errb bytes.Buffer
	env := &Env{
		Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb,
		Getenv:   func(k string) string { return tr.env[k] },
		Terminal: func() bool { return false },
		Backend:  mk,
	}
	code := Main(context.Background(), env, append([]string{"--home", tr.home}, args...))
	return result{code, out.String(), errb.String()}
}

// must runs a command that must succeed.
func (tr *transcript) must(stdin string, args ...string) result {
	tr.t.Helper()
	r := tr.run(stdin, args...)
	if r.code != 0 {
		tr.t.Fatalf("enigm %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// Every command's help teaches: its usage line and at least one example
// (the transcripts in testdata/script show a few in full).
func TestHelpTeaches(t *testing.T) {
	tr := newTranscript(t)
	c := &Ctx{Env: &Env{}, G: &Globals{}}
	for _, b := range builders {
		cmd := b(c)
		r := tr.run("", append(strings.Fields(cmd.Path), "--help")...)
		if r.code != 0 || !strings.Contains(r.stdout, "usage: enigm "+cmd.Path) || !strings.Contains(r.stdout, "example") {
			t.Errorf("enigm %s --help: exit %d, missing usage or examples:\n%s", cmd.Path, r.code, r.stdout)
		}
	}
}

// Ctrl-C: a command whose context is cancelled by SIGINT exits 130, even
// when it stops cleanly.
func TestInterruptExits130(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(clikit.ErrInterrupted)
	tr := newTranscript(t)
	var out, errb bytes.Buffer
	env := &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb,
		Getenv: func(k string) string { return tr.env[k] }, Terminal: func() bool { return false }, Backend: fastSoft}
	if code := Main(ctx, env, []string{"--home", tr.home, "keystore", "init", "--backend", "soft"}); code != ExitInterrupted || !strings.Contains(errb.String(), "interrupted") {
		t.Fatalf("interrupted init: exit %d, stderr %q", code, errb.String())
	}
}
