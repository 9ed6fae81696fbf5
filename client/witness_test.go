package client

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/translog"
	"github.com/enigm/enigm/translog/translogtest"
)

type evidenceStore struct {
	memLogStore
	refused []string
}

func (e *evidenceStore) KeepRefusedCheckpoint(signed []byte, reason string) error {
	e.refused = append(e.refused, reason)
	return nil
}

// TestSyncLogWitnessPolicy: a device whose policy needs two of three
// witnesses accepts a checkpoint only with two valid cosignatures whose
// quorum is at most an hour old (the default), and refuses, naming what
// is missing, a checkpoint with its cosignatures stripped, with one, with
// a cosignature of a witness the policy does not know, with one moved
// from another checkpoint, and one whose quorum is 3 hours old. Refused
// checkpoints are kept as evidence and never stored.
func TestSyncLogWitnessPolicy(t *testing.T) {
	ctx := context.Background()
	honest := translogtest.NewSigner(t, testOrigin)
	w1, w2, w3, stranger := translogtest.NewCosigner(t, "w1.example"), translogtest.NewCosigner(t, "w2.example"),
		translogtest.NewCosigner(t, "w3.example"), translogtest.NewCosigner(t, "stranger.example")
	pol, err := translog.ParsePolicy([]byte("witness A " + w1.Key + "\nwitness B " + w2.Key + "\nwitness C " + w3.Key + "\ngroup two 2 A B C\nquorum two\n"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	fresh, old := now.Add(-time.Minute).Unix(), now.Add(-3*time.Hour).Unix()
	ls := &logServer{signer: honest, sign: honest, tree: tree("a", "b")}
	cl := serveLog(t, ls)
	st := &evidenceStore{}
	p := LogPolicy{Witnesses: pol, Now: func() time.Time { return now }}
	cosign := func(f func(b []byte) []byte) { ls.set(func(s *logServer) { s.cosign = f }) }

	cosign(func(b []byte) []byte { return w2.Cosign(w1.Cosign(b, fresh), fresh) })
	if c, err := cl.SyncLogPolicy(ctx, st, p); err != nil || c.Size != 2 {
		t.Fatalf("two fresh cosignatures: %+v %v", c, err)
	}
	good := string(st.s.Checkpoint)

	otherCP, err := honest.Sign(translog.Checkpoint{Origin: testOrigin, Size: 9})
	if err != nil {
		t.Fatal(err)
	}
	wrongCheckpoint := w2.Cosign(otherCP, fresh)
	moved := wrongCheckpoint[strings.LastIndex(string(wrongCheckpoint), "— "):]
	for _, tc := range []struct {
		desc   string
		cosign func(b []byte) []byte
		want   []string
	}{
		{"stripped", nil, []string{"checkpoint 3 has 0 of 2 required witness cosignatures (quorum two): missing A (w1.example), B (w2.example), C (w3.example)"}},
		{"one", func(b []byte) []byte { return w3.Cosign(b, fresh) }, []string{"has 1 of 2", "missing A (w1.example), B (w2.example)"}},
		{"a stranger's instead", func(b []byte) []byte { return stranger.Cosign(w1.Cosign(b, fresh), fresh) }, []string{"has 1 of 2", "missing B (w2.example), C (w3.example)"}},
		{"moved from another checkpoint", func(b []byte) []byte { return append(w1.Cosign(b, fresh), moved...) }, []string{"has 1 of 2", "do not verify: B (w2.example)"}},
		{"3h old", func(b []byte) []byte { return w2.Cosign(w1.Cosign(b, old), old) }, []string{"is 3h0m0s old, the device allows 1h0m0s"}},
		{"only the 3h old one makes the quorum", func(b []byte) []byte { return w2.Cosign(w1.Cosign(b, fresh), old) }, []string{"is 3h0m0s old"}},
	} {
		ls.set(func(s *logServer) { s.tree = tree("a", "b", "c"); s.cosign = tc.cosign })
		_, err := cl.SyncLogPolicy(ctx, st, p)
		var we *WitnessError
		if !errors.Is(err, ErrWitness) || !errors.As(err, &we) {
			t.Errorf("%s: %v, want a WitnessError", tc.desc, err)
			continue
		}
		t.Logf("%s: %v", tc.desc, err)
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not say %q", tc.desc, err, w)
			}
		}
		if string(st.s.Checkpoint) != good {
			t.Errorf("%s: the refused checkpoint was stored", tc.desc)
		}
	}
	if len(st.refused) != 6 {
		t.Errorf("%d refused checkpoints kept as evidence, want 6", len(st.refused))
	}
	// Two fresh of three, the third old: accepted (the quorum is fresh).
	cosign(func(b []byte) []byte { return w3.Cosign(w2.Cosign(w1.Cosign(b, fresh), old), fresh) })
	if c, err := cl.SyncLogPolicy(ctx, st, p); err != nil || c.Size != 3 {
		t.Fatalf("a fresh quorum: %+v %v", c, err)
	}
	// The stored checkpoint ages: three hours later the same note is
	// refused as stale, and with MaxAge 4h accepted.
	later := p
	later.Now = func() time.Time { return now.Add(3 * time.Hour) }
	if _, err := cl.SyncLogPolicy(ctx, st, later); !errors.Is(err, ErrWitness) || !strings.Contains(err.Error(), "3h1m0s old") {
		t.Fatalf("the same checkpoint 3h later: %v", err)
	}
	later.MaxAge = 4 * time.Hour
	if _, err := cl.SyncLogPolicy(ctx, st, later); err != nil {
		t.Fatalf("with a 4h maximum age: %v", err)
	}
	// Without a policy, none of this is asked.
	cosign(nil)
	ls.set(func(s *logServer) { s.tree = tree("a", "b", "c", "d") })
	if _, err := cl.SyncLogPolicy(ctx, st, LogPolicy{}); err != nil {
		t.Fatalf("no policy: %v", err)
	}
}

