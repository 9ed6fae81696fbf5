package enigmcli

import (
	"strings"
	"testing"
)

// TestDemoMoved: `enigm demo` points to `enigm-command demo` with exit 2
// and prints nothing on stdout; the demo itself is tested in internal/app/commandcli.
func TestDemoMoved(t *testing.T) {
	tr := newTranscript(t)
	for _, args := range [][]string{{"demo"}, {"demo", "now"}} {
		r := tr.run("", args...)
		if r.code != ExitUsage || r.stdout != "" || !strings.Contains(r.stderr, "run `enigm-command demo`") {
			t.Errorf("enigm %s: %+v", strings.Join(args, " "), r)
		}
	}
}
