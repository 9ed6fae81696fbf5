package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/enigm/enigm/translog"
	"github.com/enigm/enigm/translog/smap"
)

// The transparency log's tables (package translog holds the log itself).
//
//	log_sequence  one row: the number of leaves sequenced so far
//	log_leaves    leaf idx → its (account, seq), and in map_data the
//	              leaf's bytes for a map leaf; a link's leaf holds no
//	              bytes (since migration 6): they are the link's,
//	              links.data
//	log_tiles     the hash tiles of the integrated tree (tlog-tiles)
//	log_state     one row: integrated size, compact range, signed
//	              checkpoint
//
// Every link is sequenced in the transaction that stores it and moves the
// account's head (logLeaf, called by CreateAccount and Append), so a link
// is never stored without its leaf or the reverse. The sequence row is
// updated in place, which on PostgreSQL locks it until the transaction
// commits: appends, on every instance, take leaf numbers one after the
// other, in the order they commit, without gaps (a transaction that rolls
// back gives its number back). It is the last lock an append takes, so
// lock order is always account row, then sequence row.
//
// Migration 3 logs the links stored before it, ordered by when they were
// stored (the running maximum of created_at within an account, so an
// account's links stay in sequence order), then by account and sequence.
//
// Migration 5 adds the map of every account's newest link (translog/smap,
// docs/design/translog.md "Freshness"):
//
//	log_map             account id (32 bytes) → seq and hash of its newest
//	                    integrated link
//	log_state.map_size  how many leaves log_map reflects
//
// and map leaves: the integrator sequences one after the links of every
// checkpoint, through log_sequence like any append, stored in log_leaves
// with account_id ” and seq its own index (so (account_id, seq) stays
// unique). A database from before it has map_size 0: the first
// integration (or freshness proof) builds log_map from the leaves.
//
// Migration 6 stops storing a link's bytes twice: log_leaves.data becomes
// map_data, empty for a link leaf, and reads take links.data of its
// (account_id, seq), which links never change once stored. The link is
// most of what an append writes, and the leaf's copy doubled it
// (BenchmarkLogOnOff). A link leaf whose link row is gone is corrupt, and
// reads of it fail rather than serve other bytes.
var logMigration = []string{
	`CREATE TABLE log_sequence (
		id INTEGER PRIMARY KEY,
		next BIGINT NOT NULL)`,
	`CREATE TABLE log_leaves (
		idx BIGINT PRIMARY KEY,
		account_id TEXT NOT NULL,
		seq BIGINT NOT NULL,
		data {blob} NOT NULL,
		UNIQUE (account_id, seq))`,
	`CREATE TABLE log_tiles (
		level INTEGER NOT NULL,
		idx BIGINT NOT NULL,
		hashes {blob} NOT NULL,
		PRIMARY KEY (level, idx))`,
	`CREATE TABLE log_state (
		id INTEGER PRIMARY KEY,
		size BIGINT NOT NULL,
		compact {blob},
		checkpoint {blob})`,
	`INSERT INTO log_leaves (idx, account_id, seq, data)
		SELECT ROW_NUMBER() OVER (ORDER BY t, account_id, seq) - 1, account_id, seq, data
		FROM (SELECT account_id, seq, data,
			MAX(created_at) OVER (PARTITION BY account_id ORDER BY seq ROWS UNBOUNDED PRECEDING) AS t
			FROM links) l`,
	`INSERT INTO log_sequence (id, next) SELECT 1, COUNT(*) FROM log_leaves`,
	`INSERT INTO log_state (id, size) VALUES (1, 0)`,
	`{postgres}ALTER TABLE log_leaves ALTER COLUMN data SET STORAGE EXTERNAL`,
}

