package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/enigm/enigm/internal/testkit"
)

// headsRollBack moves the account's head columns back to its link at seq
// (the rows above it are left in place, or deleted with dropAbove), with
// the server running.
func headsRollBack(t *testing.T, h *harness, acct string, seq int, dropAbove bool) {
	t.Helper()
	db := commandDB(t, h)
	var hash string
	testkit.NoErr(t, db.QueryRow(`SELECT hash FROM links WHERE account_id = ? AND seq = ?`, acct, seq).Scan(&hash))
	if dropAbove {
		if _, err := db.Exec(`DELETE FROM links WHERE account_id = ? AND seq > ?`, acct, seq); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(`UPDATE accounts SET head_seq = ?, head_hash = ? WHERE id = ?`, seq, hash, acct); err != nil {
		t.Fatal(err)
	}
}

// headsGet returns the status and error code of a GET to the server.
func headsGet(t *testing.T, h *harness, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(h.server + path)
	return headsCode(t, resp, err)
}

func headsPost(t *testing.T, h *harness, path, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(h.server+path, "application/json", strings.NewReader(body))
	return headsCode(t, resp, err)
}

func headsCode(t *testing.T, resp *http.Response, err error) (int, string) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	json.Unmarshal(b, &e)
	return resp.StatusCode, e.Error.Code
}

// headsRestart stops enigm-command (SIGINT, as in the harness's cleanup)
// and starts it again with the same flags over the same data directory.
// It returns the stopped server's log (the new one logs to a new buffer).
func headsRestart(t *testing.T, h *harness) string {
	t.Helper()
	if !stopServer(h.srv) {
		t.Fatal("the server did not shut down within 10s of SIGINT")
	}
	old, oldLog := h.srv, h.srvLog.String()
	h.srvLog = &testkit.Buffer{}
	h.srv = exec.Command(old.Path, old.Args[1:]...)
	h.srv.Env, h.srv.Stdout, h.srv.Stderr = old.Env, h.srvLog, h.srvLog
	testkit.NoErr(t, h.srv.Start())
	waitHealthy(t, h.server, h.srvLog)
	return oldLog
}

// A database rolled back below a revocation re-admits nothing. Alice's A
// revokes B; then, with the server running, the account's head columns go
// back to the link before the revocation. Command — which verified the
// revocation — lists no device, gives the revoked B no token (B, which
// never synced the revocation, receives nothing), and a device of another
// account meeting alice for the first time cannot send: nothing is
// sealed to B. The same holds once the revocation's row is deleted too,
// and after enigm-command restarts over the same data directory.
func TestAttackHeadRollback(t *testing.T) {
	h := start(t)
	a, b := h.device("a"), h.device("b")
	ai := a.ok("", "init", "--account", "alice", "--name", "a", "--recovery-delay", "0s", "--json").json(t)
	alice := str(ai, "account_id")
	en := b.ok("", "enroll", "--account", "alice", "--name", "b", "--no-wait", "--json").json(t)
	a.ok("", "approve", str(en, "request_id"), "--code", str(en, "pairing_code"), "--json")
	if st := b.ok("", "sync", "--json").json(t); str(st, "state") != "active" {
		t.Fatalf("B after approval: %v", st)
	}
	bdev := str(en, "device_id")
	a.ok("", "revoke", bdev, "--yes")
	// B does not sync: its own chain still ends before the revocation.

	carols := 0
	refused := func(phase string) {
		t.Helper()
		if code, ec := headsGet(t, h, "/v1/accounts/"+alice+"/devices"); code != 500 || ec != "store_inconsistent" {
			t.Fatalf("%s: the device list: %d %s, want 500 store_inconsistent", phase, code, ec)
		}
		if code, ec := headsPost(t, h, "/v1/auth/challenge", `{"account_id":"`+alice+`","device_id":"`+bdev+`"}`); code != 500 || ec != "store_inconsistent" {
			t.Fatalf("%s: a challenge for the revoked device: %d %s, want 500 store_inconsistent", phase, code, ec)
		}
		// A device meeting alice for the first time.
		carols++
		name := fmt.Sprintf("carol%d", carols)
		c := h.device(name)
		c.ok("", "init", "--account", name, "--name", "c", "--recovery-delay", "0s")
		if r := c.run("", "devices", "--account", "alice", "--json"); r.code == 0 || !strings.Contains(r.stderr, "store_inconsistent") {
			t.Fatalf("%s: a first-contact device listed alice's devices: %+v", phase, r)
		}
		if r := c.run("to alice, "+phase, "send", "--to", "alice"); r.code == 0 || !strings.Contains(r.stderr, "store_inconsistent") {
			t.Fatalf("%s: a first-contact device sent to alice: %+v", phase, r)
		}
		var queued int
		testkit.NoErr(t, commandDB(t, h).QueryRow(`SELECT COUNT(*) FROM envelopes WHERE account_id = ? AND device_id = ?`, alice, bdev).Scan(&queued))
		if queued != 0 {
			t.Fatalf("%s: %d envelopes queued for the revoked device", phase, queued)
		}
		if r := b.run("", "receive", "--json"); r.code == 0 || !strings.Contains(r.stderr, "store_inconsistent") {
			t.Fatalf("%s: the revoked device authenticated and received, or failed for another reason: %+v", phase, r)
		}
	}

	// The revocation is link 2; the head goes back to link 1.
	headsRollBack(t, h, alice, 1, false)
	refused("head columns rolled back")
	headsRollBack(t, h, alice, 1, true)
	refused("revocation row deleted")
	log := headsRestart(t, h)
	if !strings.Contains(log, "the database is inconsistent with the account's chain") {
		t.Fatalf("no clear log line:\n%s", log)
	}
	refused("after a restart")
}
