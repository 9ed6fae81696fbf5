package device

import (
	"errors"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/envelope"
	"github.com/enigm/enigm/internal/testkit"
)

func replayParsed(id byte, kind envelope.Kind, sent time.Time) *envelope.Parsed {
	p := &envelope.Parsed{Kind: kind, SentAt: sent, FromAccount: chain.AccountID{7}}
	p.ID[0] = id
	if kind == envelope.KindCall {
		p.CallID = "call-" + string(rune('a'+id))
	}
	return p
}

func replayCount(t *testing.T, a *agentDB) int {
	t.Helper()
	n := 0
	a.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketSeen); b != nil {
			n = b.Stats().KeyN
		}
		return nil
	})
	return n
}

// The replay set stays within its bound and its window, and forgetting
// never lets a replay through: what was forgotten for the bound is below
// the floor.
func TestReplaySetBounded(t *testing.T) {
	a, err := openAgentDB(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	a.seenLimit = 3
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	var ps []*envelope.Parsed
	for i := byte(0); i < 4; i++ {
		p := replayParsed(i, envelope.KindMessage, now.Add(time.Duration(i)*time.Minute))
		if err := a.checkReplay(p, now.Add(time.Hour)); err != nil {
			t.Fatalf("envelope %d: %v", i, err)
		}
		testkit.NoErr(t, a.markSeen(p, now.Add(time.Hour)))
		ps = append(ps, p)
	}
	if n := replayCount(t, a); n != 3 {
		t.Fatalf("%d entries, bound 3", n)
	}
	// The oldest was forgotten, and is refused by the floor.
	if err := a.checkReplay(ps[0], now.Add(time.Hour)); !errors.Is(err, ErrOutsideWindow) {
		t.Fatalf("the forgotten oldest envelope: %v", err)
	}
	if err := a.checkReplay(replayParsed(9, envelope.KindMessage, ps[0].SentAt), now.Add(time.Hour)); !errors.Is(err, ErrOutsideWindow) {
		t.Fatalf("a new envelope at the floor: %v", err)
	}
	for _, p := range ps[1:] {
		if err := a.checkReplay(p, now.Add(time.Hour)); !errors.Is(err, ErrReplay) {
			t.Fatalf("a remembered envelope: %v", err)
		}
	}
	// A call is remembered by its envelope id and its call id.
	c := replayParsed(5, envelope.KindCall, now.Add(10*time.Minute))
	testkit.NoErr(t, a.markSeen(c, now.Add(time.Hour)))
	again := replayParsed(6, envelope.KindCall, now.Add(11*time.Minute))
	again.CallID = c.CallID
	if err := a.checkReplay(again, now.Add(time.Hour)); !errors.Is(err, ErrReplay) {
		t.Fatalf("another envelope for an installed call: %v", err)
	}
	// Past the window everything old leaves the set at the next mark.
	later := now.Add(ReplayWindow + time.Hour)
	testkit.NoErr(t, a.markSeen(replayParsed(8, envelope.KindMessage, later), later))
	if n := replayCount(t, a); n != 1 {
		t.Fatalf("%d entries after the window passed, want 1", n)
	}
	if err := a.checkReplay(ps[3], later); !errors.Is(err, ErrOutsideWindow) {
		t.Fatalf("an envelope older than the window: %v", err)
	}
	if err := a.checkReplay(replayParsed(10, envelope.KindMessage, later.Add(MaxClockSkew+time.Minute)), later); !errors.Is(err, ErrOutsideWindow) {
		t.Fatalf("an envelope from the future: %v", err)
	}
}

// An id forgotten because it left the window stays refused when this
// device's clock is later set back: the floor, not the clock, remembers.
func TestReplayAfterClockSetBack(t *testing.T) {
	a, err := openAgentDB(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	sent := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	p := replayParsed(1, envelope.KindMessage, sent)
	testkit.NoErr(t, a.markSeen(p, sent.Add(time.Minute)))
	// A later open, once p's send time left the window, forgets p.
	later := sent.Add(ReplayWindow + time.Hour)
	testkit.NoErr(t, a.markSeen(replayParsed(2, envelope.KindMessage, later), later))
	if n := replayCount(t, a); n != 1 {
		t.Fatalf("%d entries after the window moved, want 1", n)
	}
	// The clock goes back to a time at which p is inside the window again.
	if err := a.checkReplay(p, sent.Add(time.Hour)); !errors.Is(err, ErrOutsideWindow) {
		t.Fatalf("a forgotten envelope replayed after the clock was set back: %v, want ErrOutsideWindow", err)
	}
}
