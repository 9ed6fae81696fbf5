package store

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"sync"
)

// ErrBadMark: a head mark, or the marks file as a whole, fails its MAC:
// the marks file was changed by someone without its key, or belongs to
// another key.
var ErrBadMark = errors.New("store: head mark fails its MAC")

// Marks holds one Command instance's head high-water marks: for each
// account, the highest head the instance has verified. It is kept outside
// the database — a small SQLite file of its own in the instance's data
// directory — so that rolling the database back (its head columns, or the
// whole database restored from an older copy) cannot lower it.
//
// Every mark carries an HMAC-SHA256 under a 32-byte key kept in a file of
// its own next to the marks (created with the marks, mode 0600). A mark
// that fails it is reported as ErrBadMark; a key that does not match the
// file, or one of the two files missing while the other exists, fails
// OpenMarks. The MAC stops whoever can write the marks file but not read
// the key; it cannot stop whoever holds the whole data directory from
// deleting both files or restoring older copies of both.
//
// Raise commits (fsync) before it returns; concurrent raises share one
// commit (the same group commit as the SQLite store). Get reads a bounded
// in-memory cache first, then the file. Marks only ever go up, in memory
// and in the file, whichever process raises them.
type Marks struct {
	db    *sql.DB
	w     *writer
	get   *sql.Stmt
	key   []byte // the MAC key: must be kept secret
	mu    sync.Mutex
	mem   map[string]mark
	max   int
	wrapE func(error) error
}

// Format prints no field of m, under every verb: m holds the MAC key.
func (m *Marks) Format(f fmt.State, verb rune) { io.WriteString(f, "store.Marks{…}") }

type mark struct {
	head Head
	ok   bool // false: the file has no mark for the account
}

// markKeySize is the size of the MAC key.
const markKeySize = 32

// markKeyCheck is MAC'd into the marks file's meta table when it is
// created, so that a key that does not belong to the file is noticed at
// start, not account by account.
const markKeyCheck = "enigm-command head marks key check v1"

// OpenMarks opens the marks file at path with the key in keyPath,
// creating both when neither exists. It keeps at most inMemory marks in memory
// (at least one).
func OpenMarks(ctx context.Context, path, keyPath string, inMemory int) (*Marks, error) {
	_, errDB := os.Stat(path)
	_, errKey := os.Stat(keyPath)
	switch {
	case errDB == nil && errors.Is(errKey, fs.ErrNotExist):
		return nil, fmt.Errorf("store: the head marks file %s exists but its key %s is missing: restore the key, or (to forget every mark this instance kept) delete %s too", path, keyPath, path)
	case errKey == nil && errors.Is(errDB, fs.ErrNotExist):
		return nil, fmt.Errorf("store: the head marks key %s exists but the marks file %s is missing: restore the marks file, or (to forget every mark this instance kept) delete %s too", keyPath, path, keyPath)
	case errDB != nil && !errors.Is(errDB, fs.ErrNotExist):
		return nil, fmt.Errorf("store: head marks: %w", errDB)
	case errKey != nil && !errors.Is(errKey, fs.ErrNotExist):
		return nil, fmt.Errorf("store: head marks key: %w", errKey)
	}
	fresh := errDB != nil
	var key []byte
	if fresh {
		var err error
		if key, err = createMarkKey(keyPath); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("store: creating the head marks file: %w", err)
		}
		f.Close()
	} else {
		b, err := os.ReadFile(keyPath)
		if err != nil {
			return nil, fmt.Errorf("store: reading the head marks key: %w", err)
		}
		if len(b) != markKeySize {
			return nil, fmt.Errorf("store: the head marks key %s has %d bytes, want %d: restore it from the same copy as %s", keyPath, len(b), markKeySize, path)
		}
		key = b
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("store: opening the head marks file: %w", err)
	}
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	m := &Marks{db: db, key: key, mem: map[string]mark{}, max: max(inMemory, 1)}
	m.wrapE = func(err error) error {
		if err == nil || errors.Is(err, ErrBadMark) || errors.Is(err, context.Canceled) {
			return err
		}
		return fmt.Errorf("store: head marks file %s: %w", path, err)
	}
	m.w = newWriter(db, m.wrapE)
	if err := m.init(ctx, fresh); err != nil {
		m.Close()
		return nil, err
	}
	if m.get, err = db.PrepareContext(ctx, `SELECT seq, hash, mac FROM marks WHERE account_id = ?`); err != nil {
		m.Close()
		return nil, m.wrapE(err)
	}
	return m, nil
}

