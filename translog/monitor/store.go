package monitor

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/enigm/enigm/chain"
)

// storeVersion is the schema version of the monitor's state. Version 2
// added map_heads, which the map check needs: a version 1 state (from a
// monitor that did not check map roots) keeps its pinned keys and
// verified checkpoint and replays the log's leaves again (migrate).
const storeVersion = 2

// ErrStore: the monitor's state is unreadable or not a monitor's state.
// Nothing is changed; point --state at another directory or restore it.
var ErrStore = errors.New("monitor: state")

// Store is the monitor's state in a directory: one SQLite database,
// monitor.db, holding the pinned origin and log keys, the last verified
// checkpoint, the compact range of the verified leaves, each account's
// head and leaf indices, and, for the accounts whose last link in log
// order is not their accepted head (a link refused as invalid or a
// duplicate), that link's (seq, hash): the log's map holds it.
type Store struct {
	db *sql.DB
}

// OpenStore opens (creating it, 0700, when missing) the state in dir.
func OpenStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrStore, err)
	}
	path, err := filepath.Abs(filepath.Join(dir, "monitor.db"))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrStore, err)
	}
	// Created 0600 before SQLite opens it (its journal files take the
	// same mode): what it holds is public, but it is nobody else's to
	// change.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("%w: %v", ErrStore, err)
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrStore, err)
	}
	db.SetMaxOpenConns(1)
	s := &Store{db: db}
	if err := s.init(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the store.
func (s *Store) Close() error { return s.db.Close() }

func (s *Store) init() error {
	_, err := s.db.Exec(`CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (id BLOB PRIMARY KEY, seq INTEGER NOT NULL, hash BLOB NOT NULL, leaves BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS map_heads (id BLOB PRIMARY KEY, seq INTEGER NOT NULL, hash BLOB NOT NULL);`)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrStore, err)
	}
	var v []byte
	err = s.db.QueryRow(`SELECT v FROM meta WHERE k = 'version'`).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		_, err = s.db.Exec(`INSERT INTO meta (k, v) VALUES ('version', ?)`, []byte(strconv.Itoa(storeVersion)))
		if err != nil {
			return fmt.Errorf("%w: %v", ErrStore, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrStore, err)
	}
	if string(v) == "1" {
		return s.migrate1()
	}
	if string(v) != strconv.Itoa(storeVersion) {
		return fmt.Errorf("%w: schema version %q, this monitor reads %d; use a new --state directory (or the monitor that wrote it)", ErrStore, v, storeVersion)
	}
	return nil
}

