package commandcli

import (
	"fmt"
	"strings"
	"testing"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/internal/testkit"
)

func demoCLI(t *testing.T, args ...string) run {
	t.Helper()
	var out, errb strings.Builder
	env := testEnv(nil)
	env.Stdout, env.Stderr = &out, &errb
	env.DemoBackend = func() (backend.Backend, error) {
		return testkit.SoftBackend("")
	}
	code := Main(t.Context(), env, args)
	return run{code, out.String(), errb.String()}
}

func TestDemoRuns(t *testing.T) {
	r := demoCLI(t, "demo")
	if r.code != ExitOK {
		t.Fatalf("enigm-command demo: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"denied: app_not_authorized", "denied: locked", // policy
		"(phone shows ", "2 active devices", // enrollment with SAS
		`phone opened: "hello from the laptop"`,       // messaging
		"request device_approved", "tablet is active", // admin approval
		"no eligible device", "no longer active", "revoked, key_state", // revocation
		"opened 0 old message(s)", // recovery never restores old messages
		"done.",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	// The fingerprints printed for the call are the same.
	i := strings.Index(r.stdout, "laptop fingerprint ")
	if i < 0 {
		t.Fatal("no call fingerprints")
	}
	var a, b string
	fmt.Sscanf(r.stdout[i:], "laptop fingerprint %s phone fingerprint %s", &a, &b)
	if a == "" || strings.TrimSuffix(a, ",") != strings.TrimSuffix(b, ":") {
		t.Fatalf("call fingerprints differ: %q %q", a, b)
	}
}

// Under --json the demo answers only the usage error, as JSON: none of
// its prose reaches stdout.
func TestDemoRefusesJSON(t *testing.T) {
	r := demoCLI(t, "demo", "--json")
	if r.code != ExitUsage || !strings.Contains(r.stderr, "without --json") || strings.Contains(r.stdout, "Command") {
		t.Fatalf("enigm-command demo --json: %+v", r)
	}
	if e, _ := r.json(t)["error"].(map[string]any); e["code"] != "usage" {
		t.Fatalf("enigm-command demo --json: %s", r.stdout)
	}
}
