package enigmcli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/enigm/enigm/backend"
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

func TestKeystoreTranscript(t *testing.T) {
	tr := newTranscript(t)
	r := tr.must("", "keystore", "init", "--backend", "soft", "--json").json(t)
	if r["backend"] != "soft" || r["protection"] != "software" {
		t.Fatalf("init: %v", r)
	}
	st := tr.must("", "keystore", "status", "--json").json(t)
	for _, f := range []string{"backend", "protection", "locked"} {
		if _, ok := st[f]; !ok {
			t.Fatalf("status lacks %q: %v", f, st)
		}
	}
	if st["locked"] != true || st["revoked"] != false {
		t.Fatalf("status: %v", st)
	}
	gen := tr.must("", "keys", "generate", "--class", "identity", "--json").json(t)
	key := gen["key"].(map[string]any)
	id := key["id"].(string)
	list := tr.must("", "keys", "list", "--json").json(t)
	keys := list["keys"].([]any)
	if len(keys) != 1 {
		t.Fatalf("list: %v", list)
	}
	for _, f := range []string{"id", "class", "algorithm", "state", "created"} {
		if _, ok := keys[0].(map[string]any)[f]; !ok {
			t.Fatalf("key lacks %q: %v", f, keys[0])
		}
	}
	// Sign stdin with a prefix of the id; verify it.
	sig := tr.must("hello\n", "keys", "sign", "--key", id[:8], "--purpose", "greeting").stdout
	sigFile := filepath.Join(t.TempDir(), "sig")
	os.WriteFile(sigFile, []byte(sig), 0o600)
	tr.must("hello\n", "keys", "verify", "--key", id, "--sig", sigFile, "--purpose", "greeting")
	if r := tr.run("tampered\n", "keys", "verify", "--key", id, "--sig", sigFile, "--purpose", "greeting"); r.code != 1 || !strings.Contains(r.stderr, "does not verify") {
		t.Fatalf("tampered input verified: %+v", r)
	}
	// --out writes raw bytes, 0600, never overwriting.
	out := filepath.Join(t.TempDir(), "raw.sig")
	tr.must("x", "keys", "sign", "--key", id, "--out", out)
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != 3373 {
		t.Fatalf("--out file: %v %v", fi, err)
	}
	if r := tr.run("x", "keys", "sign", "--key", id, "--out", out); r.code == 0 {
		t.Fatal("--out overwrote an existing file")
	}
	pub := tr.must("", "keys", "public", "--key", id, "--json").json(t)
	if pub["public"] != key["public"] || pub["algorithm"] != "ed25519+ml-dsa-65" {
		t.Fatalf("public: %v", pub)
	}
	rot := tr.must("", "keys", "rotate", "--key", id, "--json").json(t)
	if rot["old"].(map[string]any)["state"] != "superseded" || rot["new"].(map[string]any)["state"] != "active" {
		t.Fatalf("rotate: %v", rot)
	}
	// The superseded key may no longer sign: exit 3 with the reason code.
	r2 := tr.run("x", "keys", "sign", "--key", id, "--json")
	if r2.code != ExitDenied || !strings.Contains(r2.stderr, "key_state") {
		t.Fatalf("superseded key signed: %+v", r2)
	}
	e := r2.json(t)["error"].(map[string]any)
	if e["code"] != "denied" || e["reasons"].([]any)[0] != "key_state" {
		t.Fatalf("denial JSON: %v", e)
	}
	newID := rot["new"].(map[string]any)["id"].(string)
	if r := tr.run("", "keys", "revoke", "--key", newID); r.code != ExitUsage {
		t.Fatalf("revoke without --yes and no terminal: %+v", r)
	}
	tr.must("", "keys", "revoke", "--key", newID, "--yes")
	if r := tr.run("x", "keys", "sign", "--key", newID); r.code != ExitDenied {
		t.Fatalf("revoked key signed: %+v", r)
	}
	// The audit log has every decision, allowed and denied.
	a := tr.must("", "audit", "--limit", "0", "--json").json(t)
	if a["intact"] != true {
		t.Fatalf("audit: %v", a)
	}
	var allowed, denied int
	for _, x := range a["entries"].([]any) {
		m := x.(map[string]any)
		if m["kind"] == "decision" {
			if m["allowed"] == true {
				allowed++
			} else {
				denied++
			}
		}
	}
	if allowed != 2 || denied != 2 {
		t.Fatalf("audit has %d allowed and %d denied decisions, want 2 and 2", allowed, denied)
	}
	p := tr.must("", "posture", "--json").json(t)
	if _, ok := p["level"]; !ok {
		t.Fatalf("posture: %v", p)
	}
	// Session keys from the CLI carry a TTL.
	s := tr.must("", "keys", "generate", "--class", "session", "--ttl", "10m", "--cause", "call_setup", "--json").json(t)
	if s["key"].(map[string]any)["expires"] == nil {
		t.Fatalf("session key without expiry: %v", s)
	}
}

