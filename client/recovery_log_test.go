package client_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/translog"
	"github.com/enigm/enigm/translog/translogtest"
)

// TestQuorumTimes: the request's witnessed time (first) is the earliest
// time a quorum had cosigned, so a witness that backdates cannot move it
// earlier, even when the quorum is all the witnesses; the recover
// checkpoint's (last) is the latest time a quorum cosigned at or after,
// so one that postdates cannot move it later, and it is at most now. A
// checkpoint without the quorum gives no time.
func TestQuorumTimes(t *testing.T) {
	w1, w2, w3 := translogtest.NewCosigner(t, "w1.example"), translogtest.NewCosigner(t, "w2.example"), translogtest.NewCosigner(t, "w3.example")
	head := fmt.Sprintf("witness W1 %s\nwitness W2 %s\nwitness W3 %s\n", w1.Key, w2.Key, w3.Key)
	base := []byte("example.org/log\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n")
	cp := translog.Checkpoint{Origin: "example.org/log", Size: 5}
	const t0 = 1_800_000_000
	now := time.Unix(t0+10_000, 0)
	at := func(s int64) time.Time { return time.Unix(s, 0).UTC() }
	for _, tc := range []struct {
		desc        string
		quorum      string
		sign        map[*translogtest.Cosigner]int64
		first, last time.Time
		wantErr     error
	}{
		{"all of two, one backdates", "group g all W1 W2\nquorum g\n", map[*translogtest.Cosigner]int64{w1: t0, w2: t0 - 86400}, at(t0), at(t0 - 86400), nil},
		{"two of three, one backdates", "group g 2 W1 W2 W3\nquorum g\n", map[*translogtest.Cosigner]int64{w1: t0, w2: t0 + 5, w3: 0}, at(t0), at(t0), nil},
		{"two of three, one postdates", "group g 2 W1 W2 W3\nquorum g\n", map[*translogtest.Cosigner]int64{w1: t0, w2: t0 + 5, w3: t0 + 1e6}, at(t0 + 5), at(t0 + 5), nil},
		{"any, future capped at now", "group g any W1 W2\nquorum g\n", map[*translogtest.Cosigner]int64{w1: t0 + 1e6}, at(t0 + 1e6), now, nil},
		{"no quorum", "group g 2 W1 W2 W3\nquorum g\n", map[*translogtest.Cosigner]int64{w1: t0}, time.Time{}, time.Time{}, client.ErrWitness},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			pol, err := translog.ParsePolicy([]byte(head + tc.quorum))
			if err != nil {
				t.Fatal(err)
			}
			signed := base
			for _, c := range []*translogtest.Cosigner{w1, w2, w3} {
				if ts, ok := tc.sign[c]; ok {
					signed = c.Cosign(signed, ts)
				}
			}
			first, last, err := client.QuorumTimes(signed, cp, pol, now)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || !first.Equal(tc.first) || !last.Equal(tc.last) {
				t.Fatalf("first %s last %s (%v), want %s and %s", first, last, err, tc.first, tc.last)
			}
		})
	}
}
