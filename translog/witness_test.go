package translog_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/enigm/enigm/translog"
	"github.com/enigm/enigm/translog/translogtest"
)

// TestWitness runs a real witness (transparency-dev's omniwitness over
// SQLite, as its own process) that knows our log by its ML-DSA-44 key, so
// it checks our post-quantum checkpoint signature and our consistency
// proofs with code no one here wrote. It cosigns the log as it grows
// (Ed25519 and ML-DSA-44 cosignatures, both checked, then served with the
// checkpoint); a client that forgot the witness's state catches up
// through 409; and it refuses a fork (same keys, other leaves: 422), a
// rollback (its 409 names a larger tree than the log's) and a checkpoint
// signed by other keys.
func TestWitness(t *testing.T) {
	ctx := context.Background()
	l, st, s := newLog(t, 10)
	rw := translogtest.StartWitness(t, "witness.enigm.test/w1", testOrigin, s.VerifierKeys()[1])
	wEd, wPQ := newWitness(t, rw.URL, rw.Keys[0]), newWitness(t, rw.URL, rw.Keys[1])

	cos, err := l.Witness(ctx, wEd)
	if err != nil {
		t.Fatalf("first submission: %v\n%s", err, rw.Output())
	}
	firstEd := cos
	if !bytes.HasPrefix(cos, []byte("— witness.enigm.test/w1 ")) || bytes.Count(cos, []byte("\n")) != 1 {
		t.Fatalf("cosignature lines %q, want one line of the Ed25519 key", cos)
	}
	served, _, _ := l.Checkpoint(ctx)
	if !bytes.HasSuffix(served, cos) {
		t.Fatal("the cosignature is not served with the checkpoint")
	}
	if _, err := translog.VerifyCheckpoint(served, testOrigin, s.VerifierKeys()); err != nil {
		t.Fatalf("the cosigned checkpoint no longer verifies with the log keys: %v", err)
	}

	// Grow the log across a tile: the witness checks our consistency
	// proof from 10 to 310 (299 leaves and the map leaf). The ML-DSA-44
	// client starts from size 0 and catches up through the witness's 409.
	for i := 10; i < 309; i++ {
		st.Add(leaf(i))
	}
	if _, err := l.Integrate(ctx); err != nil {
		t.Fatal(err)
	}
	cos, err = l.Witness(ctx, wPQ)
	if err != nil {
		t.Fatalf("submission at 310 from an unknown witness state: %v\n%s", err, rw.Output())
	}
	firstPQ := cos
	if bytes.Count(cos, []byte("\n")) != 1 || len(cos) < 3000 {
		t.Fatalf("cosignature lines %q, want one ML-DSA-44 line", cos[:min(len(cos), 100)])
	}

	// A fork: another storage with other leaves, signed with the same
	// keys, larger than what the witness saw. Its consistency proof from
	// 310 cannot verify.
	fork := newMemStorage()
	fl := translog.New(fork, s)
	for i := range 400 {
		fork.Add([]byte(strings.Repeat("x", i%50) + string(rune('a'+i%26))))
	}
	if _, err := fl.Integrate(ctx); err != nil {
		t.Fatal(err)
	}
	wFork := newWitness(t, rw.URL, rw.Keys[0])
	if _, err := fl.Witness(ctx, wFork); !errors.Is(err, translog.ErrWitness) || !strings.Contains(err.Error(), "422") {
		t.Fatalf("a forked log: %v, want the witness to refuse it with 422", err)
	}

	// A rollback: a log of 5 leaves with the same keys.
	small := newMemStorage()
	sl := translog.New(small, s)
	for i := range 5 {
		small.Add(leaf(i))
	}
	if _, err := sl.Integrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := sl.Witness(ctx, newWitness(t, rw.URL, rw.Keys[0])); !errors.Is(err, translog.ErrWitness) || !strings.Contains(err.Error(), "cosigned a tree of 310") {
		t.Fatalf("a rolled-back log: %v, want ErrWitness naming the tree of 310 it cosigned", err)
	}

	// Other keys under our name: the witness trusts none of them (403).
	ol, ost, _ := newLog(t, 0)
	for i := range 320 {
		ost.Add(leaf(i))
	}
	if _, err := ol.Integrate(ctx); err != nil {
		t.Fatal(err)
	}
	// (tlog-witness says 403; this witness version answers 500 here.)
	if _, err := ol.Witness(ctx, newWitness(t, rw.URL, rw.Keys[0])); !errors.Is(err, translog.ErrWitness) ||
		!(strings.Contains(err.Error(), "answered 403") || strings.Contains(err.Error(), "answered 500")) {
		t.Fatalf("a checkpoint under other keys: %v, want a refusal", err)
	}

	// A witness (here a replayer) answering with genuine cosignatures of
	// an older checkpoint is refused, for either key type.
	for i, old := range [][]byte{firstEd, firstPQ} {
		replay := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(old) }))
		rp := newWitness(t, replay.URL, rw.Keys[i])
		st.Add(leaf(400 + i))
		if _, err := l.Integrate(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Witness(ctx, rp); !errors.Is(err, translog.ErrWitness) || !strings.Contains(err.Error(), "does not verify") {
			t.Fatalf("a replayed cosignature (key %d): %v, want it refused", i, err)
		}
		replay.Close()
	}

	// The honest log goes on.
	st.Add(leaf(310))
	if _, err := l.Integrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Witness(ctx, wEd); err != nil {
		t.Fatalf("the honest log after the attacks: %v", err)
	}
}

// TestNewWitnessRefusesLogKeys: a witness key must be a cosignature key.
func TestNewWitnessRefusesLogKeys(t *testing.T) {
	s := newSigner(t)
	if _, err := translog.NewWitness("http://127.0.0.1:1", s.VerifierKeys()[0], nil); !errors.Is(err, translog.ErrBadKey) {
		t.Fatalf("an Ed25519 note key (0x01) as a witness key: %v", err)
	}
}

// newWitness returns a client of the witness at url with the key vkey.
func newWitness(t testing.TB, url, vkey string) *translog.Witness {
	t.Helper()
	w, err := translog.NewWitness(url, vkey, nil)
	if err != nil {
		t.Fatal(err)
	}
	return w
}
