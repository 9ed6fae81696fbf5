package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/command/store"
	"github.com/enigm/enigm/command/store/storetest"
	"github.com/enigm/enigm/translog"
	"github.com/enigm/enigm/translog/smap"
	"github.com/enigm/enigm/translog/translogtest"
)

const logOrigin = "enigm.test/command-log"

func logSigner(t testing.TB) *translog.Signer { return translogtest.NewSigner(t, logOrigin) }

func logOf(t testing.TB, s store.Store) *store.Log {
	t.Helper()
	l, err := store.LogStorage(s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func hexOf(label string) string {
	h := sha256.Sum256([]byte(label))
	return fmt.Sprintf("%x", h)
}

// fakeLink is link seq of an account named name (the store does not
// verify chains; the log takes the bytes it is given).
func fakeLink(name string, seq uint64) store.Link {
	l := store.Link{Seq: seq, Hash: hexOf(fmt.Sprintf("%s/%d", name, seq)), Type: "add_device",
		Data: fmt.Appendf(nil, "link %d of %s", seq, name), CreatedAt: time.Unix(1700000000+int64(seq), 0)}
	if seq == 0 {
		l.Type = "genesis"
	} else {
		l.Prev = hexOf(fmt.Sprintf("%s/%d", name, seq-1))
	}
	return l
}

func createAccount(t testing.TB, s store.Store, name string) string {
	t.Helper()
	g := fakeLink(name, 0)
	a := store.Account{ID: g.Hash, Name: name, Head: store.Head{Hash: g.Hash}, CreatedAt: g.CreatedAt}
	if err := s.CreateAccount(context.Background(), store.NewAccount{Account: a, Genesis: g}); err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return a.ID
}

// storeLink is the store's row of a real chain link, as Command writes it.
func storeLink(l *chain.Link) store.Link {
	sl := store.Link{Seq: l.Seq(), Hash: l.Hash().String(), Type: l.Type().String(), Data: l.Bytes(), CreatedAt: l.Time()}
	if l.Seq() > 0 {
		sl.Prev = l.Prev().String()
	}
	return sl
}

func appendLink(s store.Store, id, name string, seq uint64) error {
	return s.Append(context.Background(), store.Append{AccountID: id, Link: fakeLink(name, seq)})
}

func TestLog(t *testing.T) {
	t.Parallel()
	storetest.Engines(t, testLog)
}

// testLog: every link stored becomes the next leaf, in the order of the
// appends; refused appends sequence nothing; a leaf that cannot be
// written keeps the link out as well; the integrated log proves every
// link's inclusion, and Tessera's fsck passes on it when served.
func testLog(t *testing.T, dsn string) {
	ctx := context.Background()
	s := storetest.Open(t, dsn)
	ls := logOf(t, s)
	l := translog.New(ls, logSigner(t))

	var want [][]byte
	ids := map[string]string{}
	for i := range 12 {
		name := fmt.Sprintf("acct%02d", i)
		ids[name] = createAccount(t, s, name)
		want = append(want, fakeLink(name, 0).Data)
	}
	for seq := uint64(1); seq <= 25; seq++ {
		for i := range 12 {
			name := fmt.Sprintf("acct%02d", i)
			if err := appendLink(s, ids[name], name, seq); err != nil {
				t.Fatal(err)
			}
			want = append(want, fakeLink(name, seq).Data)
		}
	}
	// Refused: a stale head, an unknown account.
	if err := appendLink(s, ids["acct00"], "acct00", 7); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("append at a stale head: %v", err)
	}
	if err := appendLink(s, hexOf("nobody"), "nobody", 1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("append to an unknown account: %v", err)
	}
	// A leaf that cannot be written (its (account, seq) row is there
	// already, put behind the store's back) keeps the link out too.
	db := storetest.RawDB(t, dsn)
	if _, err := db.ExecContext(ctx, storetest.Rebind(dsn, `INSERT INTO log_leaves (idx, account_id, seq, map_data) VALUES (?,?,?,?)`),
		1_000_000, ids["acct01"], 26, []byte("planted")); err != nil {
		t.Fatal(err)
	}
	if err := appendLink(s, ids["acct01"], "acct01", 26); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("append whose leaf cannot be written: %v, want ErrConflict", err)
	}
	if a, _ := s.Account(ctx, ids["acct01"]); a.Head.Seq != 25 {
		t.Fatalf("the head moved to %d although its leaf was not written", a.Head.Seq)
	}
	if links, _ := s.Links(ctx, ids["acct01"], 25, 0); len(links) != 0 {
		t.Fatal("the link was stored although its leaf was not written")
	}
	if _, err := db.ExecContext(ctx, storetest.Rebind(dsn, `DELETE FROM log_leaves WHERE idx = ?`), 1_000_000); err != nil {
		t.Fatal(err)
	}

	c, err := l.Integrate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The links, then the map leaf (of the empty map: these fake links
	// are not chain links; testLogMap has real ones).
	ref := testonly.New(rfc6962.DefaultHasher)
	ref.AppendData(want...)
	ref.AppendData(translog.MapLeaf(uint64(len(want)), smap.EmptyHash))
	if c.Size != uint64(len(want))+1 || !bytes.Equal(c.Hash[:], ref.Hash()) {
		t.Fatalf("checkpoint size %d, %d links stored and the map leaf; root %x, reference %x", c.Size, len(want), c.Hash, ref.Hash())
	}
	for _, name := range []string{"acct00", "acct11"} {
		for _, seq := range []uint64{0, 13, 25} {
			idx, err := ls.LeafIndex(ctx, ids[name], seq)
			if err != nil {
				t.Fatal(err)
			}
			p, err := l.InclusionProof(ctx, idx, c.Size)
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, idx, c.Size, rfc6962.DefaultHasher.HashLeaf(fakeLink(name, seq).Data), p, c.Hash[:]); err != nil {
				t.Fatalf("%s seq %d at %d: %v", name, seq, idx, err)
			}
		}
	}

	mux := http.NewServeMux()
	mux.Handle("/log/", http.StripPrefix("/log", l.Handler()))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	r := translogtest.Fsck(t, srv.URL+"/log/", logOrigin, l.VerifierKeys()[0])
	if !r.OK || r.Size != uint64(len(want))+1 {
		t.Fatalf("fsck on the %s log of %d leaves:\n%s", s.Engine(), len(want), r.Output)
	}

	// A logged link rewritten in the database behind the store: its leaf
	// reads the link's row (schema version 6), so the entry bundles no
	// longer hash to the published tree, and an outside tool sees it.
	if _, err := db.ExecContext(ctx, storetest.Rebind(dsn, `UPDATE links SET data = ? WHERE account_id = ? AND seq = ?`),
		[]byte("rewritten link"), ids["acct11"], 13); err != nil {
		t.Fatal(err)
	}
	if r := translogtest.Fsck(t, srv.URL+"/log/", logOrigin, l.VerifierKeys()[0]); r.OK {
		t.Fatalf("fsck passes the %s log after a logged link was rewritten in the database:\n%s", s.Engine(), r.Output)
	}
}

