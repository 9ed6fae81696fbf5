package commandcli

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/enigm/enigm/command"
	"github.com/enigm/enigm/internal/redact"
)

// adminPolicyAccount starts a server with an organisation and a managed
// account under policy p, and returns the admin client's environment and
// the account id.
func adminPolicyAccount(t *testing.T, p command.Policy) (map[string]string, string) {
	t.Helper()
	data := filepath.Join(t.TempDir(), "data")
	url := serve(t, data)
	r := cli(t, nil, "org", "create", "acme", "--data", data, "--require-admin-approval", "--require-admin-review", "--recovery-delay", "72h", "--min-protection", "software", "--json")
	if r.code != 0 {
		t.Fatalf("org create: %+v", r)
	}
	org := r.json(t)
	r = cli(t, nil, "org", "invite", "acme", "--account", "alice", "--data", data, "--json")
	if r.code != 0 {
		t.Fatalf("org invite: %+v", r)
	}
	code := r.json(t)["invite_code"].(string)
	admin := inviteAdminKey(t, url, code)
	acct, _ := managedAccount(t, url, "alice", org["org_id"].(string), code, admin, p)
	return map[string]string{"ENIGM_ADMIN_TOKEN": org["admin_token"].(string), "ENIGM_SERVER": url}, acct
}

// `admin set-policy` changes only the settings whose flags are given: a new
// recovery delay leaves admin approval and review on (it used to turn off
// every flag not passed), and the command shows the policy before and
// after.
func TestAdminSetPolicyIsPartial(t *testing.T) {
	genesis := command.Policy{RequireAdminApproval: true, RequireAdminReview: true, RecoveryDelaySeconds: 72 * 3600, MinLevel: "software"}
	vars, acct := adminPolicyAccount(t, genesis)

	r := cli(t, vars, "admin", "set-policy", acct, "--recovery-delay", "96h", "--json")
	if r.code != 0 {
		t.Fatalf("set-policy --recovery-delay: %+v", r)
	}
	var out struct {
		Previous, Policy command.Policy
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatal(err)
	}
	want := genesis
	want.RecoveryDelaySeconds = 96 * 3600
	if out.Previous != genesis || out.Policy != want {
		t.Fatalf("set-policy --recovery-delay 96h:\n before %+v (want %+v)\n after  %+v (want %+v)", out.Previous, genesis, out.Policy, want)
	}

	// Text: a table of every setting before and after, the changed one
	// marked; a flag turned off explicitly.
	r = cli(t, vars, "admin", "set-policy", acct, "--require-admin-review=false")
	if r.code != 0 {
		t.Fatalf("set-policy --require-admin-review=false: %+v", r)
	}
	for _, re := range []string{
		`(?m)^\s+BEFORE\s+AFTER`,
		`(?m)^require admin review\s+true\s+false\s+changed$`,
		`(?m)^require admin approval\s+true\s+true\s*$`,
		`(?m)^recovery delay\s+96h0m0s\s+96h0m0s\s*$`,
		`(?m)^min protection\s+software\s+software\s*$`,
	} {
		if !regexp.MustCompile(re).MatchString(r.stdout) {
			t.Errorf("set-policy output lacks %s:\n%s", re, r.stdout)
		}
	}
	r = cli(t, vars, "admin", "audit", "--json")
	var last string
	for _, e := range r.json(t)["entries"].([]any) {
		if e.(map[string]any)["action"] == "account.set_policy" {
			last = e.(map[string]any)["detail"].(string)
		}
	}
	if !strings.Contains(last, "RequireAdminApproval:true") || !strings.Contains(last, "RequireAdminReview:false") {
		t.Fatalf("last set_policy audit entry: %q", last)
	}

	// No flag: nothing to change, refused before reaching the server.
	if r := cli(t, vars, "admin", "set-policy", acct); r.code != ExitUsage || !strings.Contains(r.stderr, "flags to change") {
		t.Fatalf("set-policy without flags: %+v", r)
	}
}

// The admin token is a bearer token: the admin client sends it over plain
// http:// only to this machine and says what to use instead.
func TestAdminRefusesPlainHTTPToAnotherHost(t *testing.T) {
	for _, server := range []string{"http://command.example:8470", "http://10.1.2.3"} {
		r := cli(t, map[string]string{"ENIGM_ADMIN_TOKEN": "eat_secret", "ENIGM_SERVER": server}, "admin", "accounts")
		if r.code != ExitUsage || !strings.Contains(r.stderr, "https://"+strings.TrimPrefix(server, "http://")) {
			t.Errorf("admin accounts --server %s: %+v", server, r)
		}
		if strings.Contains(r.stderr+r.stdout, "eat_secret") {
			t.Error("the admin token was printed")
		}
	}
}

// The admin client prints no admin token with any verb.
func TestAdminClientRedacted(t *testing.T) {
	tok := "eat_0123456789abcdefghijklmnopqrstuv"
	if err := redact.Leak(&adminClient{server: "https://command.example", token: tok}, []byte(tok)); err != nil {
		t.Fatal(err)
	}
}

// The admin commands' tables: the empty line when there is nothing, else
// a header and one tab-separated row per item, every cell as %v prints it.
func TestPrintTable(t *testing.T) {
	type item struct {
		id  string
		seq uint64
	}
	cell := func(x item) []any { return []any{x.id, x.seq} }
	for _, tc := range []struct {
		rows []item
		want string
	}{
		{nil, "nothing here\n"},
		{[]item{{"a1", 0}, {"b2", 17}}, "ID\tHEAD\na1\t0\nb2\t17\n"},
	} {
		var b strings.Builder
		printTable(&b, tc.rows, "nothing here", []any{"ID", "HEAD"}, cell)
		if b.String() != tc.want {
			t.Errorf("printTable(%v) = %q, want %q", tc.rows, b.String(), tc.want)
		}
	}
	if got := mapAll([]int(nil), func(i int) int { return i }); got == nil || len(got) != 0 {
		t.Errorf("mapAll(nil) = %#v, want an empty slice (it is a JSON list)", got)
	}
}
