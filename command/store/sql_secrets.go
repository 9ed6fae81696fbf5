package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

func (s *sqlStore) putSecret(ctx context.Context, table string, c Secret) error {
	return s.write(ctx, func(ctx context.Context, x execer) error {
		_, err := s.exec(ctx, x, `INSERT INTO `+table+` (hash, account_id, device_id, expires_at) VALUES (?,?,?,?)`,
			c.Hash, c.AccountID, c.DeviceID, tn(c.ExpiresAt))
		if s.d.classify(err) == kindUnique {
			return fmt.Errorf("%w: %s", ErrExists, table)
		}
		return err
	})
}

func (s *sqlStore) PutChallenge(ctx context.Context, c Secret) error {
	return s.putSecret(ctx, "challenges", c)
}

func (s *sqlStore) PutToken(ctx context.Context, t Secret) error {
	return s.putSecret(ctx, "tokens", t)
}

func (s *sqlStore) TakeChallenge(ctx context.Context, hash []byte) (Secret, error) {
	var c Secret
	var exp int64
	err := s.write(ctx, func(ctx context.Context, x execer) error {
		err := s.row(ctx, x, `DELETE FROM challenges WHERE hash = ? RETURNING hash, account_id, device_id, expires_at`, hash).
			Scan(&c.Hash, &c.AccountID, &c.DeviceID, &exp)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: challenge", ErrNotFound)
		}
		return err
	})
	if err != nil {
		return Secret{}, err
	}
	c.ExpiresAt = tt(exp)
	return c, nil
}

func (s *sqlStore) Token(ctx context.Context, hash []byte) (Secret, error) {
	var t Secret
	var exp int64
	st, err := s.prepared(ctx, `SELECT hash, account_id, device_id, expires_at FROM tokens WHERE hash = ?`)
	if err != nil {
		return Secret{}, s.wrap(err)
	}
	err = st.QueryRowContext(ctx, hash).Scan(&t.Hash, &t.AccountID, &t.DeviceID, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return Secret{}, fmt.Errorf("%w: token", ErrNotFound)
	}
	if err != nil {
		return Secret{}, s.wrap(err)
	}
	t.ExpiresAt = tt(exp)
	return t, nil
}

func (s *sqlStore) TokenAccount(ctx context.Context, hash []byte) (Secret, Account, error) {
	var t Secret
	var exp int64
	a, err := scanAccount(tokenAccountScan{s.row(ctx, s.db, `SELECT t.hash, t.account_id, t.device_id, t.expires_at, a.id, a.name, a.org_id, a.head_seq, a.head_hash, a.created_at
		FROM tokens t JOIN accounts a ON a.id = t.account_id WHERE t.hash = ?`, hash), []any{&t.Hash, &t.AccountID, &t.DeviceID, &exp}})
	if errors.Is(err, sql.ErrNoRows) {
		return Secret{}, Account{}, fmt.Errorf("%w: token", ErrNotFound)
	}
	if err != nil {
		return Secret{}, Account{}, s.wrap(err)
	}
	t.ExpiresAt = tt(exp)
	return t, a, nil
}

// tokenAccountScan scans the token columns in front of the account's.
type tokenAccountScan struct {
	r     *sql.Row
	first []any
}

func (x tokenAccountScan) Scan(dest ...any) error { return x.r.Scan(append(x.first, dest...)...) }
