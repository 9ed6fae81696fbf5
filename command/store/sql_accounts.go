package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

func (s *sqlStore) CreateAccount(ctx context.Context, a NewAccount, audit ...AuditEntry) error {
	acct, g := a.Account, a.Genesis
	return s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var one int
		err := s.row(ctx, tx, `SELECT 1 FROM accounts WHERE name = ?`, acct.Name).Scan(&one)
		switch {
		case err == nil:
			return fmt.Errorf("%w: %q", ErrNameTaken, acct.Name)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		_, err = s.exec(ctx, tx, `INSERT INTO accounts (id, name, org_id, head_seq, head_hash, created_at) VALUES (?,?,?,?,?,?)`,
			acct.ID, acct.Name, acct.OrgID, int64(g.Seq), g.Hash, tn(acct.CreatedAt))
		if err != nil {
			if s.d.classify(err) == kindUnique {
				// id is the primary key; the other unique column is
				// name (taken since the check above).
				if s.d.primaryKey(err) {
					return fmt.Errorf("%w: account %s", ErrExists, acct.ID)
				}
				return fmt.Errorf("%w: %q", ErrNameTaken, acct.Name)
			}
			return err
		}
		if err := s.insertLink(ctx, tx, acct.ID, g); err != nil {
			return err
		}
		if a.InviteHash != nil {
			err := s.execOne(ctx, tx, "the invite was used meanwhile", `UPDATE invites SET used_at = ?, account_id = ? WHERE code_hash = ? AND used_at = 0`,
				tn(acct.CreatedAt), acct.ID, a.InviteHash)
			if err != nil {
				return err
			}
		}
		if err := s.addAudit(ctx, tx, audit); err != nil {
			return err
		}
		// Last: the log's sequence row, held until the commit.
		return s.logLeaf(ctx, tx, acct.ID, g)
	})
}

func (s *sqlStore) insertLink(ctx context.Context, x execer, account string, l Link) error {
	_, err := s.exec(ctx, x, `INSERT INTO links (account_id, seq, hash, prev_hash, type, data, created_at) VALUES (?,?,?,?,?,?,?)`,
		account, int64(l.Seq), l.Hash, l.Prev, l.Type, l.Data, tn(l.CreatedAt))
	if s.d.classify(err) == kindUnique {
		return fmt.Errorf("%w: account %s already has a link at seq %d", ErrConflict, account, l.Seq)
	}
	return err
}

const accountCols = `id, name, org_id, head_seq, head_hash, created_at`

func scanAccount(sc scanner) (Account, error) {
	var a Account
	var seq, created int64
	if err := sc.Scan(&a.ID, &a.Name, &a.OrgID, &seq, &a.Head.Hash, &created); err != nil {
		return Account{}, err
	}
	a.Head.Seq, a.CreatedAt = uint64(seq), tt(created)
	return a, nil
}

func (s *sqlStore) accountBy(ctx context.Context, col, v string) (Account, error) {
	st, err := s.prepared(ctx, `SELECT `+accountCols+` FROM accounts WHERE `+col+` = ?`)
	if err != nil {
		return Account{}, s.wrap(err)
	}
	a, err := scanAccount(st.QueryRowContext(ctx, v))
	if errors.Is(err, sql.ErrNoRows) {
		return Account{}, fmt.Errorf("%w: account", ErrNotFound)
	}
	return a, s.wrap(err)
}

func (s *sqlStore) Account(ctx context.Context, id string) (Account, error) {
	return s.accountBy(ctx, "id", id)
}

func (s *sqlStore) AccountByName(ctx context.Context, name string) (Account, error) {
	return s.accountBy(ctx, "name", name)
}

func (s *sqlStore) AccountsByOrg(ctx context.Context, orgID string) ([]Account, error) {
	out, err := queryAll(ctx, s, s.db, scanAccount, `SELECT `+accountCols+` FROM accounts WHERE org_id = ? ORDER BY name`, orgID)
	return out, s.wrap(err)
}

func (s *sqlStore) Links(ctx context.Context, accountID string, after int64, limit int) ([]Link, error) {
	q := `SELECT seq, hash, prev_hash, type, data, created_at FROM links WHERE account_id = ? AND seq > ? ORDER BY seq`
	args := []any{accountID, after}
	if limit > 0 {
		q += ` LIMIT ?`
		args = append(args, limit)
	}
	out, err := queryAll(ctx, s, s.db, scanLink, q, args...)
	return out, s.wrap(err)
}

func scanLink(sc scanner) (Link, error) {
	var l Link
	var seq, created int64
	if err := sc.Scan(&seq, &l.Hash, &l.Prev, &l.Type, &l.Data, &created); err != nil {
		return Link{}, err
	}
	l.Seq, l.CreatedAt = uint64(seq), tt(created)
	return l, nil
}

func (s *sqlStore) Append(ctx context.Context, a Append) error {
	if a.Link.Seq == 0 {
		return fmt.Errorf("%w: append at seq 0", ErrConflict)
	}
	return s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		// Compare and move the head in one statement: it locks the row
		// (PostgreSQL re-checks the condition on a row another writer
		// changed meanwhile), and moves it only from (seq-1, prev).
		res, err := s.exec(ctx, tx, `UPDATE accounts SET head_seq = ?, head_hash = ? WHERE id = ? AND head_seq = ? AND head_hash = ?`,
			int64(a.Link.Seq), a.Link.Hash, a.AccountID, int64(a.Link.Seq)-1, a.Link.Prev)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != 1 {
			var seq int64
			err := s.row(ctx, tx, `SELECT head_seq FROM accounts WHERE id = ?`, a.AccountID).Scan(&seq)
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("%w: account %s", ErrNotFound, a.AccountID)
			}
			if err != nil {
				return err
			}
			return fmt.Errorf("%w: head is seq %d, the link follows seq %d", ErrConflict, seq, a.Link.Seq-1)
		}
		if err := s.insertLink(ctx, tx, a.AccountID, a.Link); err != nil {
			return err
		}
		for _, dev := range a.DropEnvelopes {
			if _, err := s.exec(ctx, tx, `DELETE FROM envelopes WHERE account_id = ? AND device_id = ?`, a.AccountID, dev); err != nil {
				return err
			}
		}
		for _, dev := range a.DropTokens {
			if _, err := s.exec(ctx, tx, `DELETE FROM tokens WHERE account_id = ? AND device_id = ?`, a.AccountID, dev); err != nil {
				return err
			}
		}
		if a.Enrollment != nil {
			if err := s.updateEnrollment(ctx, tx, *a.Enrollment); err != nil {
				return err
			}
		}
		if a.NewRecovery != nil {
			if err := s.insertRecovery(ctx, tx, *a.NewRecovery); err != nil {
				return err
			}
		}
		if a.Recovery != nil {
			if err := s.updateRecovery(ctx, tx, *a.Recovery); err != nil {
				return err
			}
		}
		if err := s.addAudit(ctx, tx, a.Audit); err != nil {
			return err
		}
		// Last: the log's sequence row is the last lock an append takes,
		// held from here to the commit.
		return s.logLeaf(ctx, tx, a.AccountID, a.Link)
	})
}
