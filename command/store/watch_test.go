package store_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"testing"
	"time"

	"github.com/enigm/enigm/command/store"
	"github.com/enigm/enigm/command/store/storetest"
	"github.com/enigm/enigm/internal/testkit"
)

// recorder collects a HeadWatcher's events about one account (other
// tests' accounts in the same database, running in parallel packages, are
// announced too and ignored).
type recorder struct {
	ev   chan string
	only string
}

func (r *recorder) Listening()     { r.ev <- "listening" }
func (r *recorder) Lost(err error) { r.ev <- "lost" }
func (r *recorder) Changed(account string, head *store.Head) {
	if account != r.only {
		return
	}
	if head == nil {
		r.ev <- "changed " + account + " gone"
		return
	}
	r.ev <- "changed " + account + " " + head.Hash
}

// next returns the next event; it fails the test when none comes within a
// generous bound (a liveness bound, not a timing assertion).
func (r *recorder) next(t *testing.T) string {
	t.Helper()
	select {
	case e := <-r.ev:
		return e
	case <-time.After(30 * time.Second):
		t.Fatal("no event from the head watcher")
		return ""
	}
}

func (r *recorder) want(t *testing.T, want string) {
	t.Helper()
	if got := r.next(t); got != want {
		t.Fatalf("event %q, want %q", got, want)
	}
}

// The PostgreSQL engine announces every committed change of an account's
// head, also one made behind the store, and its listener subscribes again
// after losing its connection.
func TestPostgresHeadAnnouncements(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	var b [6]byte
	rand.Read(b[:])
	app := "enigm-watch-test-" + hex.EncodeToString(b[:])
	u, _ := url.Parse(dsn)
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()

	ctx := context.Background()
	s, err := store.Open(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w, ok := s.(store.HeadWatcher)
	if !ok {
		t.Fatal("the PostgreSQL store is not a HeadWatcher")
	}
	// A fresh account id per run: parallel packages share the database.
	var id [32]byte
	rand.Read(id[:])
	acct := hex.EncodeToString(id[:])
	rec := &recorder{ev: make(chan string, 16), only: acct}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); w.WatchHeads(wctx, rec) }()
	rec.want(t, "listening")

	g := store.Link{Seq: 0, Hash: acct, Type: "genesis", Data: []byte("g"), CreatedAt: time.Now()}
	testkit.NoErr(t, s.CreateAccount(ctx, store.NewAccount{Account: store.Account{ID: acct, Name: "w-" + acct[:12], Head: store.Head{Hash: g.Hash}, CreatedAt: time.Now()}, Genesis: g}))
	l1 := store.Link{Seq: 1, Hash: "11" + acct[2:], Prev: g.Hash, Type: "rotate_keys", Data: []byte("1"), CreatedAt: time.Now()}
	testkit.NoErr(t, s.Append(ctx, store.Append{AccountID: acct, Link: l1}))
	rec.want(t, "changed "+acct+" "+l1.Hash)

	// A failed compare-and-append changes nothing and announces nothing;
	// a change behind the store is announced like any other.
	if err := s.Append(ctx, store.Append{AccountID: acct, Link: l1}); err == nil {
		t.Fatal("a second append at seq 1 succeeded")
	}
	db := storetest.RawDB(t, dsn)
	if _, err := db.ExecContext(ctx, `UPDATE accounts SET head_hash = 'forged' WHERE id = $1`, acct); err != nil {
		t.Fatal(err)
	}
	rec.want(t, "changed "+acct+" forged")
	if _, err := db.ExecContext(ctx, `DELETE FROM links WHERE account_id = $1`, acct); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `DELETE FROM accounts WHERE id = $1`, acct); err != nil {
		t.Fatal(err)
	}
	rec.want(t, "changed "+acct+" gone")

	// The listener's connection is killed: it reports the loss and
	// subscribes again.
	if _, err := db.ExecContext(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, app+" head listener"); err != nil {
		t.Fatal(err)
	}
	rec.want(t, "lost")
	rec.want(t, "listening")

	cancel()
	rec.want(t, "lost")
	<-done
}
