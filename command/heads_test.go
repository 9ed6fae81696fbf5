package command

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/command/store"
	"github.com/enigm/enigm/command/store/storetest"
	"github.com/enigm/enigm/internal/testkit"
)

// on returns a view of account a whose requests go to server e (another
// instance over the same database). Tokens are shared.
func (a *tacct) on(e *env) *tacct {
	b := *a
	b.e = e
	return &b
}

// deviceState returns the state the server's device list gives device d.
func (a *tacct) deviceState(d *tdev) string {
	a.e.t.Helper()
	return a.devices()[d.id.String()].State
}

func (e *env) metric(name string) string {
	e.t.Helper()
	for _, line := range strings.Split(string(e.do("GET", "/metrics", "", nil).body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

// Two instances over one PostgreSQL database. A revocation appended
// through the first is refused by the second at once for everything that
// decides eligibility (those requests read the head from the database),
// and the second's public device list shows it as soon as the database's
// announcement reached it: the cached head is never older than the last
// announcement processed.
func TestRevocationAcrossInstances(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	e1, e2 := newEnvDSN(t, dsn), newEnvDSN(t, dsn)
	e1.waitListening()
	e2.waitListening()
	a, A, B := e1.twoDevices("alice")
	a2 := a.on(e2)
	e2.waitAnnounced(a.id, 1)

	// The second instance serves the device list from its cache: the
	// first read verifies the announced head, the second is served from
	// the cache.
	if first, second := a2.deviceState(B), a2.deviceState(B); first != "active" || second != "active" {
		t.Fatalf("B is %q then %q on the second instance, want active", first, second)
	}
	if v := e2.metric(`enigm_command_head_reads_total{source="announced"}`); v == "" || v == "0" {
		t.Fatalf("no read served from the announced head (%q)", v)
	}
	tokB := a2.login(B)
	e2.want(e2.do("GET", "/v1/messages", tokB, nil), 200, "")

	a.sync()
	e1.want(a.post(A, a.revokeLink(A, B)), http.StatusCreated, "")
	e2.waitAnnounced(a.id, 2)

	if st := a2.deviceState(B); st != "revoked" {
		t.Fatalf("after the announcement the second instance lists B as %q", st)
	}
	a2.sync()
	if a2.st.Head().Seq != 2 {
		t.Fatalf("the second instance serves head %d", a2.st.Head().Seq)
	}
	wantRevokedOut(a2, A, B, tokB)
}

// scriptedHeads stands for the database's announcements: the test decides
// when the listener subscribes, what it hears and when it loses the
// connection.
type scriptedHeads struct {
	store.Store
	ev chan func(store.HeadEvents)
}

func (s *scriptedHeads) WatchHeads(ctx context.Context, ev store.HeadEvents) {
	for {
		select {
		case f := <-s.ev:
			f(ev)
		case <-ctx.Done():
			ev.Lost(ctx.Err())
			return
		}
	}
}

// do runs f on the watcher's goroutine and waits for the server to have
// processed it.
func (s *scriptedHeads) do(e *env, f func(store.HeadEvents)) {
	done := make(chan struct{})
	s.ev <- func(ev store.HeadEvents) { f(ev); close(done) }
	<-done
}

// The window of the guarantee, made visible with scripted announcements:
// between a revocation's commit and its announcement the second instance
// may still list the device as active, but it never lets the device act;
// the announcement ends the window; and without a subscription every read
// goes to the database.
func TestAnnouncedHeadWindow(t *testing.T) {
	storetest.Engines(t, func(t *testing.T, dsn string) {
		e1 := newEnvDSN(t, dsn)
		inner, err := store.Open(context.Background(), dsn)
		testkit.NoErr(t, err)
		t.Cleanup(func() { inner.Close() })
		sh := &scriptedHeads{Store: inner, ev: make(chan func(store.HeadEvents))}
		e2 := newEnvDSN(t, dsn, func(c *Config) { c.Store = sh })
		sh.do(e2, func(ev store.HeadEvents) { ev.Listening() })

		A, B, C := newDev("alice/A"), newDev("alice/B"), newDev("alice/C")
		a := e1.newAccount("alice", A, chain.DefaultPolicy())
		a.add(B, A)
		a2 := a.on(e2)
		if a2.deviceState(B) != "active" {
			t.Fatal("B is not active")
		}
		tokB := a2.login(B)

		// Revoked through the first instance; the announcement is held.
		e1.want(a.post(A, a.revokeLink(A, B)), http.StatusCreated, "")
		if st := a2.deviceState(B); st != "active" {
			t.Fatalf("without an announcement the cached list changed (%q): the cache is not in use", st)
		}
		wantRevokedOut(a2, A, B, tokB)

		// The announcement arrives: the next read is current.
		a.sync()
		head := store.Head{Seq: a.st.Head().Seq, Hash: a.st.Head().Hash.String()}
		sh.do(e2, func(ev store.HeadEvents) { ev.Changed(a.id, &head) })
		if st := a2.deviceState(B); st != "revoked" {
			t.Fatalf("after the announcement B is %q", st)
		}

		// The listener is lost: every read goes to the database, so a change
		// made meanwhile shows at once.
		sh.do(e2, func(ev store.HeadEvents) { ev.Lost(nil) })
		a.add(C, A)
		if st := a2.deviceState(C); st != "active" {
			t.Fatalf("with the listener down, C is %q", st)
		}
		// Subscribed again, heads read before are not trusted: C's addition
		// was never announced, and the entry read while down is read again.
		sh.do(e2, func(ev store.HeadEvents) { ev.Listening() })
		before := e2.metric(`enigm_command_head_reads_total{source="database"}`)
		a2.deviceState(C)
		if after := e2.metric(`enigm_command_head_reads_total{source="database"}`); after == before {
			t.Fatal("a head read while the listener was down was served after it came back")
		}
	})
}

// headsRow is a stored link row, kept to put it back.
type headsRow struct {
	seq             uint64
	hash, prev, typ string
	data            []byte
	created         int64
}

// headsRollBack moves the account's head columns back to its link at seq,
// as a database restored from an older copy, or someone with write access
// to it, would. With dropAbove it also deletes the link rows above seq
// (returned, to put them back); without, they stay where they are.
func headsRollBack(t *testing.T, dsn, account string, seq uint64, dropAbove bool) []headsRow {
	t.Helper()
	db := storetest.RawDB(t, dsn)
	defer db.Close()
	ctx := context.Background()
	var hash string
	testkit.NoErr(t, db.QueryRowContext(ctx, storetest.Rebind(dsn, `SELECT hash FROM links WHERE account_id = ? AND seq = ?`), account, int64(seq)).Scan(&hash))
	var dropped []headsRow
	if dropAbove {
		rows, err := db.QueryContext(ctx, storetest.Rebind(dsn, `SELECT seq, hash, prev_hash, type, data, created_at FROM links WHERE account_id = ? AND seq > ? ORDER BY seq`), account, int64(seq))
		testkit.NoErr(t, err)
		for rows.Next() {
			var r headsRow
			testkit.NoErr(t, rows.Scan(&r.seq, &r.hash, &r.prev, &r.typ, &r.data, &r.created))
			dropped = append(dropped, r)
		}
		testkit.NoErr(t, rows.Err())
		rows.Close()
		_, err = db.ExecContext(ctx, storetest.Rebind(dsn, `DELETE FROM links WHERE account_id = ? AND seq > ?`), account, int64(seq))
		testkit.NoErr(t, err)
	}
	_, err := db.ExecContext(ctx, storetest.Rebind(dsn, `UPDATE accounts SET head_seq = ?, head_hash = ? WHERE id = ?`), int64(seq), hash, account)
	testkit.NoErr(t, err)
	return dropped
}

// headsRestore puts dropped rows back and the head on the last of them.
func headsRestore(t *testing.T, dsn, account string, dropped []headsRow) {
	t.Helper()
	db := storetest.RawDB(t, dsn)
	defer db.Close()
	ctx := context.Background()
	for _, r := range dropped {
		_, err := db.ExecContext(ctx, storetest.Rebind(dsn, `INSERT INTO links (account_id, seq, hash, prev_hash, type, data, created_at) VALUES (?,?,?,?,?,?,?)`),
			account, int64(r.seq), r.hash, r.prev, r.typ, r.data, r.created)
		testkit.NoErr(t, err)
	}
	last := dropped[len(dropped)-1]
	_, err := db.ExecContext(ctx, storetest.Rebind(dsn, `UPDATE accounts SET head_seq = ?, head_hash = ? WHERE id = ?`), int64(last.seq), last.hash, account)
	testkit.NoErr(t, err)
}

// headsEnvelopesFor counts the envelopes queued for a device.
func headsEnvelopesFor(t *testing.T, dsn, account string, d *tdev) int {
	t.Helper()
	db := storetest.RawDB(t, dsn)
	defer db.Close()
	var n int
	testkit.NoErr(t, db.QueryRowContext(context.Background(), storetest.Rebind(dsn, `SELECT COUNT(*) FROM envelopes WHERE account_id = ? AND device_id = ?`), account, d.id.String()).Scan(&n))
	return n
}

// wantRevokedOut checks that the instance a is on (a.on) treats B as
// revoked: B's token tokB opens nothing, B gets no challenge, and an
// envelope for B from A is not queued.
func wantRevokedOut(a *tacct, A, B *tdev, tokB string) {
	e := a.e
	e.t.Helper()
	e.want(e.do("GET", "/v1/messages", tokB, nil), 401, "unauthorized")
	e.want(e.do("POST", "/v1/auth/challenge", "", map[string]string{"account_id": a.id, "device_id": B.id.String()}), 403, "device_revoked")
	r := e.want(e.do("POST", "/v1/messages", a.token(A), map[string]any{"kind": "message", "envelopes": []env1{envTo(a, B, "late")}}), http.StatusAccepted, "")
	if !strings.Contains(string(r.body), `"reason":"not_active"`) {
		e.t.Fatalf("an envelope for the revoked device: %s", r.body)
	}
}

// headsRefused checks that instance e serves nothing of account a and
// lets none of its devices act: no device list, no chain, no challenge
// (so no token) for the revoked device B or the active A, and no relay
// from another account's device (C of c) to B.
func headsRefused(t *testing.T, e *env, a *tacct, A, B *tdev, c *tacct, C *tdev, wantLog string) {
	t.Helper()
	r := e.want(e.do("GET", "/v1/accounts/"+a.id+"/devices", "", nil), 500, "store_inconsistent")
	if r.m["devices"] != nil || r.m["links"] != nil {
		t.Fatal("a device list was served from the rolled-back head")
	}
	e.want(e.do("GET", "/v1/accounts/"+a.id+"/chain", "", nil), 500, "store_inconsistent")
	for _, d := range []*tdev{B, A} {
		e.want(e.do("POST", "/v1/auth/challenge", "", map[string]string{"account_id": a.id, "device_id": d.id.String()}), 500, "store_inconsistent")
	}
	c2 := c.on(e)
	c2.tokens = map[chain.DeviceID]string{}
	e.want(e.do("POST", "/v1/messages", c2.token(C), map[string]any{"kind": "message", "envelopes": []env1{envTo(a, B, "to the revoked device")}}), 500, "store_inconsistent")
	if n := headsEnvelopesFor(t, e.dsn, a.id, B); n != 0 {
		t.Fatalf("%d envelopes were queued for the revoked device", n)
	}
	if !strings.Contains(e.logText(), wantLog) {
		t.Fatalf("no clear log line:\n%s", e.logText())
	}
}

// A database whose head columns are moved back below a revocation (the
// revocation's row left in place, then removed too) re-admits nothing:
// the instance that verified the revocation refuses the lower head as an
// inconsistent store — no device list, no token, no relay — and so does
// the same instance restarted over its data directory (the head marks
// file). A fresh instance with a data directory of its own refuses while
// the revocation's row is still stored above the head; once the row is
// gone too it cannot know (docs/design/command.md §2). Putting the
// database back ends the refusal.
func TestHeadRollbackIsRefused(t *testing.T) {
	const rolledBack = inconsistentLog
	storetest.Engines(t, func(t *testing.T, dsn string) {
		e := newEnvDSN(t, dsn)
		e.waitListening()
		a, A, B := e.aliceAB()
		C := newDev("carol/C")
		c := e.newAccount("carol", C, chain.DefaultPolicy())
		e.want(a.post(A, a.revokeLink(A, B)), http.StatusCreated, "")
		if st := a.deviceState(B); st != "revoked" {
			t.Fatalf("B is %q after its revocation", st)
		}

		// 1. The head columns go back to seq 1; the revocation's row stays.
		headsRollBack(t, dsn, a.id, 1, false)
		e.waitAnnouncedExactly(a.id, 1)
		headsRefused(t, e, a, A, B, c, C, rolledBack)
		// A fresh instance never saw seq 2, but the row above the head
		// gives the rollback away.
		other := func() *env {
			return newEnvDSN(t, dsn, func(cfg *Config) { cfg.DataDir, cfg.DatabaseURL = t.TempDir(), dsn })
		}
		headsRefused(t, other(), a, A, B, c, C, rolledBack)

		// 2. The revocation's row is deleted too: only the marks know.
		dropped := headsRollBack(t, dsn, a.id, 1, true)
		headsRefused(t, e, a, A, B, c, C, rolledBack)
		testkit.NoErr(t, e.srv.Close())
		restarted := newEnvDSN(t, dsn, func(cfg *Config) { cfg.DataDir = e.cfg.DataDir })
		headsRefused(t, restarted, a, A, B, c, C, rolledBack)
		// What a fresh instance cannot know: it serves the rolled-back
		// chain, which is the account's chain as the database holds it.
		// Clients that synced seq 2 refuse it (they keep their head); the
		// transparency log (issue 10) is to close the rest.
		if st := a.on(other()).deviceState(B); st != "active" {
			t.Fatalf("a fresh instance lists B as %q: update docs/design/command.md §2 if it now knows better", st)
		}

		// 3. The database is put back: the instance serves it again.
		headsRestore(t, dsn, a.id, dropped)
		restarted.waitAnnouncedExactly(a.id, 2)
		if st := a.on(restarted).deviceState(B); st != "revoked" {
			t.Fatalf("after the database was put back B is %q", st)
		}
		restarted.want(restarted.do("POST", "/v1/auth/challenge", "", map[string]string{"account_id": a.id, "device_id": B.id.String()}), 403, "device_revoked")
	})
}

// staleReads returns, once, an account row read before the last append,
// as a head read that began before a concurrent append committed does.
type staleReads struct {
	store.Store
	mu    sync.Mutex
	stale *store.Account
}

func (s *staleReads) Account(ctx context.Context, id string) (store.Account, error) {
	s.mu.Lock()
	st := s.stale
	s.stale = nil
	s.mu.Unlock()
	if st != nil && st.ID == id {
		return *st, nil
	}
	return s.Store.Account(ctx, id)
}

func (s *staleReads) arm(a store.Account) {
	s.mu.Lock()
	s.stale = &a
	s.mu.Unlock()
}

// A head read that is merely stale — it began before an append committed,
// the append's head and row are there by now — is not an inconsistency,
// for the instance that marked the newer head and for one that never saw
// it (whose link read finds the new row above the head it read).
func TestStaleHeadReadIsNotARollback(t *testing.T) {
	inner, err := store.Open(context.Background(), storetest.SQLiteDSN(t))
	testkit.NoErr(t, err)
	t.Cleanup(func() { inner.Close() })
	sr := &staleReads{Store: inner}
	e := newEnv(t, func(c *Config) { c.Store = sr })
	A, B := newDev("alice/A"), newDev("alice/B")
	a := e.newAccount("alice", A, chain.DefaultPolicy())
	old, err := inner.Account(context.Background(), a.id)
	testkit.NoErr(t, err)
	a.add(B, A)

	sr.arm(old)
	if st := a.deviceState(B); st != "active" {
		t.Fatalf("after a stale head read B is %q", st)
	}
	e2 := newEnv(t, func(c *Config) { c.Store = sr })
	sr.arm(old)
	e2.want(e2.do("GET", "/v1/accounts/"+a.id+"/devices", "", nil), 200, "")
	for _, e := range []*env{e, e2} {
		if strings.Contains(e.logText(), "inconsistent") {
			t.Fatalf("a stale read was logged as an inconsistency:\n%s", e.logText())
		}
	}
}

// The head marks are MAC'd: lowering an instance's mark in its marks
// file along with the database, without the key, does not get a
// rollback past the restarted instance.
func TestHeadMarkTamperingIsRefused(t *testing.T) {
	dsn := storetest.SQLiteDSN(t)
	e := newEnvDSN(t, dsn)
	a, A, B := e.aliceAB()
	C := newDev("carol/C")
	c := e.newAccount("carol", C, chain.DefaultPolicy())
	e.want(a.post(A, a.revokeLink(A, B)), http.StatusCreated, "")
	testkit.NoErr(t, e.srv.Close())

	headsRollBack(t, dsn, a.id, 1, true)
	db := storetest.RawDB(t, filepath.Join(e.cfg.DataDir, HeadMarksFile))
	var hash string
	testkit.NoErr(t, storetest.RawDB(t, dsn).QueryRow(`SELECT head_hash FROM accounts WHERE id = ?`, a.id).Scan(&hash))
	res, err := db.Exec(`UPDATE marks SET seq = 1, hash = ? WHERE account_id = ?`, hash, a.id)
	testkit.NoErr(t, err)
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("%d marks changed, want 1", n)
	}
	db.Close()

	restarted := newEnvDSN(t, dsn)
	headsRefused(t, restarted, a, A, B, c, C, "the head mark of an account fails its MAC")
}

// Appends one at a time (rotate_keys links built ahead), each its own
// database commit and, since the head marks, its own mark raise: the
// latency a lone append pays, where BenchmarkEnrollment shows concurrent
// ones sharing their commits.
func BenchmarkSerialAppend(b *testing.B) {
	e := newEnv(b)
	A := newDev("serial/A")
	a := e.newAccount("serial", A, chain.DefaultPolicy())
	links := make([]*chain.Link, 0, b.N)
	for i := 0; i < b.N; i++ {
		l := a.rotateKEMLink(A, i+1)
		st, err := chain.Apply(a.st, l, e.clock.Now())
		testkit.NoErr(b, err)
		a.st, links = st, append(links, l)
	}
	tok := a.token(A)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := e.do("POST", "/v1/accounts/"+a.id+"/links", tok, map[string]string{"link": enc64(links[i].Bytes())})
		if r.code != http.StatusCreated {
			b.Fatalf("append %d: %d %s", i, r.code, r.body)
		}
	}
}