// TestCheckWitnessesOrgPolicy: with the account's organisation policy
// (LogPolicy.Org) a checkpoint needs both quorums, a refusal says whose
// quorum is missing, and the smaller maximum age applies to both.
func TestCheckWitnessesOrgPolicy(t *testing.T) {
	honest := translogtest.NewSigner(t, testOrigin)
	w1, w2 := translogtest.NewCosigner(t, "w1.example"), translogtest.NewCosigner(t, "w2.example")
	own := testkit.Must(translog.ParsePolicy([]byte("witness A " + w1.Key + "\nquorum A\n")))
	org := testkit.Must(translog.ParsePolicy([]byte("witness B " + w2.Key + "\nquorum B\n")))
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) int64 { return now.Add(-d).Unix() }
	cp := translog.Checkpoint{Origin: testOrigin, Size: 5}
	signed := testkit.Must(honest.Sign(cp))
	clock := func() time.Time { return now }
	for _, tc := range []struct {
		desc    string
		p       LogPolicy
		note    []byte
		whose   string // "" for accepted
		message string
	}{
		{"both quorums", LogPolicy{Witnesses: own, Org: org}, w2.Cosign(w1.Cosign(signed, ago(time.Minute)), ago(time.Minute)), "", ""},
		{"the organisation's witness missing", LogPolicy{Witnesses: own, Org: org}, w1.Cosign(signed, ago(time.Minute)), PolicyOfOrg,
			"checkpoint 5 has 0 of 1 required witness cosignatures of the witness policy the account's organisation set in its chain (quorum B): missing B (w2.example)"},
		{"the device's witness missing", LogPolicy{Witnesses: own, Org: org}, w2.Cosign(signed, ago(time.Minute)), PolicyOfDevice,
			"checkpoint 5 has 0 of 1 required witness cosignatures (quorum A): missing A (w1.example)"},
		{"organisation only, the device's default bound", LogPolicy{Org: org}, w2.Cosign(signed, ago(2*time.Hour)), PolicyOfOrg, "is 2h0m0s old, the device allows 1h0m0s"},
		{"the organisation's bound is smaller", LogPolicy{Org: org, OrgMaxAge: 30 * time.Minute}, w2.Cosign(signed, ago(40*time.Minute)), PolicyOfOrg, "allows 30m0s"},
		{"the organisation's bound is larger: the device's applies", LogPolicy{Org: org, OrgMaxAge: 2 * time.Hour}, w2.Cosign(signed, ago(90*time.Minute)), PolicyOfOrg, "allows 1h0m0s"},
		{"within both bounds", LogPolicy{Org: org, OrgMaxAge: 2 * time.Hour}, w2.Cosign(signed, ago(40*time.Minute)), "", ""},
		{"the smaller bound holds the device's quorum too", LogPolicy{Witnesses: own, MaxAge: 4 * time.Hour, Org: org, OrgMaxAge: 30 * time.Minute},
			w2.Cosign(w1.Cosign(signed, ago(40*time.Minute)), ago(time.Minute)), PolicyOfDevice, "is 40m0s old, the device allows 30m0s"},
		{"an organisation policy of quorum none", LogPolicy{Org: testkit.Must(translog.ParsePolicy([]byte("quorum none\n"))), OrgMaxAge: time.Minute}, signed, "", ""},
	} {
		tc.p.Now = clock
		err := tc.p.CheckWitnesses(tc.note, cp)
		var we *WitnessError
		switch {
		case tc.whose == "" && err != nil:
			t.Errorf("%s: %v, want accepted", tc.desc, err)
		case tc.whose == "":
		case !errors.As(err, &we) || !errors.Is(err, ErrWitness) || we.Policy != tc.whose || !strings.Contains(err.Error(), tc.message):
			t.Errorf("%s: %v (%+v), want a WitnessError of the %s policy saying %q", tc.desc, err, we, tc.whose, tc.message)
		}
	}
}
