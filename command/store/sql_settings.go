package store

import (
	"context"
	"database/sql"
	"errors"
)

func (s *sqlStore) Setting(ctx context.Context, key, init string) (string, error) {
	var v string
	err := s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		err := s.row(ctx, tx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&v)
		if errors.Is(err, sql.ErrNoRows) {
			v = init
			_, err = s.exec(ctx, tx, `INSERT INTO settings (key, value) VALUES (?,?)`, key, init)
		}
		return err
	})
	if err != nil && s.d.classify(errors.Unwrap(err)) == kindUnique {
		// Another instance stored it first: read theirs.
		err = s.wrap(s.row(ctx, s.db, `SELECT value FROM settings WHERE key = ?`, key).Scan(&v))
	}
	return v, err
}
