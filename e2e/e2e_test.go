// Package e2e drives the built binaries — enigm-command serving on
// loopback and several enigm devices, each with its own home — through the
// key management model end to end.
package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/hybrid"
	"github.com/enigm/enigm/internal/testkit"
)

type harness struct {
	t       *testing.T
	bin     string
	data    string
	server  string
	srv     *exec.Cmd
	srvLog  *testkit.Buffer
	tmp     string
	cmdPass string
}

func build(t *testing.T, dir string) {
	t.Helper()
	goBin := "go" // go test puts its own GOROOT/bin first in PATH
	for _, pkg := range []string{"enigm", "enigm-command"} {
		cmd := exec.Command(goBin, "build", "-o", filepath.Join(dir, pkg), "../cmd/"+pkg)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// start builds the binaries and starts enigm-command; with -short the
// test is skipped instead.
func start(t *testing.T) *harness { t.Helper(); return startWith(t, nil) }

// startWith is start where prepare (when not nil) runs after the build,
// before enigm-command starts, and returns more arguments for serve.
func startWith(t *testing.T, prepare func(h *harness) []string) *harness {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	h := &harness{t: t, tmp: t.TempDir(), cmdPass: "command keystore passphrase"}
	h.bin = filepath.Join(h.tmp, "bin")
	os.Mkdir(h.bin, 0o755)
	build(t, h.bin)
	h.data = filepath.Join(h.tmp, "command-data")
	addr := freePort(t)
	h.server = "http://" + addr
	h.srvLog = &testkit.Buffer{}
	args := []string{"serve", "--listen", addr, "--data", h.data, "--no-rate-limit", "--min-recovery-delay", "0s", "--dev-allow-zero-recovery-delay"}
	if prepare != nil {
		args = append(args, prepare(h)...)
	}
	h.srv = exec.Command(filepath.Join(h.bin, "enigm-command"), args...)
	h.srv.Env = append(os.Environ(), "ENIGM_COMMAND_PASSPHRASE="+h.cmdPass)
	h.srv.Stdout, h.srv.Stderr = h.srvLog, h.srvLog
	testkit.NoErr(t, h.srv.Start())
	t.Cleanup(func() {
		if !stopServer(h.srv) {
			t.Error("the server did not shut down within 10s of SIGINT")
		}
		if t.Failed() {
			t.Logf("server log:\n%s", h.srvLog.String())
		}
	})
	waitHealthy(t, h.server, h.srvLog)
	return h
}

// stopServer stops an enigm-command process gracefully (SIGINT) and
// reports whether it exited within 10 s; otherwise it is killed.
func stopServer(srv *exec.Cmd) bool {
	srv.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- srv.Wait() }()
	select {
	case <-done:
		return true
	case <-time.After(10 * time.Second):
		srv.Process.Kill()
		return false
	}
}

// waitHealthy waits (5 s at most) until the server at base answers
// /healthz with 200.
func waitHealthy(t *testing.T, base string, log *testkit.Buffer) {
	t.Helper()
	for i := 0; ; i++ {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if i > 100 {
			t.Fatalf("the server at %s did not come up: %v\n%s", base, err, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// metrics returns the server's /metrics text.
func (h *harness) metrics() string {
	h.t.Helper()
	resp, err := http.Get(h.server + "/metrics")
	testkit.NoErr(h.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	testkit.NoErr(h.t, err)
	return string(b)
}

type result struct {
	code   int
	stdout string
	stderr string
}

// json is the command's --json output (testkit.VersionedJSON).
func (r result) json(t *testing.T) map[string]any {
	t.Helper()
	return testkit.VersionedJSON(t, r.stdout)
}

// runBinary runs the binary name from the harness's build with env added
// to the environment; a failure to start it fails the test.
func (h *harness) runBinary(name string, env []string, stdin string, args ...string) result {
	cmd := exec.Command(filepath.Join(h.bin, name), args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		h.t.Fatal(err)
	}
	return result{code, out.String(), errb.String()}
}

// device is one enigm home.
type device struct {
	h    *harness
	home string
	pass string
}

func (h *harness) device(name string) *device {
	return &device{h: h, home: filepath.Join(h.tmp, "home-"+name), pass: "passphrase of " + name}
}

func (d *device) run(stdin string, args ...string) result {
	return d.h.runBinary("enigm", []string{"ENIGM_HOME=" + d.home, "ENIGM_PASSPHRASE=" + d.pass, "ENIGM_SERVER=" + d.h.server}, stdin, args...)
}

func (d *device) ok(stdin string, args ...string) result {
	d.h.t.Helper()
	r := d.run(stdin, args...)
	if r.code != 0 {
		d.h.t.Fatalf("enigm %s (%s): exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), filepath.Base(d.home), r.code, r.stdout, r.stderr)
	}
	return r
}

func (h *harness) command(env []string, args ...string) result {
	r := h.runBinary("enigm-command", append([]string{"ENIGM_COMMAND_PASSPHRASE=" + h.cmdPass, "ENIGM_SERVER=" + h.server}, env...), "", args...)
	if r.code != 0 {
		h.t.Fatalf("enigm-command %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func TestEndToEnd(t *testing.T) {
	h := start(t)

	// 1. An unmanaged account: init A, enroll B approved by A, A sends, B receives.
	a, b := h.device("a"), h.device("b")
	ai := a.ok("", "init", "--account", "pat", "--name", "a", "--recovery-delay", "0s", "--json").json(t)
	if str(ai, "recovery_code") == "" || str(ai, "account_id") == "" {
		t.Fatalf("init: %v", ai)
	}
	en := b.ok("", "enroll", "--account", "pat", "--name", "b", "--no-wait", "--json").json(t)
	ap := a.ok("", "approve", str(en, "request_id"), "--code", str(en, "pairing_code"), "--json").json(t)
	if ap["sas"] != en["sas"] || str(ap, "sas") == "" {
		t.Fatalf("the devices show different SAS: %v vs %v", ap["sas"], en["sas"])
	}
	if st := b.ok("", "sync", "--json").json(t); str(st, "state") != "active" {
		t.Fatalf("B after approval: %v", st)
	}
	a.ok("hello pat's other device", "send", "--to", "pat")
	msgs := b.ok("", "receive", "--json").json(t)["messages"].([]any)
	if len(msgs) != 1 || msgs[0].(map[string]any)["body"] != base64.StdEncoding.EncodeToString([]byte("hello pat's other device")) {
		t.Fatalf("B received: %v", msgs)
	}
	// The message went on the wire once, as its message form, and Command
	// split it: no send of one ciphertext per device.
	if m := h.metrics(); !strings.Contains(m, `enigm_command_sends_total{body="message_form"} 1`) || strings.Contains(m, `body="envelopes"`) {
		t.Fatalf("the send was not one message form:\n%s", m)
	}

	// 2. A managed organisation: enrollment waits for the admin.
	org := h.command(nil, "org", "create", "acme", "--require-admin-approval", "--recovery-delay", "3s", "--data", h.data, "--json")
	var om map[string]any
	json.Unmarshal([]byte(org.stdout), &om)
	admin := []string{"ENIGM_ADMIN_TOKEN=" + str(om, "admin_token")}
	inv := h.command(nil, "org", "invite", "acme", "--account", "alice", "--data", h.data, "--json")
	var im map[string]any
	json.Unmarshal([]byte(inv.stdout), &im)

	x, y := h.device("x"), h.device("y")
	codeFile := filepath.Join(h.tmp, "alice.recovery")
	xi := x.ok("", "init", "--account", "alice", "--org", str(om, "org_id"), "--invite", str(im, "invite_code"),
		"--recovery-code-file", codeFile, "--name", "x", "--json").json(t)
	if _, leaked := xi["recovery_code"]; leaked {
		t.Fatal("the recovery code was printed although written to a file")
	}
	if fi, err := os.Stat(codeFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("recovery code file: %v %v", fi, err)
	}
	alice := str(xi, "account_id")
	en = y.ok("", "enroll", "--account", "alice", "--name", "y", "--no-wait", "--json").json(t)
	ap = x.ok("", "approve", str(en, "request_id"), "--code", str(en, "pairing_code"), "--json").json(t)
	if str(ap, "state") != "device_approved" {
		t.Fatalf("managed approval by the device: %v", ap)
	}
	if st := y.ok("", "sync", "--json").json(t); str(st, "state") == "active" {
		t.Fatal("Y joined without the admin's approval")
	}
	h.command(admin, "admin", "approve", str(en, "request_id"))
	if st := y.ok("", "sync", "--json").json(t); str(st, "state") != "active" {
		t.Fatalf("Y after the admin's approval: %v", st)
	}
	ydev := str(en, "device_id")
	devs := x.ok("", "devices", "--json").json(t)["devices"].([]any)
	if len(devs) != 2 {
		t.Fatalf("devices: %v", devs)
	}
	for _, d := range devs {
		m := d.(map[string]any)
		for _, f := range []string{"device_id", "name", "state", "protection", "approved_by", "added_at"} {
			if _, ok := m[f]; !ok {
				t.Fatalf("device lacks %s: %v", f, m)
			}
		}
	}
	x.ok("for Y", "send", "--to", "alice")
	if msgs := y.ok("", "receive", "--json").json(t)["messages"].([]any); len(msgs) != 1 {
		t.Fatalf("Y received %d messages", len(msgs))
	}
	call := x.ok("", "call", "--to", "alice", "--json").json(t)
	acc := y.ok("", "call", "accept", str(call, "call_id"), "--json").json(t)
	if str(acc, "fingerprint") != str(call, "fingerprint") || str(acc, "fingerprint") == "" {
		t.Fatalf("call fingerprints differ: %v %v", call, acc)
	}
	yKeys := y.ok("", "keys", "list", "--json").json(t)["keys"].([]any)

	// 3. The admin revokes Y: Y receives nothing, cannot sync, cannot join a
	// call, and its keystore refuses every key use.
	h.command(admin, "admin", "revoke", alice, ydev, "--yes")
	if r := x.run("after revocation", "send", "--to", "alice"); r.code == 0 {
		t.Fatalf("a message was sent with only a revoked other device: %s", r.stdout)
	}
	call2 := x.run("", "call", "--to", "alice", "--json")
	if call2.code == 0 {
		t.Fatalf("a call was set up with only a revoked other device: %s", call2.stdout)
	}
	if r := y.run("", "receive", "--json"); r.code == 0 || !strings.Contains(r.stderr, "no longer active") {
		t.Fatalf("revoked Y receives: %+v", r)
	}
	if r := y.run("", "sync"); r.code == 0 {
		t.Fatalf("revoked Y syncs: %+v", r)
	}
	if r := y.run("", "call", "accept", str(call, "call_id")); r.code == 0 {
		t.Fatalf("revoked Y joins a call: %+v", r)
	}
	for _, k := range yKeys {
		m := k.(map[string]any)
		if m["class"] != "identity" {
			continue
		}
		r := y.run("x", "keys", "sign", "--key", str(m, "id"), "--json")
		if r.code != 1 && r.code != 3 || !strings.Contains(r.stdout+r.stderr, "revoked") {
			t.Fatalf("revoked Y's keystore signed or failed without saying why: %+v", r)
		}
	}
	ys := y.ok("", "keystore", "status", "--json").json(t)
	if ys["revoked"] != true {
		t.Fatalf("Y's keystore does not say revoked: %v", ys)
	}

	// 4. Recovery on a new device Z after the waiting period: Z cannot open
	// anything sent before it joined.
	a.ok("before Z joined", "send", "--to", "alice") // from another account: reaches X only
	z := h.device("z")
	zr := z.ok("", "recover", "--account", "alice", "--recovery-code-file", codeFile, "--name", "z", "--no-wait", "--json").json(t)
	if str(zr, "request_id") == "" || str(zr, "device_id") == "" {
		t.Fatalf("recover: %v", zr)
	}
	if st := z.ok("", "sync", "--json").json(t); str(st, "state") == "active" {
		t.Fatal("Z recovered before the waiting period")
	}
	time.Sleep(3500 * time.Millisecond)
	if st := z.ok("", "sync", "--json").json(t); str(st, "state") != "active" {
		t.Fatalf("Z after the waiting period: %v", st)
	}
	if msgs := z.ok("", "receive", "--json").json(t)["messages"].([]any); len(msgs) != 0 {
		t.Fatalf("Z opened %d message(s) sent before it joined", len(msgs))
	}
	a.ok("after Z joined", "send", "--to", "alice")
	if msgs := z.ok("", "receive", "--json").json(t)["messages"].([]any); len(msgs) != 1 {
		t.Fatalf("Z after joining received %d messages, want 1", len(msgs))
	}
	if msgs := x.ok("", "receive", "--json").json(t)["messages"].([]any); len(msgs) != 2 {
		t.Fatalf("X received %d messages from pat, want 2", len(msgs))
	}

	// 5. A link inserted directly into the database is refused by every
	// client (and by the server's own verification).
	forgeLink(t, h, alice)
	for _, d := range []*device{x, z, a} {
		r := d.run("", "devices", "--account", alice, "--json")
		if r.code == 0 {
			t.Fatalf("%s accepted a chain with a forged link: %s", filepath.Base(d.home), r.stdout)
		}
	}
}

// forgeLink appends a ghost add_device (signed by nobody the account
// trusts) to the account's chain directly in the server's SQLite database.
func forgeLink(t *testing.T, h *harness, acct string) {
	t.Helper()
	id, _ := client.ParseAccountID(acct)
	cl, _ := client.New(h.server, nil)
	view, err := cl.Chain(context.Background(), id, -1)
	if err != nil {
		t.Fatal(err)
	}
	links, _ := chain.ParseChain(view.Links)
	st, err := chain.VerifyChain(nil, links, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ghostKey, _ := hybrid.NewPrivateKey(bytes.Repeat([]byte{0x66}, hybrid.SeedSize))
	kemPub := links[0].Body().(*chain.Genesis).Device.KEM // any well-formed KEM key
	ghost := chain.Device{ID: chain.DeviceID{0x66}, Name: "ghost", Identity: ghostKey.Public(), KEM: append([]byte(nil), kemPub...), Level: chain.LevelSoftware}
	var n [chain.NonceSize]byte
	d, err := chain.NewDraft(st, time.Now(), &chain.AddDevice{Device: ghost, Nonce: n, PairingHash: chain.PairingHash(n, "x")})
	if err != nil {
		t.Fatal(err)
	}
	d.Sign(chain.RoleSubject, ghostKey)
	d.SignDevice(ghost.ID, ghostKey)
	l, err := d.Link()
	if err != nil {
		t.Fatal(err)
	}
	storeBehind(t, commandDB(t, h), acct, l)
}

// storeBehind stores l as the new head of account acct's chain in
// enigm-command's database (x: the database or a transaction on it),
// behind the server's back: the link row and the account's head, no log
// leaf.
func storeBehind(t *testing.T, x interface {
	Exec(query string, args ...any) (sql.Result, error)
}, acct string, l *chain.Link) {
	t.Helper()
	if _, err := x.Exec(`INSERT INTO links (account_id, seq, hash, prev_hash, type, data, created_at) VALUES (?,?,?,?,?,?,?)`,
		acct, l.Seq(), l.Hash().String(), l.Prev().String(), l.Type().String(), l.Bytes(), time.Now().Unix()); err != nil {
		t.Fatal(err)
	}
	if _, err := x.Exec(`UPDATE accounts SET head_seq = ?, head_hash = ? WHERE id = ?`, l.Seq(), l.Hash().String(), acct); err != nil {
		t.Fatal(err)
	}
}

// commandDB opens enigm-command's SQLite database behind its back, as an
// attacker with the disk would, while the server runs. The server writes
// on its own too (the log is integrated every second), so the connection
// waits for its lock instead of failing with SQLITE_BUSY.
func commandDB(t *testing.T, h *harness) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(h.data, "command.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
