package translog_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/enigm/enigm/translog"
	"github.com/enigm/enigm/translog/translogtest"
)

// TestWitnessRefresh: an unchanged checkpoint submitted to a real witness
// again gets a newer cosignature, which replaces the older one in the
// served checkpoint (a note keeps one line per key: a verifier reads the
// first), so an idle log's cosignatures stay fresh for devices that
// bound their age.
func TestWitnessRefresh(t *testing.T) {
	ctx := context.Background()
	l, _, s := newLog(t, 3)
	rw := translogtest.StartWitness(t, "witness.enigm.test/refresh", testOrigin, s.VerifierKeys()[1])
	w := newWitness(t, rw.URL, rw.Keys[0])
	at := func() time.Time {
		t.Helper()
		served, _, err := l.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n := bytes.Count(served, []byte("\n— witness.enigm.test/refresh ")); n != 1 {
			t.Fatalf("%d lines of the witness in the served checkpoint, want 1:\n%s", n, served)
		}
		cos, err := translog.Cosignatures(served, []string{rw.Keys[0]})
		if err != nil || !cos[0].Valid {
			t.Fatalf("the served cosignature: %+v %v", cos, err)
		}
		return cos[0].Time
	}
	if _, err := l.Witness(ctx, w); err != nil {
		t.Fatalf("first submission: %v\n%s", err, rw.Output())
	}
	first := at()
	time.Sleep(1100 * time.Millisecond) // cosignature timestamps are in seconds
	if _, err := l.Witness(ctx, w); err != nil {
		t.Fatalf("the same checkpoint again: %v\n%s", err, rw.Output())
	}
	if again := at(); !again.After(first) {
		t.Fatalf("the refreshed cosignature is from %v, the first from %v", again, first)
	}
	// The witness's ML-DSA-44 cosignature (type 0x06) is read the same
	// way, beside the Ed25519 one, with the witness's own timestamp.
	wPQ := newWitness(t, rw.URL, rw.Keys[1])
	if _, err := l.Witness(ctx, wPQ); err != nil {
		t.Fatalf("ML-DSA-44 submission: %v\n%s", err, rw.Output())
	}
	served, _, _ := l.Checkpoint(ctx)
	cos, err := translog.Cosignatures(served, rw.Keys)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cos {
		if !c.Valid || time.Since(c.Time) > time.Minute || time.Until(c.Time) > time.Minute {
			t.Errorf("cosignature of key %d: %+v, want valid and timestamped now", i, c)
		}
	}
	// Another key under the witness's name finds no cosignature.
	if cos, _ := translog.Cosignatures(served, []string{translogtest.NewCosigner(t, "witness.enigm.test/refresh").Key}); cos[0].Valid {
		t.Error("a cosignature of another key under the witness's name was counted")
	}
}
