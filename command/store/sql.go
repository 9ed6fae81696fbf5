package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

type sqlStore struct {
	db      *sql.DB
	d       *dialect
	version int
	w       *writer  // SQLite: the one writer, with group commit
	stmts   sync.Map // query -> *sql.Stmt
	// prepare: run statements as prepared statements kept per query
	// (SQLite, whose driver would parse every statement again; pgx keeps
	// its own statement cache on PostgreSQL).
	prepare bool
	// noLog: store links without sequencing them as log leaves. Only
	// the benchmark build (tag enigmbench, nolog_bench.go) can set it,
	// to measure what the log costs an append; no other build has a way
	// to store a link unlogged.
	noLog bool
}

// prepared returns a prepared statement for q (database/sql prepares it
// again per connection as needed).
func (s *sqlStore) prepared(ctx context.Context, q string) (*sql.Stmt, error) {
	if st, ok := s.stmts.Load(q); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := s.db.PrepareContext(ctx, s.d.rebind(q))
	if err != nil {
		return nil, err
	}
	if prev, loaded := s.stmts.LoadOrStore(q, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

var _ Store = (*sqlStore)(nil)

func (s *sqlStore) Engine() string     { return s.d.name }
func (s *sqlStore) SchemaVersion() int { return s.version }
func (s *sqlStore) Close() error {
	if s.w != nil {
		s.w.close()
	}
	s.stmts.Range(func(_, v any) bool { v.(*sql.Stmt).Close(); return true })
	return s.db.Close()
}

func (s *sqlStore) Ping(ctx context.Context) error {
	var one int
	if err := s.db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return s.wrap(err)
	}
	return nil
}

// wrap classifies a database error: sentinels pass through, connection
// trouble becomes ErrUnavailable, anything else is returned as is.
func (s *sqlStore) wrap(err error) error {
	if err == nil {
		return nil
	}
	for _, e := range []error{ErrNotFound, ErrExists, ErrNameTaken, ErrConflict, ErrChanged, ErrUnavailable, ErrSchemaTooNew} {
		if errors.Is(err, e) {
			return err
		}
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	if s.d.classify(err) == kindUnavailable {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return fmt.Errorf("store: %w", err)
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// stmt returns the prepared statement of q for x, or nil to run q as
// text (PostgreSQL, or when preparing fails: running it reports why).
func (s *sqlStore) stmt(ctx context.Context, x execer, q string) *sql.Stmt {
	if !s.prepare {
		return nil
	}
	st, err := s.prepared(ctx, q)
	if err != nil {
		return nil
	}
	if tx, ok := x.(*sql.Tx); ok {
		return tx.StmtContext(ctx, st)
	}
	if x != execer(s.db) {
		return nil
	}
	return st
}

func (s *sqlStore) exec(ctx context.Context, x execer, q string, args ...any) (sql.Result, error) {
	if st := s.stmt(ctx, x, q); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return x.ExecContext(ctx, s.d.rebind(q), args...)
}

func (s *sqlStore) query(ctx context.Context, x execer, q string, args ...any) (*sql.Rows, error) {
	if st := s.stmt(ctx, x, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return x.QueryContext(ctx, s.d.rebind(q), args...)
}

func (s *sqlStore) row(ctx context.Context, x execer, q string, args ...any) *sql.Row {
	if st := s.stmt(ctx, x, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return x.QueryRowContext(ctx, s.d.rebind(q), args...)
}

// scanner is what sql.Row and sql.Rows have in common.
type scanner interface{ Scan(dest ...any) error }

// queryAll runs q on x and scans every row with scan. On a scan error it
// returns no rows; otherwise the rows read and the iteration's error.
// Errors come unwrapped: the caller wraps them (s.wrap, or its
// transaction).
func queryAll[T any](ctx context.Context, s *sqlStore, x execer, scan func(scanner) (T, error), q string, args ...any) ([]T, error) {
	rows, err := s.query(ctx, x, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// queryOne runs q on the database and scans its one row with scan; no row
// is ErrNotFound for what.
func queryOne[T any](ctx context.Context, s *sqlStore, scan func(scanner) (T, error), what, q string, args ...any) (T, error) {
	v, err := scan(s.row(ctx, s.db, q, args...))
	if errors.Is(err, sql.ErrNoRows) {
		var zero T
		return zero, fmt.Errorf("%w: %s", ErrNotFound, what)
	}
	return v, s.wrap(err)
}

// execOne runs the write q on x, which must change exactly one row:
// otherwise the row changed meanwhile (or is gone), and it returns
// ErrChanged for what.
func (s *sqlStore) execOne(ctx context.Context, x execer, what, q string, args ...any) error {
	res, err := s.exec(ctx, x, q, args...)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n != 1 {
		return fmt.Errorf("%w: %s", ErrChanged, what)
	}
	return nil
}

// tx runs fn in one transaction and commits: on SQLite through the writer
// (an immediate transaction, maybe shared with others in savepoints),
// on PostgreSQL on a connection of its own. fn uses the context it is
// given.
func (s *sqlStore) tx(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	if s.w != nil {
		return s.w.do(ctx, fn)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap(err)
	}
	if err := fn(ctx, tx); err != nil {
		tx.Rollback()
		return s.wrap(err)
	}
	return s.wrap(tx.Commit())
}

// write runs a write of one statement: through the writer on SQLite, as
// is on PostgreSQL (a statement is its own transaction there).
func (s *sqlStore) write(ctx context.Context, fn func(ctx context.Context, x execer) error) error {
	if s.w != nil {
		return s.w.do(ctx, func(ctx context.Context, tx *sql.Tx) error { return fn(ctx, tx) })
	}
	return s.wrap(fn(ctx, s.db))
}

// Times are stored as Unix nanoseconds; 0 is the zero time.
func tn(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func tt(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

// filterSQL builds the WHERE clause shared by the enrollment and recovery
// listings (table alias e, joined to accounts a when by organisation).
func filterSQL(table, account, org string, states []string) (string, []any) {
	q := ` FROM ` + table + ` e`
	var where []string
	var args []any
	if org != "" {
		q += ` JOIN accounts a ON a.id = e.account_id`
		where = append(where, `a.org_id = ?`)
		args = append(args, org)
	}
	if account != "" {
		where = append(where, `e.account_id = ?`)
		args = append(args, account)
	}
	if len(states) > 0 {
		where = append(where, `e.state IN (`+placeholders(len(states))+`)`)
		for _, st := range states {
			args = append(args, st)
		}
	}
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	return q, args
}