func TestBadInputTranscript(t *testing.T) {
	tr := newTranscript(t)
	if r := tr.run("", "keys", "list"); r.code != 1 || !strings.Contains(r.stderr, "keystore init") {
		t.Fatalf("no keystore: %+v", r)
	}
	tr.must("", "keystore", "init", "--backend", "soft")
	if r := tr.run("", "keystore", "init", "--backend", "soft"); r.code == 0 || !strings.Contains(r.stderr, "already") {
		t.Fatalf("second init: %+v", r)
	}
	gen := tr.must("", "keys", "generate", "--class", "identity", "--json").json(t)
	id := gen["key"].(map[string]any)["id"].(string)

	tr.env["ENIGM_PASSPHRASE"] = "wrong"
	r := tr.run("x", "keys", "sign", "--key", id, "--json")
	if r.code != 1 || r.json(t)["error"].(map[string]any)["code"] != "bad_passphrase" {
		t.Fatalf("wrong passphrase: %+v", r)
	}
	delete(tr.env, "ENIGM_PASSPHRASE")
	if r := tr.run("x", "keys", "sign", "--key", id); r.code != 1 || !strings.Contains(r.stderr, "ENIGM_PASSPHRASE") {
		t.Fatalf("no passphrase source: %+v", r)
	}
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("pw one\n"), 0o600)
	tr.must("x", "keys", "sign", "--key", id, "--passphrase-file", pw)

	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"keys", "sign", "--key", "ffffffff", "--passphrase-file", pw}, 1, "no such key"},
		{[]string{"keys", "sign", "--key", "ab", "--passphrase-file", pw}, 1, "at least 6"},
		{[]string{"keys", "sign", "--passphrase-file", pw}, 2, "--key is required"},
		{[]string{"keys", "sign", "--key", id, "--purpose", "Bad Purpose", "--passphrase-file", pw}, 1, "purpose"},
		{[]string{"keys", "generate", "--class", "nope"}, 2, "--class"},
		{[]string{"keys", "frobnicate"}, 2, "unknown command"},
		{[]string{"keys", "list", "extra"}, 2, "takes 0 argument"},
		{[]string{"keys", "list", "--bogus"}, 2, "flag provided but not defined"},
	} {
		r := tr.run("x", c.args...)
		if r.code != c.code || !strings.Contains(r.stderr, c.want) {
			t.Errorf("enigm %s: exit %d, stderr %q; want exit %d and %q", strings.Join(c.args, " "), r.code, r.stderr, c.code, c.want)
		}
	}
	// The key is still there and usable: nothing was lost.
	tr.must("x", "keys", "sign", "--key", id, "--passphrase-file", pw)
}

func TestHelpTeaches(t *testing.T) {
	tr := newTranscript(t)
	for _, c := range commands {
		r := tr.run("", append(strings.Fields(c.Path), "--help")...)
		if r.code != 0 || !strings.Contains(r.stdout, "usage: enigm "+c.Path) || !strings.Contains(r.stdout, "example") {
			t.Errorf("enigm %s --help: exit %d, missing usage or examples:\n%s", c.Path, r.code, r.stdout)
		}
	}
	if r := tr.run(""); r.code != ExitUsage || !strings.Contains(r.stdout, "keys sign") {
		t.Fatalf("bare enigm: %+v", r)
	}
}