// TestLogConcurrentPostgres: four instances over one PostgreSQL database
// append links to their own accounts from several goroutines each while
// every instance integrates in a loop. Afterwards the leaves are exactly
// the stored links, numbered without gaps, each account's in sequence
// order; the final checkpoint's root is the reference root of those
// leaves; and every checkpoint an integrator returned on the way is
// consistent with the final one.
func TestLogConcurrentPostgres(t *testing.T) {
	t.Parallel()
	dsn := storetest.PostgresDSN(t)
	ctx := context.Background()
	const instances, writers, perWriter = 4, 3, 15
	signer := logSigner(t)
	var stores []store.Store
	var logs []*translog.Log
	for range instances {
		s := storetest.Open(t, dsn)
		stores = append(stores, s)
		logs = append(logs, translog.New(logOf(t, s), signer))
	}

	stop := make(chan struct{})
	var mu sync.Mutex
	var seen []translog.Checkpoint
	var integErr error
	var iwg sync.WaitGroup
	for _, l := range logs {
		iwg.Add(1)
		go func() {
			defer iwg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := l.Integrate(ctx)
				mu.Lock()
				if err != nil && integErr == nil {
					integErr = err
				}
				seen = append(seen, c)
				mu.Unlock()
				time.Sleep(3 * time.Millisecond)
			}
		}()
	}

	// Real chains, built before the appends start (signing is slow and
	// would serialise nothing interesting).
	chains := map[string]*translogtest.Chain{}
	for i := range instances {
		for w := range writers {
			name := fmt.Sprintf("i%d-w%d", i, w)
			c := translogtest.NewChain(t, name)
			for range perWriter {
				c.Next(t)
			}
			chains[name] = c
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, instances*writers)
	for i, s := range stores {
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				name := fmt.Sprintf("i%d-w%d", i, w)
				c := chains[name]
				g := storeLink(c.Links[0])
				a := store.Account{ID: g.Hash, Name: name, Head: store.Head{Hash: g.Hash}, CreatedAt: g.CreatedAt}
				if err := s.CreateAccount(ctx, store.NewAccount{Account: a, Genesis: g}); err != nil {
					errs <- err
					return
				}
				for _, l := range c.Links[1:] {
					if err := s.Append(ctx, store.Append{AccountID: a.ID, Link: storeLink(l)}); err != nil {
						errs <- fmt.Errorf("%s seq %d: %w", name, l.Seq(), err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(stop)
	iwg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if integErr != nil {
		t.Fatalf("a concurrent Integrate failed: %v", integErr)
	}

	final, err := logs[0].Integrate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	links := uint64(instances * writers * (perWriter + 1))
	leaves, err := logOf(t, stores[0]).Leaves(ctx, 0, final.Size+10)
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(leaves)) != final.Size {
		t.Fatalf("%d leaves sequenced, the final checkpoint has %d", len(leaves), final.Size)
	}
	// The leaves: every link once, each account's in sequence order,
	// and map leaves, each committing to the map of exactly the links
	// before it although appends ran on all instances meanwhile.
	next := map[chain.AccountID]uint64{}
	var mc translog.MapChecker
	var nlinks, nmaps uint64
	for i, lf := range leaves {
		isMap, err := mc.Add(lf)
		if err != nil {
			t.Fatal(err)
		}
		if isMap {
			nmaps++
			continue
		}
		l, err := chain.ParseLink(lf)
		if err != nil {
			t.Fatalf("leaf %d: %v", i, err)
		}
		acct := l.Account()
		if l.Seq() == 0 {
			acct = chain.AccountID(l.Hash())
		}
		if l.Seq() != next[acct] {
			t.Fatalf("leaf %d is %s seq %d, expected seq %d of it next", i, acct, l.Seq(), next[acct])
		}
		next[acct]++
		nlinks++
	}
	if nlinks != links || !translog.IsMapLeaf(leaves[len(leaves)-1]) {
		t.Fatalf("%d links and %d map leaves in the log, %d links stored; last leaf a map leaf: %v", nlinks, nmaps, links, translog.IsMapLeaf(leaves[len(leaves)-1]))
	}
	for name, c := range chains {
		v, ok := mc.Map().Get(smap.Key(c.ID))
		if !ok || v.Seq != c.Head().Seq || v.Head != c.Head().Hash {
			t.Fatalf("%s: the map has %v, its head is %v", name, v, c.Head())
		}
	}
	total := final.Size
	ref := testonly.New(rfc6962.DefaultHasher)
	ref.AppendData(leaves...)
	if !bytes.Equal(final.Hash[:], ref.Hash()) {
		t.Fatalf("final root %x, reference %x", final.Hash, ref.Hash())
	}
	sizes := 0
	for _, c := range seen {
		if c.Size > total {
			t.Fatalf("a checkpoint of %d leaves, more than the %d stored", c.Size, total)
		}
		if c.Size > 0 && !translog.IsMapLeaf(leaves[c.Size-1]) {
			t.Fatalf("the checkpoint of %d leaves does not end in a map leaf", c.Size)
		}
		p, err := logs[1].ConsistencyProof(ctx, c.Size, final.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, c.Size, final.Size, p, c.Hash[:], final.Hash[:]); err != nil {
			t.Fatalf("checkpoint %d is not consistent with the final one: %v", c.Size, err)
		}
		if c.Size > 0 && c.Size < total {
			sizes++
		}
	}
	t.Logf("%d leaves (%d map leaves) from %d instances; %d intermediate checkpoints checked for consistency", total, nmaps, instances, sizes)
}

// TestLogMigrationBackfill: a database at schema version 2, whose links
// were stored before the log existed, gets them as its first leaves when
// migration 3 runs, each account's in sequence order even where the
// clock went backwards between two of its links.
func TestLogMigrationBackfill(t *testing.T) {
	t.Parallel()
	storetest.Engines(t, testLogMigrationBackfill)
}

func testLogMigrationBackfill(t *testing.T, dsn string) {
	ctx := context.Background()
	s, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	a := createAccount(t, s, "alice")
	b := createAccount(t, s, "bob")
	for seq := uint64(1); seq <= 3; seq++ {
		if err := appendLink(s, a, "alice", seq); err != nil {
			t.Fatal(err)
		}
		if err := appendLink(s, b, "bob", seq); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	db := storetest.RawDB(t, dsn)
	for _, q := range []string{
		// alice's seq 2 was stored with a clock that had gone back.
		`UPDATE links SET created_at = 1 WHERE seq = 2 AND account_id = '` + a + `'`,
		`DROP TABLE log_sequence`, `DROP TABLE log_leaves`, `DROP TABLE log_tiles`, `DROP TABLE log_state`, `DROP TABLE log_map`,
		`UPDATE schema_version SET version = 2`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	s = storetest.Open(t, dsn)
	ls := logOf(t, s)
	leaves, err := ls.Leaves(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(leaves) != 8 {
		t.Fatalf("%d leaves after the migration, 8 links stored", len(leaves))
	}
	next := map[string]uint64{}
	for i, lf := range leaves {
		var seq uint64
		var name string
		fmt.Sscanf(string(lf), "link %d of %s", &seq, &name)
		if seq != next[name] {
			t.Fatalf("leaf %d is %s seq %d, expected seq %d next", i, name, seq, next[name])
		}
		next[name]++
	}
	// New links follow the backfilled ones.
	if err := appendLink(s, b, "bob", 4); err != nil {
		t.Fatal(err)
	}
	if idx, err := ls.LeafIndex(ctx, b, 4); err != nil || idx != 8 {
		t.Fatalf("the first link after the migration is leaf %d (%v), want 8", idx, err)
	}
	if _, err := translog.New(ls, logSigner(t)).Integrate(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestLogMap*: real chains through the store: after integration every
// account's freshness proof verifies against the checkpoint and proves
// its head, log_map holds one row per account, and the map survives a
// new Log (a restart) and a database at schema version 3 (log_map and
// map_size dropped, as before migration 4), which builds it from the
// leaves at its first freshness proof and keeps integrating from it.
func TestLogMapSQLite(t *testing.T) {
	t.Parallel()
	testLogMap(t, storetest.SQLiteDSN(t))
}

func TestLogMapPostgres(t *testing.T) {
	t.Parallel()
	testLogMap(t, storetest.PostgresDSN(t))
}

func testLogMap(t *testing.T, dsn string) {
	ctx := context.Background()
	s, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	signer := logSigner(t)
	var chains []*translogtest.Chain
	for i := range 5 {
		c := translogtest.NewChain(t, fmt.Sprintf("map%d", i))
		chains = append(chains, c)
		g := storeLink(c.Links[0])
		if err := s.CreateAccount(ctx, store.NewAccount{Account: store.Account{ID: g.Hash, Name: c.String(), Head: store.Head{Hash: g.Hash}, CreatedAt: g.CreatedAt}, Genesis: g}); err != nil {
			t.Fatal(err)
		}
		for range i {
			if err := s.Append(ctx, store.Append{AccountID: g.Hash, Link: storeLink(c.Next(t))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	checkAll := func(l *translog.Log, cp translog.Checkpoint) {
		t.Helper()
		for _, c := range chains {
			f, err := l.Freshness(ctx, smap.Key(c.ID))
			if err != nil {
				t.Fatal(err)
			}
			if err := translog.VerifyFreshness(cp, smap.Key(c.ID), f); err != nil {
				t.Fatalf("%s: %v", c, err)
			}
			if h := c.Head(); f.Value == nil || f.Value.Seq != h.Seq || f.Value.Head != h.Hash {
				t.Fatalf("%s: the log proves %v, its head is %v", c, f.Value, h)
			}
		}
	}
	l := translog.New(logOf(t, s), signer)
	cp, err := l.Integrate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != 5+10+1 {
		t.Fatalf("checkpoint of %d leaves, want 15 links and the map leaf", cp.Size)
	}
	checkAll(l, cp)
	checkAll(translog.New(logOf(t, s), signer), cp) // a restart: the map from log_map
	db := storetest.RawDB(t, dsn)
	var rows int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM log_map`).Scan(&rows); err != nil || rows != 5 {
		t.Fatalf("log_map has %d rows (%v), want one per account", rows, err)
	}
	s.Close()

	// Back to schema version 3 (the link leaves' bytes stay emptied:
	// migration 6 empties them anyway).
	for _, q := range []string{`DROP TABLE log_map`, `ALTER TABLE log_state DROP COLUMN map_size`, `ALTER TABLE log_leaves RENAME COLUMN map_data TO data`, `UPDATE schema_version SET version = 3`} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s = storetest.Open(t, dsn)
	l = translog.New(logOf(t, s), signer)
	checkAll(l, cp)
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM log_map`).Scan(&rows); err != nil || rows != 5 {
		t.Fatalf("after migration 4 and a freshness proof log_map has %d rows (%v), want 5", rows, err)
	}
	c := chains[4]
	if err := s.Append(ctx, store.Append{AccountID: c.ID.String(), Link: storeLink(c.Next(t))}); err != nil {
		t.Fatal(err)
	}
	cp2, err := l.Integrate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkAll(l, cp2)
	leaves, err := logOf(t, s).Leaves(ctx, 0, cp2.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := translog.CheckMapLeaves(leaves); err != nil {
		t.Fatal(err)
	}
}

// TestLogSequenceBehindLeaves: a log sequence row set back behind the
// leaves (a restored or hand-edited database) makes the next append fail
// as corrupt, on both engines, and stores nothing of it: the head stays
// where it was, so no link is stored without its leaf.
func TestLogSequenceBehindLeaves(t *testing.T) {
	storetest.Engines(t, func(t *testing.T, dsn string) {
		s := storetest.Open(t, dsn)
		id := createAccount(t, s, "behind")
		if err := appendLink(s, id, "behind", 1); err != nil {
			t.Fatal(err)
		}
		if _, err := storetest.RawDB(t, dsn).Exec(`UPDATE log_sequence SET next = next - 1 WHERE id = 1`); err != nil {
			t.Fatal(err)
		}
		err := appendLink(s, id, "behind", 2)
		if !errors.Is(err, translog.ErrCorrupt) || !strings.Contains(err.Error(), "the log sequence is behind its leaves") {
			t.Fatalf("append over a sequence behind its leaves: %v, want translog.ErrCorrupt naming the sequence", err)
		}
		a, err := s.Account(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if a.Head.Seq != 1 {
			t.Fatalf("the refused append moved the head to seq %d", a.Head.Seq)
		}
	})
}

// TestLogLeafBytesAreTheLinks: a link's leaf stores no copy of the link
// (schema version 6): its bytes are read from the link's row, exactly the
// link's; the statements of a binary from before fail (the column was
// renamed); and a leaf whose link row is gone is refused as corrupt
// rather than served as other bytes.
func TestLogLeafBytesAreTheLinks(t *testing.T) {
	storetest.Engines(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s := storetest.Open(t, dsn)
		id := createAccount(t, s, "copy")
		if err := appendLink(s, id, "copy", 1); err != nil {
			t.Fatal(err)
		}
		db := storetest.RawDB(t, dsn)
		var stored int64
		if err := db.QueryRow(`SELECT COALESCE(SUM(length(map_data)), 0) FROM log_leaves`).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if stored != 0 {
			t.Fatalf("the link leaves hold %d bytes of copies", stored)
		}
		// A binary from before version 6 still running on the database
		// fails on the leaves' bytes instead of reading a link leaf's
		// empty bytes as the leaf (its reads, its appends).
		if rows, err := db.Query(`SELECT idx, data FROM log_leaves`); err == nil {
			rows.Close()
			t.Fatal("the statement a binary from before version 6 reads leaves with still runs")
		}
		if _, err := db.Exec(storetest.Rebind(dsn, `INSERT INTO log_leaves (idx, account_id, seq, data) VALUES (?,?,?,?)`), 99, id, 99, []byte("x")); err == nil {
			t.Fatal("the statement a binary from before version 6 appends leaves with still runs")
		}
		leaves, err := logOf(t, s).Leaves(ctx, 0, 2)
		if err != nil {
			t.Fatal(err)
		}
		for seq, leaf := range leaves {
			if want := fakeLink("copy", uint64(seq)).Data; !bytes.Equal(leaf, want) {
				t.Fatalf("leaf %d is %q, want link %d's bytes %q", seq, leaf, seq, want)
			}
		}
		if _, err := db.Exec(storetest.Rebind(dsn, `DELETE FROM links WHERE account_id = ? AND seq = 1`), id); err != nil {
			t.Fatal(err)
		}
		_, err = logOf(t, s).Leaves(ctx, 0, 2)
		if !errors.Is(err, translog.ErrCorrupt) || !strings.Contains(err.Error(), "log leaf 1 is link 1 of account "+id) {
			t.Fatalf("reading a leaf whose link row is gone: %v, want translog.ErrCorrupt naming it", err)
		}
	})
}