// migrate1 upgrades a version 1 state, which kept no map_heads: without
// them the map of a log that holds refused links cannot be rebuilt. It
// keeps the pinned origin and keys, the verified checkpoint (so a
// rollback or fork is still caught) and the served checkpoint's first
// sighting, and forgets the replay: the next check verifies and replays
// every leaf again (findings about them are reported again).
func (s *Store) migrate1() error {
	tx, err := s.db.Begin()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrStore, err)
	}
	defer tx.Rollback()
	for _, q := range []string{`DELETE FROM accounts`, `DELETE FROM map_heads`,
		`UPDATE meta SET v = CAST('0' AS BLOB) WHERE k = 'size'`, `UPDATE meta SET v = x'' WHERE k = 'range'`,
		`UPDATE meta SET v = CAST('2' AS BLOB) WHERE k = 'version'`} {
		if _, err := tx.Exec(q); err != nil {
			return fmt.Errorf("%w: upgrading the state from version 1: %v", ErrStore, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%w: upgrading the state from version 1: %v", ErrStore, err)
	}
	return nil
}

// state is what the store holds besides the accounts.
type state struct {
	origin     string
	keys       []string
	checkpoint []byte // the last verified signed checkpoint; nil at first
	size       uint64 // leaves verified and replayed (≤ the checkpoint's size)
	rng        []byte // compact range of [0, size), hashes concatenated
	seen       []byte // the checkpoint bytes last served
	seenAt     time.Time
}

// account is what the monitor keeps of one account between runs.
type account struct {
	head   chain.Head
	leaves []uint64 // leaf index of each accepted link, by sequence number
}

func (s *Store) load(ctx context.Context) (state, map[chain.AccountID]*account, map[chain.AccountID]chain.Head, error) {
	st, accts, err := s.loadAccounts(ctx)
	if err != nil {
		return st, nil, nil, err
	}
	heads := map[chain.AccountID]chain.Head{}
	rows, err := s.db.QueryContext(ctx, `SELECT id, seq, hash FROM map_heads`)
	if err != nil {
		return st, nil, nil, fmt.Errorf("%w: %v", ErrStore, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, hash []byte
		var seq int64
		if err := rows.Scan(&id, &seq, &hash); err != nil {
			return st, nil, nil, fmt.Errorf("%w: %v", ErrStore, err)
		}
		if len(id) != chain.HashSize || len(hash) != chain.HashSize || seq < 0 {
			return st, nil, nil, fmt.Errorf("%w: malformed map head row", ErrStore)
		}
		h := chain.Head{Seq: uint64(seq)}
		copy(h.Hash[:], hash)
		heads[chain.AccountID(id)] = h
	}
	if err := rows.Err(); err != nil {
		return st, nil, nil, fmt.Errorf("%w: %v", ErrStore, err)
	}
	return st, accts, heads, nil
}

func (s *Store) loadAccounts(ctx context.Context) (state, map[chain.AccountID]*account, error) {
	var st state
	rows, err := s.db.QueryContext(ctx, `SELECT k, v FROM meta`)
	if err != nil {
		return st, nil, fmt.Errorf("%w: %v", ErrStore, err)
	}
	meta := map[string][]byte{}
	for rows.Next() {
		var k string
		var v []byte
		if err := rows.Scan(&k, &v); err != nil {
			rows.Close()
			return st, nil, fmt.Errorf("%w: %v", ErrStore, err)
		}
		meta[k] = v
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return st, nil, fmt.Errorf("%w: %v", ErrStore, err)
	}
	st.origin = string(meta["origin"])
	if k := meta["keys"]; len(k) > 0 {
		st.keys = strings.Split(string(k), "\n")
	}
	st.checkpoint = meta["checkpoint"]
	st.rng = meta["range"]
	st.seen = meta["seen"]
	if v, ok := meta["size"]; ok {
		if st.size, err = strconv.ParseUint(string(v), 10, 64); err != nil {
			return st, nil, fmt.Errorf("%w: size %q", ErrStore, v)
		}
	}
	if v, ok := meta["seen_at"]; ok {
		t, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return st, nil, fmt.Errorf("%w: seen_at %q", ErrStore, v)
		}
		st.seenAt = time.Unix(t, 0).UTC()
	}
	accts := map[chain.AccountID]*account{}
	rows, err = s.db.QueryContext(ctx, `SELECT id, seq, hash, leaves FROM accounts`)
	if err != nil {
		return st, nil, fmt.Errorf("%w: %v", ErrStore, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, hash, leaves []byte
		var seq int64
		if err := rows.Scan(&id, &seq, &hash, &leaves); err != nil {
			return st, nil, fmt.Errorf("%w: %v", ErrStore, err)
		}
		a := &account{head: chain.Head{Seq: uint64(seq)}}
		if len(id) != chain.HashSize || len(hash) != chain.HashSize || seq < 0 {
			return st, nil, fmt.Errorf("%w: malformed account row", ErrStore)
		}
		copy(a.head.Hash[:], hash)
		for len(leaves) > 0 {
			v, n := binary.Uvarint(leaves)
			if n <= 0 {
				return st, nil, fmt.Errorf("%w: malformed leaf list of account %x", ErrStore, id)
			}
			a.leaves = append(a.leaves, v)
			leaves = leaves[n:]
		}
		if uint64(len(a.leaves)) != a.head.Seq+1 {
			return st, nil, fmt.Errorf("%w: account %x has %d leaves for head %d", ErrStore, id, len(a.leaves), a.head.Seq)
		}
		accts[chain.AccountID(id)] = a
	}
	if err := rows.Err(); err != nil {
		return st, nil, fmt.Errorf("%w: %v", ErrStore, err)
	}
	return st, accts, nil
}

// save writes st, the accounts in dirty and the map heads in mapDirty (a
// row for those in mapHeads, none for the others) in one transaction.
func (s *Store) save(ctx context.Context, st state, accts map[chain.AccountID]*account, dirty map[chain.AccountID]struct{},
	mapHeads map[chain.AccountID]chain.Head, mapDirty map[chain.AccountID]struct{}) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrStore, err)
	}
	defer tx.Rollback()
	meta := map[string][]byte{
		"origin":     []byte(st.origin),
		"keys":       []byte(strings.Join(st.keys, "\n")),
		"checkpoint": st.checkpoint,
		"size":       []byte(strconv.FormatUint(st.size, 10)),
		"range":      st.rng,
		"seen":       st.seen,
		"seen_at":    []byte(strconv.FormatInt(st.seenAt.Unix(), 10)),
	}
	for k, v := range meta {
		if v == nil {
			v = []byte{}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v`, k, v); err != nil {
			return fmt.Errorf("%w: %v", ErrStore, err)
		}
	}
	if len(dirty) > 0 {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO accounts (id, seq, hash, leaves) VALUES (?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, leaves = excluded.leaves`)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrStore, err)
		}
		defer stmt.Close()
		var buf []byte
		for id := range dirty {
			a := accts[id]
			buf = buf[:0]
			for _, l := range a.leaves {
				buf = binary.AppendUvarint(buf, l)
			}
			if _, err := stmt.ExecContext(ctx, id[:], int64(a.head.Seq), a.head.Hash[:], buf); err != nil {
				return fmt.Errorf("%w: %v", ErrStore, err)
			}
		}
	}
	for id := range mapDirty {
		var err error
		if h, ok := mapHeads[id]; ok {
			_, err = tx.ExecContext(ctx, `INSERT INTO map_heads (id, seq, hash) VALUES (?, ?, ?)
ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash`, id[:], int64(h.Seq), h.Hash[:])
		} else {
			_, err = tx.ExecContext(ctx, `DELETE FROM map_heads WHERE id = ?`, id[:])
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrStore, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%w: %v", ErrStore, err)
	}
	return nil
}

// Pinned returns the origin and log keys the state pins ("" and nil
// before the first run).
func (s *Store) Pinned(ctx context.Context) (origin string, keys []string, err error) {
	st, _, err := s.loadAccounts(ctx)
	return st.origin, st.keys, err
}
