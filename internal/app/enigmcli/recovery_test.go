package enigmcli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/command"
	"github.com/enigm/enigm/command/commandtest"
)

// rvServer runs a Command server in the test process.
func rvServer(t *testing.T) string {
	t.Helper()
	return commandtest.Serve(t, command.Config{DataDir: t.TempDir(), RateLimits: &command.RateLimits{Disabled: true},
		KeystoreBackend:    func(n string) (backend.Backend, error) { return fastSoft(n, nil) },
		KeystorePassphrase: []byte("command"), MinRecoveryDelay: time.Hour, JanitorInterval: -1})
}

// rvDevice is a transcript of one device home against server.
func rvDevice(t *testing.T, server, name string) *transcript {
	tr := newTranscript(t)
	tr.home = filepath.Join(t.TempDir(), name)
	tr.env["ENIGM_SERVER"] = server
	tr.env["ENIGM_PASSPHRASE"] = "pw " + name
	return tr
}

// rvTerminal runs a command as if on a terminal, with stdin typed.
func (tr *transcript) rvTerminal(stdin string, args ...string) result {
	var out, errb strings.Builder
	env := &Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb,
		Getenv: func(k string) string { return tr.env[k] }, Terminal: func() bool { return true }, Backend: fastSoft}
	code := Main(context.Background(), env, append([]string{"--home", tr.home}, args...))
	return result{code, out.String(), errb.String()}
}

func rvObj(t *testing.T, m map[string]any, k string) map[string]any {
	t.Helper()
	o, ok := m[k].(map[string]any)
	if !ok {
		t.Fatalf("no %q object in %v", k, m)
	}
	return o
}

// rvPair sets up account "kim" with devices a and b; it returns them and
// the recovery code file.
func rvPair(t *testing.T, srv string) (a, b *transcript, codeFile string) {
	a, b = rvDevice(t, srv, "a"), rvDevice(t, srv, "b")
	codeFile = filepath.Join(t.TempDir(), "kim.recovery")
	a.must("", "init", "--account", "kim", "--name", "a", "--recovery-delay", "2h", "--recovery-code-file", codeFile)
	en := b.must("", "enroll", "--account", "kim", "--name", "b", "--no-wait", "--json").json(t)
	a.must("", "approve", en["request_id"].(string), "--code", en["pairing_code"].(string))
	b.must("", "sync")
	return a, b, codeFile
}