// logLeaf sequences the link l of account as the next leaf of the log, in
// the caller's transaction x.
func (s *sqlStore) logLeaf(ctx context.Context, x execer, account string, l Link) error {
	if s.noLog {
		return nil
	}
	if len(l.Data) > translog.MaxLeafSize {
		return fmt.Errorf("store: a link of %d bytes cannot be a log leaf (at most %d)", len(l.Data), translog.MaxLeafSize)
	}
	var err error
	leaf := "the next log leaf"
	if s.d == postgresDialect {
		// One statement, one round trip: the sequence row is locked from
		// here to the commit, and every append of every account waits
		// for it (BenchmarkLogOnOff, docs/perf.md).
		var idx int64
		err = s.row(ctx, x, `WITH n AS (UPDATE log_sequence SET next = next + 1 WHERE id = 1 RETURNING next)
			INSERT INTO log_leaves (idx, account_id, seq, map_data) SELECT next - 1, ?, ?, '' FROM n RETURNING idx`,
			account, int64(l.Seq)).Scan(&idx)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: the log sequence row is missing; nothing was stored, the database needs an operator", translog.ErrCorrupt)
		}
	} else {
		var next int64
		if err := s.row(ctx, x, `UPDATE log_sequence SET next = next + 1 WHERE id = 1 RETURNING next`).Scan(&next); err != nil {
			return fmt.Errorf("sequencing the log leaf: %w", err)
		}
		leaf = fmt.Sprintf("log leaf %d", next-1)
		_, err = s.exec(ctx, x, `INSERT INTO log_leaves (idx, account_id, seq, map_data) VALUES (?,?,?,'')`,
			next-1, account, int64(l.Seq))
	}
	if s.d.classify(err) == kindUnique {
		if s.d.primaryKey(err) {
			return fmt.Errorf("%w: %s exists already, the log sequence is behind its leaves; nothing was stored, the database needs an operator", translog.ErrCorrupt, leaf)
		}
		return fmt.Errorf("%w: account %s already has a log leaf at seq %d", ErrConflict, account, l.Seq)
	}
	return err
}

var leafDataMigration = []string{
	// Renamed, so that a binary from before it still running on the
	// database (several instances over one PostgreSQL, upgraded one by
	// one) fails on every statement that touches a leaf's bytes, instead
	// of reading a link leaf's empty bytes as the leaf and integrating a
	// wrong tree: its appends and integrations fail closed until it is
	// upgraded too.
	`ALTER TABLE log_leaves RENAME COLUMN data TO map_data`,
	`UPDATE log_leaves SET map_data = '' WHERE account_id <> ''`,
}

var mapMigration = []string{
	`CREATE TABLE log_map (
		account_id {blob} PRIMARY KEY,
		seq BIGINT NOT NULL,
		head {blob} NOT NULL)`,
	`ALTER TABLE log_state ADD COLUMN map_size BIGINT NOT NULL DEFAULT 0`,
}

// LogStorage returns the transparency log storage of st, a Store from
// Open: the leaves its appends sequence, and the tiles and checkpoints
// that translog.Log.Integrate writes.
func LogStorage(st Store) (*Log, error) {
	switch s := st.(type) {
	case *sqlStore:
		return &Log{s: s}, nil
	case *pgStore:
		return &Log{s: s.sqlStore}, nil
	}
	return nil, fmt.Errorf("store: %T has no log storage", st)
}

// Log is the transparency log's storage in the database (a
// translog.Storage).
type Log struct{ s *sqlStore }

var _ translog.Storage = (*Log)(nil)

// Update runs fn in one transaction that holds the log state row: on
// PostgreSQL locked FOR UPDATE, so integrations on several instances run
// one after the other; on SQLite write transactions are serialised anyway.
func (l *Log) Update(ctx context.Context, fn func(ctx context.Context, tx translog.Tx) error) error {
	return l.s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		q := `SELECT size FROM log_state WHERE id = 1`
		if l.s.d == postgresDialect {
			q += ` FOR UPDATE`
		}
		var size int64
		if err := l.s.row(ctx, tx, q).Scan(&size); err != nil {
			return fmt.Errorf("locking the log state: %w", err)
		}
		return fn(ctx, &logTx{s: l.s, x: tx})
	})
}

func (l *Log) State(ctx context.Context) (translog.State, error) {
	st, err := readLogState(ctx, l.s, l.s.db)
	return st, l.s.wrap(err)
}

