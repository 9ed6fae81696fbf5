package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/internal/app/enigmcli"
)

// Attacks on link time (issue 8, weaknesses 1, 4, 5) against the real
// enigm-command binary on loopback, sharing one build and one server.
func TestAttackTime(t *testing.T) {
	h := start(t)
	// One after the other on the test's goroutine: the harness reports
	// through h.t.
	tmStolenDeviceFutureDatedLink(t, h)
	tmBackdatedRecoveryRequest(t, h)
	tmZeroRecoveryDelayNeedsDevFlag(t, h)
}

// tmSkewed runs the enigm CLI in this process on d's home with a clock
// shifted by skew: what a thief does with a stolen device whose clock it
// sets (faketime, or a patched binary), talking to the real server.
func (d *device) tmSkewed(skew time.Duration, args ...string) result {
	d.h.t.Helper()
	vars := map[string]string{"ENIGM_HOME": d.home, "ENIGM_PASSPHRASE": d.pass, "ENIGM_SERVER": d.h.server}
	var out, errb bytes.Buffer
	env := &enigmcli.Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb,
		Getenv: func(k string) string { return vars[k] }, Terminal: func() bool { return false },
		Now: func() time.Time { return time.Now().Add(skew) }}
	code := enigmcli.Main(context.Background(), env, args)
	return result{code, out.String(), errb.String()}
}

// A stolen, still active device appends a rotate_keys dated minutes ahead
// so that the owner's revocation (dated by an honest clock) would be older
// than the head, and repeats it to stay unrevocable. Command refuses the
// future-dated link; one dated ahead within Command's skew goes through, and
// the owner's `enigm revoke` still succeeds right after it.
func tmStolenDeviceFutureDatedLink(t *testing.T, h *harness) {
	owner, stolen := h.device("tm-owner"), h.device("tm-stolen")
	owner.ok("", "init", "--account", "tm-pat", "--name", "owner", "--recovery-delay", "1h", "--json")
	en := stolen.ok("", "enroll", "--account", "tm-pat", "--name", "stolen", "--no-wait", "--json").json(t)
	owner.ok("", "approve", str(en, "request_id"), "--code", str(en, "pairing_code"), "--json")
	stolen.ok("", "sync")
	sid := str(en, "device_id")

	r := stolen.tmSkewed(4*time.Minute, "rotate")
	if r.code == 0 {
		t.Fatalf("Command accepted a rotate_keys dated 4 minutes ahead:\n%s%s", r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "future_timestamp") {
		t.Fatalf("the refusal does not say the link is dated in the future: %s", r.stderr)
	}
	// Within the skew: accepted (a device whose clock is a little fast).
	if r := stolen.tmSkewed(20*time.Second, "rotate"); r.code != 0 {
		t.Fatalf("a rotation dated 20s ahead was refused: %s", r.stderr)
	}

	owner.ok("", "revoke", sid, "--yes")
	devs := owner.ok("", "devices", "--json").json(t)["devices"].([]any)
	for _, d := range devs {
		m := d.(map[string]any)
		if str(m, "device_id") == sid && str(m, "state") != "revoked" {
			t.Fatalf("the stolen device is %s after the owner's revocation", str(m, "state"))
		}
	}
	if r := stolen.run("", "sync"); r.code == 0 {
		t.Fatal("the revoked device still syncs")
	}
}

// A holder of the recovery code dates its recovery request back, to start
// the waiting period early. Command refuses it; a request dated now is
// accepted with the waiting period counted from Command's clock, and the
// owner vetoes it.
func tmBackdatedRecoveryRequest(t *testing.T, h *harness) {
	owner := h.device("tm-victim")
	codeFile := filepath.Join(h.tmp, "tm-victim.recovery")
	// The account's last link is 9 minutes old: the owner's clock was
	// behind, within the server's 10-minute link age bound. (Equivalently:
	// the account has been idle since.) A request may be dated no earlier
	// than that link.
	init := owner.tmSkewed(-9*time.Minute, "init", "--account", "tm-victim", "--name", "owner", "--recovery-delay", "1h", "--recovery-code-file", codeFile, "--json")
	if init.code != 0 {
		t.Fatalf("init: %s", init.stderr)
	}
	acct := str(init.json(t), "account_id")

	// The thief's tool, from the chain package's public API.
	id, _ := client.ParseAccountID(acct)
	cl, err := client.New(h.server, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st := verifiedChain(t, h, id)
	rk := leakedRecoveryKey(t, codeFile)
	request := func(at time.Time) (client.Recovery, error) {
		t.Helper()
		return cl.CreateRecovery(ctx, recoveryRequest(t, st, at, rk, "thief"))
	}

	_, err = request(time.Now().Add(-8 * time.Minute))
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Code != "chain_rejected" || ae.ChainError != "stale" {
		t.Fatalf("a recovery request dated 8 minutes back: err = %v, want 422 chain_rejected ErrStale", err)
	}
	if _, err = request(time.Now().Add(2 * time.Minute)); !errors.As(err, &ae) || ae.ChainError != "future_timestamp" {
		t.Fatalf("a recovery request dated 2 minutes ahead: err = %v, want ErrFutureTimestamp", err)
	}

	before := time.Now().Truncate(time.Second)
	rec, err := request(time.Now())
	if err != nil {
		t.Fatalf("a request dated now: %v", err)
	}
	if rec.NotBefore.Before(before.Add(time.Hour)) {
		t.Fatalf("the waiting period ends at %v, before %v + 1h", rec.NotBefore, before)
	}
	owner.ok("", "veto", rec.RecoveryID)
	if r, err := cl.Recovery(ctx, rec.RecoveryID); err != nil || r.State != "vetoed" {
		t.Fatalf("after the veto: %+v %v", r, err)
	}
}

// A server refuses a zero minimum recovery delay unless started as a
// development server, which says so in its log.
func tmZeroRecoveryDelayNeedsDevFlag(t *testing.T, h *harness) {
	tmp := t.TempDir()
	serve := func(args ...string) (int, string) {
		// 256.0.0.1 cannot be bound: serve stops right after checking its
		// flags and opening the server.
		cmd := exec.Command(filepath.Join(h.bin, "enigm-command"), append([]string{"serve", "--listen", "256.0.0.1:1", "--data", filepath.Join(tmp, "data")}, args...)...)
		cmd.Env = append(os.Environ(), "ENIGM_COMMAND_PASSPHRASE=x")
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode(), string(out)
	}
	if code, out := serve("--min-recovery-delay", "0s"); code != 2 || !strings.Contains(out, "--dev-allow-zero-recovery-delay") {
		t.Fatalf("serve --min-recovery-delay 0s without the development flag: exit %d\n%s", code, out)
	}
	if code, out := serve(); code != 1 || strings.Contains(out, "DEVELOPMENT SERVER") {
		t.Fatalf("serve with the default minimum: exit %d\n%s", code, out)
	}
	if code, out := serve("--dev-allow-zero-recovery-delay"); code != 1 || !strings.Contains(out, "DEVELOPMENT SERVER") {
		t.Fatalf("the development server does not warn at start: exit %d\n%s", code, out)
	}
}
