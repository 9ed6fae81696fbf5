package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	_ "modernc.org/sqlite"             // registers the "sqlite" database/sql driver
)

// IsPostgresURL reports whether dsn names a PostgreSQL database.
func IsPostgresURL(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// Open opens (and migrates) the database named by dsn: a postgres:// or
// postgresql:// URL for PostgreSQL, otherwise the path of a SQLite file,
// created if missing.
func Open(ctx context.Context, dsn string) (Store, error) {
	if IsPostgresURL(dsn) {
		return OpenPostgres(ctx, dsn)
	}
	return OpenSQLite(ctx, dsn)
}

// OpenSQLite opens the SQLite database in the file at path (created with
// mode 0600 if missing) in WAL mode with a busy timeout, and migrates it.
func OpenSQLite(ctx context.Context, path string) (Store, error) {
	if path == "" {
		return nil, errors.New("store: no SQLite path")
	}
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	} else {
		f.Close()
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: opening %s: %w", path, err)
	}
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	// Write transactions are serialized in the process by the writer,
	// which commits those that queue up together, instead of having them
	// poll SQLite's busy handler; writers in other processes still wait
	// through the busy timeout.
	s := &sqlStore{db: db, d: sqliteDialect, prepare: true}
	s.w = newWriter(db, s.wrap)
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// OpenPostgres connects to the PostgreSQL database at url and migrates it.
func OpenPostgres(ctx context.Context, url string) (Store, error) {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return nil, fmt.Errorf("store: opening PostgreSQL: %w", err)
	}
	// As many idle connections as open ones: a busy server must not close
	// connections it needs again a moment later (a new PostgreSQL
	// connection costs a process and its caches).
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(32)
	db.SetConnMaxIdleTime(time.Minute)
	s := &sqlStore{db: db, d: postgresDialect}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return &pgStore{sqlStore: s, url: url}, nil
}

// migrate brings the schema to SchemaVersion in one transaction, and
// refuses a database whose schema is newer than this code.
func (s *sqlStore) migrate(ctx context.Context) error {
	err := s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if s.d.migrateLock != "" {
			if _, err := tx.ExecContext(ctx, s.d.migrateLock); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
			return err
		}
		var v int
		err := tx.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v)
		if errors.Is(err, sql.ErrNoRows) {
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
				return err
			}
			v = 0
		} else if err != nil {
			return err
		}
		if v > SchemaVersion {
			return fmt.Errorf("%w: the database is at schema version %d, this binary knows versions up to %d; run a newer enigm-command (never an older one) on this database", ErrSchemaTooNew, v, SchemaVersion)
		}
		for i := v + 1; i <= SchemaVersion; i++ {
			for _, stmt := range migrations[i] {
				stmt = s.d.ddl(stmt)
				if stmt == "" {
					continue
				}
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("migration to schema version %d: %w", i, err)
				}
			}
		}
		if v != SchemaVersion {
			if _, err := tx.ExecContext(ctx, s.d.rebind(`UPDATE schema_version SET version = ?`), SchemaVersion); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.version = SchemaVersion
	return nil
}