func (l *Log) Tile(ctx context.Context, level, index uint64) ([]byte, error) {
	t, err := readTile(ctx, l.s, l.s.db, level, index)
	if errors.Is(err, translog.ErrNotFound) {
		return nil, err
	}
	return t, l.s.wrap(err)
}

func (l *Log) Leaves(ctx context.Context, start, end uint64) ([][]byte, error) {
	ls, err := readLeaves(ctx, l.s, l.s.db, start, end)
	if errors.Is(err, translog.ErrCorrupt) {
		return nil, err
	}
	return ls, l.s.wrap(err)
}

// LeafIndex returns the log index of the link (account, seq);
// ErrNotFound when it was never logged.
func (l *Log) LeafIndex(ctx context.Context, account string, seq uint64) (uint64, error) {
	var idx int64
	err := l.s.row(ctx, l.s.db, `SELECT idx FROM log_leaves WHERE account_id = ? AND seq = ?`, account, int64(seq)).Scan(&idx)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("%w: no log leaf for %s seq %d", ErrNotFound, account, seq)
	}
	return uint64(idx), l.s.wrap(err)
}

type logTx struct {
	s *sqlStore
	x *sql.Tx
}

func (t *logTx) State(ctx context.Context) (translog.State, error) {
	return readLogState(ctx, t.s, t.x)
}

func (t *logTx) Sequenced(ctx context.Context) (uint64, error) {
	var n int64
	err := t.s.row(ctx, t.x, `SELECT next FROM log_sequence WHERE id = 1`).Scan(&n)
	return uint64(n), err
}

func (t *logTx) Leaves(ctx context.Context, start, end uint64) ([][]byte, error) {
	return readLeaves(ctx, t.s, t.x, start, end)
}

func (t *logTx) Tile(ctx context.Context, level, index uint64) ([]byte, error) {
	return readTile(ctx, t.s, t.x, level, index)
}

func (t *logTx) PutTile(ctx context.Context, level, index uint64, hashes []byte) error {
	_, err := t.s.exec(ctx, t.x, `INSERT INTO log_tiles (level, idx, hashes) VALUES (?,?,?)
		ON CONFLICT (level, idx) DO UPDATE SET hashes = excluded.hashes`, int64(level), int64(index), hashes)
	return err
}

func (t *logTx) PutState(ctx context.Context, st translog.State) error {
	return t.s.execOne(ctx, t.x, "the log state row", `UPDATE log_state SET size = ?, compact = ?, checkpoint = ?, map_size = ? WHERE id = 1`,
		int64(st.Size), st.Range, st.Checkpoint, int64(st.MapSize))
}

// SequenceLeaf takes the next leaf number the way logLeaf does (on
// PostgreSQL the update waits for, then holds, the sequence row, so every
// append that took a number before has committed, and READ COMMITTED
// statements after it see their leaves) and stores the map leaf there.
// The integrator locked log_state first; appends never lock it, so the
// two lock orders (append: account row, sequence; integrator: log_state,
// sequence) cannot deadlock.
func (t *logTx) SequenceLeaf(ctx context.Context, leaf func(uint64) ([]byte, error)) (uint64, error) {
	var next int64
	if err := t.s.row(ctx, t.x, `UPDATE log_sequence SET next = next + 1 WHERE id = 1 RETURNING next`).Scan(&next); err != nil {
		return 0, fmt.Errorf("sequencing the map leaf: %w", err)
	}
	idx := uint64(next - 1)
	b, err := leaf(idx)
	if err != nil {
		return 0, err
	}
	if _, err := t.s.exec(ctx, t.x, `INSERT INTO log_leaves (idx, account_id, seq, map_data) VALUES (?,'',?,?)`, int64(idx), int64(idx), b); err != nil {
		if t.s.d.classify(err) == kindUnique {
			return 0, fmt.Errorf("%w: log leaf %d exists already, the log sequence is behind its leaves", translog.ErrCorrupt, idx)
		}
		return 0, err
	}
	return idx, nil
}

