package e2e

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/hybrid"
)

// A recovery code leaks. The thief starts a recovery on a new device; the
// owner's device notices it on its next sync (exit 4, the request shown
// from its own verified chain), vetoes it without being told the id, and
// the thief's device cannot complete even after the waiting period. Then
// `enigm recovery rotate` replaces the code: the old one is refused by the
// CLI and, signed straight into a request to Command, by the server's chain
// verification.
func TestAttackLeakedRecoveryCode(t *testing.T) {
	h := start(t)
	a, b, thief := h.device("owner-a"), h.device("owner-b"), h.device("thief")
	codeFile := filepath.Join(h.tmp, "leaky.recovery")
	ai := a.ok("", "init", "--account", "leaky", "--name", "a", "--recovery-delay", "2s", "--recovery-code-file", codeFile, "--json").json(t)
	acct, err := client.ParseAccountID(str(ai, "account_id"))
	if err != nil {
		t.Fatal(err)
	}
	en := b.ok("", "enroll", "--account", "leaky", "--name", "b", "--no-wait", "--json").json(t)
	a.ok("", "approve", str(en, "request_id"), "--code", str(en, "pairing_code"))
	b.ok("", "sync")
	if r := a.run("", "sync"); r.code != 0 {
		t.Fatalf("sync with nothing pending: exit %d: %s", r.code, r.stderr)
	}

	// The thief, holding the leaked code, starts a recovery.
	tr := thief.ok("", "recover", "--account", "leaky", "--recovery-code-file", codeFile, "--name", "not-a-thief", "--no-wait", "--json").json(t)
	rid, tdev := str(tr, "request_id"), str(tr, "device_id")

	// The owner's next sync notices: a distinct exit status, the request in
	// the JSON, and what to do on stderr.
	r := a.run("", "sync", "--json")
	if r.code != 4 {
		t.Fatalf("owner's sync during a pending recovery: exit %d (want 4)\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	rec, _ := r.json(t)["recovery"].(map[string]any)
	if str(rec, "request_id") != rid || str(rec, "device_id") != tdev || str(rec, "name") != "not-a-thief" || str(rec, "requested_at") == "" {
		t.Fatalf("owner's sync shows %v; want request %s for device %s", rec, rid, tdev)
	}
	if !strings.Contains(r.stderr, "enigm veto") {
		t.Fatalf("sync does not say what to do: %s", r.stderr)
	}
	notBefore, err := time.Parse(time.RFC3339, str(rec, "not_before"))
	if err != nil {
		t.Fatalf("not_before: %v", err)
	}
	// The other owner device sees it too, in status and in the device list.
	if st := b.ok("", "status", "--online", "--json").json(t); str(st["recovery"].(map[string]any), "request_id") != rid {
		t.Fatalf("B's status: %v", st)
	}
	if dv := b.ok("", "devices", "--json").json(t); str(dv["recovery"].(map[string]any), "device_id") != tdev {
		t.Fatalf("B's devices: %v", dv)
	}

	// Veto without the id.
	if v := a.ok("", "veto", "--json").json(t); str(v, "vetoed") != rid {
		t.Fatalf("veto: %v", v)
	}
	if r := b.run("", "sync", "--json"); r.code != 0 || r.json(t)["recovery"] != nil {
		t.Fatalf("B's sync after the veto: exit %d %s %s", r.code, r.stdout, r.stderr)
	}
	// Even after the waiting period the thief's device cannot complete.
	time.Sleep(time.Until(notBefore) + time.Second)
	if r := thief.run("", "sync"); r.code == 0 || !strings.Contains(r.stderr, "vetoed") {
		t.Fatalf("the thief's device after the veto: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if dv := a.ok("", "devices", "--json").json(t); len(dv["devices"].([]any)) != 2 || dv["recovery"] != nil {
		t.Fatalf("devices after the veto: %v", dv)
	}

	// The owner replaces the leaked code.
	newFile := filepath.Join(h.tmp, "leaky.recovery.new")
	if j := b.ok("", "recovery", "rotate", "--recovery-code-file", newFile, "--json").json(t); str(j, "recovery_code_file") != newFile {
		t.Fatalf("rotate: %v", j)
	}
	if r := h.device("thief2").run("", "recover", "--account", "leaky", "--recovery-code-file", codeFile, "--no-wait"); r.code == 0 ||
		!strings.Contains(r.stderr, "does not belong") {
		t.Fatalf("recover with the replaced code: exit %d %s", r.code, r.stderr)
	}
	// A thief who skips the CLI's check and signs a request with the old
	// key is refused by Command's verification of the chain...
	var ae *client.APIError
	if err := rvaPostRecovery(t, h, acct, leakedRecoveryKey(t, codeFile)); !errors.As(err, &ae) || ae.Status != 422 || ae.ChainError != "bad_signature" {
		t.Fatalf("Command on a recovery request signed with the replaced key: %v", err)
	}
	if r := a.run("", "sync"); r.code != 0 {
		t.Fatalf("owner's sync after the refused request: exit %d %s", r.code, r.stderr)
	}
	// ...while the same request signed with the new key is accepted (and
	// shown to the owner).
	if err := rvaPostRecovery(t, h, acct, leakedRecoveryKey(t, newFile)); err != nil {
		t.Fatalf("recovery request with the new code: %v", err)
	}
	if r := a.run("", "sync"); r.code != 4 {
		t.Fatalf("owner's sync with the new code's request pending: exit %d", r.code)
	}
}

// rvaPostRecovery sends Command a recovery_request for a fresh device
// signed with rk, at the head of the chain the server serves.
func rvaPostRecovery(t *testing.T, h *harness, acct chain.AccountID, rk *hybrid.PrivateKey) error {
	t.Helper()
	cl, err := client.New(h.server, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := verifiedChain(t, h, acct)
	now := time.Now()
	if now.Before(st.Time()) {
		now = st.Time()
	}
	_, err = cl.CreateRecovery(context.Background(), recoveryRequest(t, st, now, rk, "posted"))
	return err
}