// A recovery with a leaked code: the owner's sync exits 4 and shows it (in
// text and JSON), status and devices show it, and veto without an id
// stops it.
func TestRecoveryPendingTranscript(t *testing.T) {
	srv := rvServer(t)
	a, b, codeFile := rvPair(t, srv)
	if r := a.run("", "veto"); r.code != 1 || !strings.Contains(r.stderr, "no recovery is pending") {
		t.Fatalf("veto with nothing pending: %+v", r)
	}
	thief := rvDevice(t, srv, "thief")
	rr := thief.must("", "recover", "--account", "kim", "--recovery-code-file", codeFile, "--name", "thief-phone", "--no-wait", "--json").json(t)
	rid, tdev := rr["request_id"].(string), rr["device_id"].(string)

	r := a.run("", "sync")
	if r.code != ExitRecoveryPending || !strings.Contains(r.stdout, rid) || !strings.Contains(r.stdout, "thief-phone") ||
		!strings.Contains(r.stderr, "enigm veto") || !strings.Contains(r.stderr, tdev) {
		t.Fatalf("sync with a pending recovery: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	r = b.run("", "sync", "--json")
	if r.code != ExitRecoveryPending {
		t.Fatalf("sync --json: exit %d, stderr %s", r.code, r.stderr)
	}
	rec := rvObj(t, r.json(t), "recovery")
	if rec["request_id"] != rid || rec["device_id"] != tdev || rec["name"] != "thief-phone" || rec["requested_at"] == nil || rec["not_before"] == nil {
		t.Fatalf("sync --json recovery: %v", rec)
	}
	nb, err := time.Parse(time.RFC3339, rec["not_before"].(string))
	at, err2 := time.Parse(time.RFC3339, rec["requested_at"].(string))
	if err != nil || err2 != nil || nb.Sub(at) != 2*time.Hour {
		t.Fatalf("not_before %v - requested_at %v is not the 2h waiting period (%v %v)", rec["not_before"], rec["requested_at"], err, err2)
	}
	if st := a.must("", "status", "--json").json(t); rvObj(t, st, "recovery")["request_id"] != rid {
		t.Fatalf("status --json: %v", st)
	}
	if st := a.must("", "status"); !strings.Contains(st.stdout, "RECOVERY") || !strings.Contains(st.stdout, rid) {
		t.Fatalf("status: %s", st.stdout)
	}
	if dv := b.must("", "devices", "--json").json(t); rvObj(t, dv, "recovery")["device_id"] != tdev {
		t.Fatalf("devices --json: %v", dv)
	}
	if dv := b.must("", "devices"); !strings.Contains(dv.stdout, "recovery requested") || !strings.Contains(dv.stdout, tdev) {
		t.Fatalf("devices: %s", dv.stdout)
	}
	// The recovering device's own sync is not a warning about itself.
	if r := thief.run("", "sync"); r.code != 0 {
		t.Fatalf("the recovering device's sync: %+v", r)
	}

	if r := a.run("", "veto", "ab", "cd"); r.code != ExitUsage {
		t.Fatalf("veto with two ids: %+v", r)
	}
	v := a.must("", "veto", "--json").json(t)
	if v["vetoed"] != rid {
		t.Fatalf("veto: %v", v)
	}
	if r := a.run("", "sync", "--json"); r.code != 0 || r.json(t)["recovery"] != nil {
		t.Fatalf("sync after the veto: %+v", r)
	}
	if r := b.run("", "sync"); r.code != 0 {
		t.Fatalf("B's sync after the veto: %+v", r)
	}
	if r := thief.run("", "sync"); r.code == 0 || !strings.Contains(r.stderr, "vetoed") {
		t.Fatalf("the vetoed device's sync: %+v", r)
	}
}

// enigm recovery rotate shows the new code once (or writes it 0600), and
// the old code stops working.
func TestRecoveryRotateTranscript(t *testing.T) {
	srv := rvServer(t)
	a, b, codeFile := rvPair(t, srv)
	old, _ := os.ReadFile(codeFile)
	r := a.must("", "recovery", "rotate")
	if !strings.Contains(r.stdout, "NEW RECOVERY CODE") || strings.Contains(r.stdout, strings.TrimSpace(string(old))) {
		t.Fatalf("rotate: %s", r.stdout)
	}
	if r := rvDevice(t, srv, "c").run("", "recover", "--account", "kim", "--recovery-code-file", codeFile, "--no-wait"); r.code == 0 ||
		!strings.Contains(r.stderr, "does not belong") {
		t.Fatalf("recover with the replaced code: %+v", r)
	}
	newFile := filepath.Join(t.TempDir(), "kim.recovery.new")
	j := b.must("", "recovery", "rotate", "--recovery-code-file", newFile, "--json").json(t)
	if _, leaked := j["recovery_code"]; leaked || j["recovery_code_file"] != newFile {
		t.Fatalf("rotate --recovery-code-file --json: %v", j)
	}
	if fi, err := os.Stat(newFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("new code file: %v %v", fi, err)
	}
	// An existing file is never overwritten.
	if r := b.run("", "recovery", "rotate", "--recovery-code-file", newFile); r.code == 0 {
		t.Fatalf("rotate over an existing file: %+v", r)
	}
	d := rvDevice(t, srv, "d")
	d.must("", "recover", "--account", "kim", "--recovery-code-file", newFile, "--no-wait")
	if r := a.run("", "sync"); r.code != ExitRecoveryPending {
		t.Fatalf("the new code's recovery is not pending on A: %+v", r)
	}
}

// Revoking this device or the last device: --yes alone refuses and names
// the flag to add; the flag, or the id typed on a terminal, confirms.
func TestRevokeConfirmationTranscript(t *testing.T) {
	srv := rvServer(t)
	a, b, _ := rvPair(t, srv)
	aid := a.must("", "status", "--json").json(t)["device_id"].(string)
	bid := b.must("", "status", "--json").json(t)["device_id"].(string)

	if r := a.run("", "revoke", aid, "--yes"); r.code != ExitUsage || !strings.Contains(r.stderr, "--this-device") || strings.Contains(r.stderr, "--last-device") {
		t.Fatalf("revoke this device with --yes only: %+v", r)
	}
	if r := a.rvTerminal("nope\n", "revoke", aid); r.code == 0 || !strings.Contains(r.stderr, "not confirmed") {
		t.Fatalf("revoke this device with a wrong typed confirmation: %+v", r)
	}
	if st := a.must("", "status", "--online", "--json").json(t); st["state"] != "active" {
		t.Fatalf("A after refused revocations: %v", st)
	}
	if r := a.rvTerminal(aid[:8]+"\n", "revoke", aid); r.code != 0 {
		t.Fatalf("revoke this device with the id typed: %+v", r)
	}
	if r := a.run("", "sync"); r.code == 0 {
		t.Fatalf("A syncs after revoking itself: %+v", r)
	}
	// B is the last active device.
	r := b.run("", "revoke", bid, "--yes", "--this-device")
	if r.code != ExitUsage || !strings.Contains(r.stderr, "--last-device") || !strings.Contains(r.stderr, "LAST active device") {
		t.Fatalf("revoke the last device without --last-device: %+v", r)
	}
	b.must("", "revoke", bid, "--yes", "--this-device", "--last-device")
	if r := b.run("", "sync"); r.code == 0 {
		t.Fatalf("B syncs after revoking itself: %+v", r)
	}
}