func (t *logTx) Map(ctx context.Context) ([]smap.Entry, error) {
	return queryAll(ctx, t.s, t.x, func(sc scanner) (smap.Entry, error) {
		var e smap.Entry
		var k, h []byte
		var seq int64
		if err := sc.Scan(&k, &seq, &h); err != nil {
			return e, err
		}
		if len(k) != len(e.Key) || len(h) != len(e.Value.Head) || seq < 0 {
			return e, fmt.Errorf("%w: a log_map row of a %d-byte key, seq %d, a %d-byte hash", translog.ErrCorrupt, len(k), seq, len(h))
		}
		copy(e.Key[:], k)
		copy(e.Value.Head[:], h)
		e.Value.Seq = uint64(seq)
		return e, nil
	}, `SELECT account_id, seq, head FROM log_map`)
}

// mapChunk is how many entries one PutMap statement writes.
const mapChunk = 256

func (t *logTx) PutMap(ctx context.Context, es []smap.Entry) error {
	for len(es) > 0 {
		n := min(len(es), mapChunk)
		q := `INSERT INTO log_map (account_id, seq, head) VALUES (?,?,?)` + strings.Repeat(`,(?,?,?)`, n-1) +
			` ON CONFLICT (account_id) DO UPDATE SET seq = excluded.seq, head = excluded.head`
		args := make([]any, 0, 3*n)
		for _, e := range es[:n] {
			args = append(args, e.Key[:], int64(e.Value.Seq), e.Value.Head[:])
		}
		if _, err := t.s.exec(ctx, t.x, q, args...); err != nil {
			return fmt.Errorf("storing the log's map: %w", err)
		}
		es = es[n:]
	}
	return nil
}

func readLogState(ctx context.Context, s *sqlStore, x execer) (translog.State, error) {
	var st translog.State
	var size, mapSize int64
	if err := s.row(ctx, x, `SELECT size, compact, checkpoint, map_size FROM log_state WHERE id = 1`).Scan(&size, &st.Range, &st.Checkpoint, &mapSize); err != nil {
		return translog.State{}, err
	}
	st.Size, st.MapSize = uint64(size), uint64(mapSize)
	return st, nil
}

func readTile(ctx context.Context, s *sqlStore, x execer, level, index uint64) ([]byte, error) {
	var h []byte
	err := s.row(ctx, x, `SELECT hashes FROM log_tiles WHERE level = ? AND idx = ?`, int64(level), int64(index)).Scan(&h)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: tile %d/%d", translog.ErrNotFound, level, index)
	}
	return h, err
}

// readLeaves returns the leaves [start, end) that are sequenced, checking
// that they come without a gap.
func readLeaves(ctx context.Context, s *sqlStore, x execer, start, end uint64) ([][]byte, error) {
	if start >= end {
		return nil, nil
	}
	type row struct {
		idx     int64
		account string
		seq     int64
		data    []byte
	}
	// A link's leaf holds no bytes: they are its link's (migration 6).
	rows, err := queryAll(ctx, s, x, func(sc scanner) (row, error) {
		var r row
		err := sc.Scan(&r.idx, &r.account, &r.seq, &r.data)
		return r, err
	}, `SELECT ll.idx, ll.account_id, ll.seq, CASE WHEN length(ll.map_data) = 0 THEN l.data ELSE ll.map_data END
		FROM log_leaves ll LEFT JOIN links l ON ll.account_id <> '' AND l.account_id = ll.account_id AND l.seq = ll.seq
		WHERE ll.idx >= ? AND ll.idx < ? ORDER BY ll.idx`, int64(start), int64(end))
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(rows))
	for i, r := range rows {
		if uint64(r.idx) != start+uint64(i) {
			return nil, fmt.Errorf("%w: log leaf %d is missing", translog.ErrCorrupt, start+uint64(i))
		}
		if len(r.data) == 0 {
			return nil, fmt.Errorf("%w: log leaf %d is link %d of account %s, which the links table does not hold", translog.ErrCorrupt, r.idx, r.seq, r.account)
		}
		out[i] = r.data
	}
	return out, nil
}
