// Package scripttest holds the testscript commands the CLI transcripts of
// both binaries use (internal/app/*/testdata/script/*.txtar).
package scripttest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/enigm/enigm/internal/clikit"
)

// Main makes the test binary also the program name of the transcripts:
// run is the program's real Main, run as cmd/ runs it (clikit.RunMain).
func Main(m *testing.M, name string, run func(ctx context.Context, args []string) int) {
	testscript.Main(m, map[string]func(){name: func() { clikit.RunMain(run) }})
}

// Cmds are the transcript commands:
//
//	exits N PROG [ARGS...]   run PROG; fail unless it exits with code N
//	                         (stdout and stderr are then checked as after exec)
//	setenv-json VAR PATH[:N] set $VAR to the value at PATH (a.b.0.c) of the
//	                         JSON object on the last command's stdout (its
//	                         first N characters with :N)
func Cmds() map[string]func(ts *testscript.TestScript, neg bool, args []string) {
	return map[string]func(ts *testscript.TestScript, neg bool, args []string){
		"exits":       exits,
		"setenv-json": setenvJSON,
	}
}

func exits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits N PROG [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exits: %q is not an exit code", args[0])
	}
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		got = ee.ExitCode()
	case err != nil:
		ts.Fatalf("exits: %v", err)
	}
	if got != want {
		ts.Fatalf("%s exited %d, want %d", strings.Join(args[1:], " "), got, want)
	}
}

func setenvJSON(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: setenv-json VAR PATH[:N]")
	}
	path, n := args[1], -1
	if i := strings.LastIndexByte(path, ':'); i >= 0 {
		var err error
		if n, err = strconv.Atoi(path[i+1:]); err != nil || n < 0 {
			ts.Fatalf("setenv-json: %q is not a length", path[i+1:])
		}
		path = path[:i]
	}
	var v any
	if err := json.Unmarshal([]byte(ts.ReadFile("stdout")), &v); err != nil {
		ts.Fatalf("setenv-json: stdout is not JSON: %v", err)
	}
	for _, k := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[k]; !ok {
				ts.Fatalf("setenv-json: no %q in %s", k, path)
			}
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(x) {
				ts.Fatalf("setenv-json: no element %q in %s", k, path)
			}
			v = x[i]
		default:
			ts.Fatalf("setenv-json: %s: %q is not in an object or array", path, k)
		}
	}
	s, ok := v.(string)
	if !ok {
		s = fmt.Sprint(v)
	}
	if n >= 0 && n < len(s) {
		s = s[:n]
	}
	ts.Setenv(args[0], s)
}