func createMarkKey(path string) ([]byte, error) {
	key := make([]byte, markKeySize)
	rand.Read(key)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: creating the head marks key: %w", err)
	}
	_, err = f.Write(key)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("store: writing the head marks key: %w", err)
	}
	return key, nil
}

// init creates the tables, and stores (fresh file) or checks the MAC that
// ties the file to its key.
func (m *Marks) init(ctx context.Context, fresh bool) error {
	check := m.mac([]byte(markKeyCheck))
	return m.w.do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		for _, q := range []string{
			`CREATE TABLE IF NOT EXISTS marks_meta (key TEXT PRIMARY KEY, value BLOB NOT NULL)`,
			`CREATE TABLE IF NOT EXISTS marks (account_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, hash TEXT NOT NULL, mac BLOB NOT NULL)`,
		} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		var got []byte
		err := tx.QueryRowContext(ctx, `SELECT value FROM marks_meta WHERE key = 'key_check'`).Scan(&got)
		switch {
		case errors.Is(err, sql.ErrNoRows) && fresh:
			_, err = tx.ExecContext(ctx, `INSERT INTO marks_meta (key, value) VALUES ('key_check', ?)`, check)
			return err
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("%w: the head marks file has no key check: it was not made by enigm-command, or was emptied", ErrBadMark)
		case err != nil:
			return err
		case !hmac.Equal(got, check):
			return fmt.Errorf("%w: the head marks key does not belong to this marks file: restore both from the same copy", ErrBadMark)
		}
		return nil
	})
}

// Close closes the marks file.
func (m *Marks) Close() error {
	m.w.close()
	if m.get != nil {
		m.get.Close()
	}
	return m.db.Close()
}

func (m *Marks) mac(parts ...[]byte) []byte {
	h := hmac.New(sha256.New, m.key)
	for _, p := range parts {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(p)))
		h.Write(n[:])
		h.Write(p)
	}
	return h.Sum(nil)
}

func (m *Marks) markMAC(account string, h Head) []byte {
	var seq [8]byte
	binary.BigEndian.PutUint64(seq[:], h.Seq)
	return m.mac([]byte("enigm-command head mark v1"), []byte(account), seq[:], []byte(h.Hash))
}

// Get returns the account's mark; ok is false when there is none.
// ErrBadMark when the stored mark fails its MAC.
func (m *Marks) Get(ctx context.Context, account string) (Head, bool, error) {
	m.mu.Lock()
	e, hit := m.mem[account]
	m.mu.Unlock()
	if hit {
		return e.head, e.ok, nil
	}
	return m.read(ctx, account)
}

// read reads the account's mark from the file and remembers it.
func (m *Marks) read(ctx context.Context, account string) (Head, bool, error) {
	var h Head
	var seq int64
	var mac []byte
	err := m.get.QueryRowContext(ctx, account).Scan(&seq, &h.Hash, &mac)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		m.remember(account, mark{})
		return Head{}, false, nil
	case err != nil:
		return Head{}, false, m.wrapE(err)
	}
	h.Seq = uint64(seq)
	if seq < 0 || !hmac.Equal(mac, m.markMAC(account, h)) {
		return Head{}, false, fmt.Errorf("%w: the head mark of account %s was changed without the marks key", ErrBadMark, account)
	}
	m.remember(account, mark{head: h, ok: true})
	return h, true, nil
}

// Raise records h as the account's mark if it is higher than the stored
// one, and returns after the commit.
func (m *Marks) Raise(ctx context.Context, account string, h Head) error {
	mac := m.markMAC(account, h)
	err := m.w.do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO marks (account_id, seq, hash, mac) VALUES (?,?,?,?)
			ON CONFLICT (account_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, mac = excluded.mac WHERE excluded.seq > marks.seq`,
			account, int64(h.Seq), h.Hash, mac)
		return err
	})
	if err != nil {
		return err
	}
	m.remember(account, mark{head: h, ok: true})
	return nil
}

// remember keeps e in memory unless a higher mark is there already.
func (m *Marks) remember(account string, e mark) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old, hit := m.mem[account]
	if hit && old.ok && (!e.ok || old.head.Seq >= e.head.Seq) {
		return
	}
	if !hit && len(m.mem) >= m.max {
		for k := range m.mem { // evict an arbitrary entry
			delete(m.mem, k)
			break
		}
	}
	m.mem[account] = e
}
