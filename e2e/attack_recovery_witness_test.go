package e2e

import (
	"context"
	"errors"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/internal/testkit"
)

// TestAttackRecoveryWitnessedTime (issue 10, "Recovery waits on witnessed
// time"; translog.md, "Recovery on witnessed time"), against the real
// binaries and a real witness process cosigning the real enigm-command's
// checkpoints at its own clock: the e2e counterpart of
// device.TestRecoveryOnRealWitness.
//
// The honest path: a recovery with a 3 s waiting period completes on the
// real CLI once Command's witnessed hold is over, and the owner's device,
// whose --log-policy requires the witness, accepts the recovered device.
//
// The attack: a hostile server (the thief's accomplice, with Command's
// disk) completes a 3-minute recovery at once. The thief signs the
// request with the leaked recovery code and Command accepts and logs it
// honestly; the accomplice then stores a recover link dated three minutes
// after the request (the link times say the wait is over; the date is
// within every verifier's clock skew) straight into Command's database,
// with its log leaf, so the real log integrates it and the witness
// cosigns it. The owner's device refuses it on witnessed time, naming
// both times, stays active, shows the pending recovery and keeps the
// checkpoint as evidence. A second device of the owner without a witness
// policy accepts the very same chain on link times: the witness policy is
// what refuses it.
//
// Three minutes, not an hour: a recover link dated an hour after a request
// Command accepted just now is more than chain.MaxClockSkew (5 min) in the
// future of any honest clock, so the devices' own clocks would refuse it
// before witnessed time is asked; within the skew only the witness tells.
func TestAttackRecoveryWitnessedTime(t *testing.T) {
	h, policy := startWitnessed(t)
	ctx := context.Background()
	cl, err := client.New(h.server, nil)
	testkit.NoErr(t, err)

	// 1. The honest recovery: 3 s of witnessed time.
	ho, hn := h.device("rw-hana"), h.device("rw-hana-new")
	hcode := filepath.Join(h.tmp, "hana.recovery")
	hi := ho.ok("", "init", "--account", "hana", "--name", "laptop", "--recovery-delay", "3s", "--recovery-code-file", hcode, "--log-policy", policy, "--json").json(t)
	hr := hn.ok("", "recover", "--account", "hana", "--name", "phone", "--recovery-code-file", hcode, "--no-wait", "--log-policy", policy, "--json").json(t)
	requested := time.Now()
	for deadline := time.Now().Add(30 * time.Second); ; {
		if st := hn.ok("", "sync", "--json").json(t); str(st, "state") == "active" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the honest recovery did not complete within 30s")
		}
		time.Sleep(300 * time.Millisecond)
	}
	if d := time.Since(requested); d < 3*time.Second {
		t.Fatalf("the honest recovery completed %v after the request, within its 3s waiting period", d)
	}
	ho.ok("", "sync")
	if got := activeDevices(t, ho, str(hi, "account_id")); got != 2 {
		t.Fatalf("the owner after the honest recovery of %s: %d active devices, want 2", str(hr, "device_id"), got)
	}

	// 2. The attack. The owner's laptop requires the witness; its phone
	// (enrolled without --log-policy) does not.
	owner, phone := h.device("rw-owner"), h.device("rw-phone")
	code := filepath.Join(h.tmp, "olga.recovery")
	oi := owner.ok("", "init", "--account", "olga", "--name", "laptop", "--recovery-delay", "3m", "--recovery-code-file", code, "--log-policy", policy, "--json").json(t)
	en := phone.ok("", "enroll", "--account", "olga", "--name", "phone", "--no-wait", "--json").json(t)
	owner.ok("", "approve", str(en, "request_id"), "--code", str(en, "pairing_code"))
	phone.ok("", "sync")
	owner.ok("", "sync")
	keyIDs := func() []string {
		var ids []string
		for _, k := range owner.ok("", "keys", "list", "--json").json(t)["keys"].([]any) {
			ids = append(ids, str(k.(map[string]any), "id"))
		}
		return ids
	}
	keysBefore := keyIDs()
	acct, err := client.ParseAccountID(str(oi, "account_id"))
	testkit.NoErr(t, err)

	// The thief's request, signed with the leaked code, accepted by
	// Command and logged; Command records the witnessed checkpoint that
	// includes it (the evidence devices check).
	st := verifiedChain(t, h, acct)
	thief := newRawDevice(t, "thief")
	req := recoveryRequestFor(t, st, time.Now(), leakedRecoveryKey(t, code), thief)
	rec, err := cl.CreateRecovery(ctx, req)
	testkit.NoErr(t, err)
	for deadline := time.Now().Add(20 * time.Second); ; {
		if _, err := cl.RecoveryWitness(ctx, rec.RecoveryID); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("Command recorded no witnessed checkpoint for recovery %s within 20s: %v", rec.RecoveryID, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The recover link, dated at the end of the waiting period by the
	// request's time: chain.Apply accepts it (by link times), an honest
	// Command does not.
	pending, err := chain.Apply(st, req, time.Now())
	testkit.NoErr(t, err)
	dr, err := chain.NewDraft(pending, req.Time().Add(3*time.Minute), &chain.Recover{Request: req.Hash()})
	testkit.NoErr(t, err)
	testkit.NoErr(t, dr.Sign(chain.RoleSubject, thief.key))
	early, err := dr.Link()
	testkit.NoErr(t, err)
	if _, err := chain.Apply(pending, early, time.Now()); err != nil {
		t.Fatalf("the early recover link fails chain.Apply, so the attack tests nothing: %v", err)
	}
	var ae *client.APIError
	if _, err := cl.CompleteRecovery(ctx, rec.RecoveryID, early); !errors.As(err, &ae) || ae.Code != "too_early" {
		t.Fatalf("the real Command on the early recover link: %v, want 409 too_early", err)
	}

	// The accomplice stores it behind Command, with its log leaf: the
	// log integrates it and the witness cosigns the checkpoint.
	leaves := storeLogged(t, h, acct.String(), early)
	waitWitnessed(t, h.server, leaves)

	// The owner's device refuses it on witnessed time, naming both times.
	r := refused(t, owner, "a recover early by witnessed time", []string{
		`the recovery's waiting period has not passed by witnessed time`,
		`recover link ` + strconv.FormatUint(early.Seq(), 10) + ` of account ` + acct.String(),
		"veto it with `enigm veto`",
	}, "sync")
	m := regexp.MustCompile(`was first witnessed at (\S+); completion allowed after (\S+) by witnessed time \(waiting period 3m0s\), but the checkpoint that includes the recover link was witnessed at (\S+) \(the links claim the request at (\S+) and the recover at (\S+)\)`).FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("the refusal does not name the witnessed times:\n%s", r.stderr)
	}
	tm := make([]time.Time, len(m))
	for i := 1; i < len(m); i++ {
		tm[i], err = time.Parse(time.RFC3339, m[i])
		testkit.NoErr(t, err)
	}
	first, allowed, witnessed, claimReq, claimRec := tm[1], tm[2], tm[3], tm[4], tm[5]
	switch {
	case !allowed.Equal(first.Add(3 * time.Minute)):
		t.Fatalf("completion allowed after %s, want the first witnessed time %s + 3m", allowed, first)
	case !witnessed.Before(allowed) || witnessed.Before(first):
		t.Fatalf("the recover's checkpoint witnessed at %s, want between %s and %s", witnessed, first, allowed)
	case !claimReq.Equal(req.Time()) || !claimRec.Equal(early.Time()) || claimRec.Sub(claimReq) < 3*time.Minute:
		t.Fatalf("the refusal names link times %s and %s, want %s and %s", claimReq, claimRec, req.Time(), early.Time())
	case first.Before(req.Time().Add(-time.Minute)) || first.After(time.Now()):
		t.Fatalf("the request first witnessed at %s, not around its request at %s", first, req.Time())
	}

	// The owner's device is still active, shows the pending recovery,
	// kept every key and the checkpoint as evidence.
	sj := owner.ok("", "status", "--json").json(t)
	if str(sj, "state") != "active" {
		t.Fatalf("the owner's status after the refusal: %v", sj)
	}
	if pr, _ := sj["recovery"].(map[string]any); str(pr, "request_id") != rec.RecoveryID || str(pr, "device_id") != thief.rec.ID.String() {
		t.Fatalf("the owner's status does not show the thief's pending recovery: %v", sj)
	}
	if ks := owner.ok("", "keystore", "status", "--json").json(t); ks["revoked"] == true {
		t.Fatalf("the owner's keystore destroyed its keys: %v", ks)
	}
	if keys := keyIDs(); len(keysBefore) == 0 || !slices.Equal(keys, keysBefore) {
		t.Fatalf("the owner's device holds the keys %v after the refusal, %v before", keys, keysBefore)
	}
	if ls := owner.ok("", "log", "status", "--json").json(t); len(ls["refused"].([]any)) == 0 {
		t.Fatalf("the checkpoint of the early recover is not kept as evidence: %v", ls)
	}

	// The same server answer, on link times alone: the phone (no witness
	// policy) accepts the thief's device.
	phone.ok("", "sync")
	for _, x := range phone.ok("", "devices", "--json").json(t)["devices"].([]any) {
		if d := x.(map[string]any); str(d, "device_id") == thief.rec.ID.String() {
			if str(d, "state") != "active" {
				t.Fatalf("the phone lists the thief's device as %s", str(d, "state"))
			}
			return
		}
	}
	t.Fatal("the phone, without a witness policy, did not accept the early recover: the control proves nothing")
}

// storeLogged is storeBehind with the link's log leaf, in one transaction
// as Command's own appends do (command/store logLeaf): the next leaf
// number from log_sequence, then the leaf. Command's integrator then logs
// it like any other link. It returns the number of leaves sequenced so
// far (the recover's is the last).
func storeLogged(t *testing.T, h *harness, acct string, l *chain.Link) uint64 {
	t.Helper()
	tx, err := commandDB(t, h).Begin()
	testkit.NoErr(t, err)
	defer tx.Rollback()
	var next uint64
	testkit.NoErr(t, tx.QueryRow(`UPDATE log_sequence SET next = next + 1 WHERE id = 1 RETURNING next`).Scan(&next))
	_, err = tx.Exec(`INSERT INTO log_leaves (idx, account_id, seq, map_data) VALUES (?,?,?,'')`, next-1, acct, l.Seq())
	testkit.NoErr(t, err)
	storeBehind(t, tx, acct, l)
	testkit.NoErr(t, tx.Commit())
	return next
}
