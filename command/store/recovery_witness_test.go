package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/enigm/enigm/command/store"
	"github.com/enigm/enigm/command/store/storetest"
)

func TestRecoveryWitnesses(t *testing.T) {
	t.Parallel()
	storetest.Engines(t, testRecoveryWitnesses)
}

// testRecoveryWitnesses: an open recovery is listed as unwitnessed (with
// its request link's sequence number) until a witnessed checkpoint is
// kept for it; the first one kept stays (a second Put keeps nothing); a
// closed recovery is not listed.
func testRecoveryWitnesses(t *testing.T, dsn string) {
	ctx := context.Background()
	s := storetest.Open(t, dsn)
	rw, err := store.RecoveryWitnessStorage(s)
	if err != nil {
		t.Fatal(err)
	}
	id := createAccount(t, s, "rw")
	req := fakeLink("rw", 1)
	req.Type = "recovery_request"
	at := time.Unix(1700000100, 0).UTC()
	rec := store.Recovery{ID: req.Hash, AccountID: id, DeviceID: hexOf("dev")[:32], State: store.RecoveryWaiting, RequestedAt: at, NotBefore: at.Add(time.Hour)}
	if err := s.Append(ctx, store.Append{AccountID: id, Link: req, NewRecovery: &rec}); err != nil {
		t.Fatal(err)
	}
	todo, err := rw.Unwitnessed(ctx)
	if err != nil || len(todo) != 1 || todo[0] != (store.RecoveryToWitness{RecoveryID: rec.ID, AccountID: id, RequestSeq: 1}) {
		t.Fatalf("unwitnessed: %+v %v", todo, err)
	}
	if _, err := rw.Get(ctx, rec.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get before put: %v", err)
	}
	first := store.RecoveryWitness{RecoveryID: rec.ID, AccountID: id, RequestSeq: 1, LeafIndex: 1, TreeSize: 2,
		Checkpoint: []byte("first checkpoint\n"), WitnessedAt: at.Add(time.Second), CreatedAt: at.Add(2 * time.Second)}
	if kept, err := rw.Put(ctx, first); err != nil || !kept {
		t.Fatalf("first put: %v %v", kept, err)
	}
	later := first
	later.TreeSize, later.Checkpoint, later.WitnessedAt = 9, []byte("later checkpoint\n"), at.Add(time.Minute)
	if kept, err := rw.Put(ctx, later); err != nil || kept {
		t.Fatalf("a second put was kept (%v, %v): the first witnessed checkpoint must stay", kept, err)
	}
	got, err := rw.Get(ctx, rec.ID)
	if err != nil || string(got.Checkpoint) != "first checkpoint\n" || got.TreeSize != 2 || !got.WitnessedAt.Equal(first.WitnessedAt) {
		t.Fatalf("kept %+v (%v), want the first", got, err)
	}
	if todo, err := rw.Unwitnessed(ctx); err != nil || len(todo) != 0 {
		t.Fatalf("unwitnessed after the put: %+v %v", todo, err)
	}
	// A second, vetoed recovery is not listed.
	req2 := fakeLink("rw", 2)
	rec2 := store.Recovery{ID: req2.Hash, AccountID: id, DeviceID: hexOf("dev2")[:32], State: store.RecoveryVetoed, RequestedAt: at, NotBefore: at}
	if err := s.Append(ctx, store.Append{AccountID: id, Link: req2, NewRecovery: &rec2}); err != nil {
		t.Fatal(err)
	}
	if todo, err := rw.Unwitnessed(ctx); err != nil || len(todo) != 0 {
		t.Fatalf("a closed recovery is listed: %+v %v", todo, err)
	}
}
