package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
)

func (s *sqlStore) PutEnvelopes(ctx context.Context, heads map[string]uint64, envs []Envelope) error {
	accounts := make([]string, 0, len(heads))
	for a := range heads {
		accounts = append(accounts, a)
	}
	slices.Sort(accounts) // one lock order for every writer
	return s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		for _, a := range accounts {
			var seq int64
			err := s.row(ctx, tx, `SELECT head_seq FROM accounts WHERE id = ?`+s.d.lockShare, a).Scan(&seq)
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("%w: account %s", ErrNotFound, a)
			}
			if err != nil {
				return err
			}
			if uint64(seq) != heads[a] {
				return fmt.Errorf("%w: account %s is at seq %d, eligibility was checked at %d", ErrConflict, a, seq, heads[a])
			}
		}
		for _, e := range envs {
			if _, ok := heads[e.AccountID]; !ok {
				return fmt.Errorf("store: envelope for account %s without a checked head", e.AccountID)
			}
			_, err := s.exec(ctx, tx, `INSERT INTO envelopes (account_id, device_id, from_account, from_device, kind, call_id, sent_at, ciphertext) VALUES (?,?,?,?,?,?,?,?)`,
				e.AccountID, e.DeviceID, e.FromAccount, e.FromDevice, e.Kind, e.CallID, tn(e.SentAt), e.Ciphertext)
			if err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *sqlStore) Envelopes(ctx context.Context, accountID, deviceID string, limit int) ([]Envelope, error) {
	if limit <= 0 {
		limit = 100
	}
	out, err := queryAll(ctx, s, s.db, scanEnvelope, `SELECT id, account_id, device_id, from_account, from_device, kind, call_id, sent_at, ciphertext FROM envelopes WHERE account_id = ? AND device_id = ? ORDER BY id LIMIT ?`,
		accountID, deviceID, limit)
	return out, s.wrap(err)
}

func scanEnvelope(sc scanner) (Envelope, error) {
	var e Envelope
	var sent int64
	if err := sc.Scan(&e.ID, &e.AccountID, &e.DeviceID, &e.FromAccount, &e.FromDevice, &e.Kind, &e.CallID, &sent, &e.Ciphertext); err != nil {
		return Envelope{}, err
	}
	e.SentAt = tt(sent)
	return e, nil
}

func (s *sqlStore) AckEnvelopes(ctx context.Context, accountID, deviceID string, ids []int64) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	args := []any{accountID, deviceID}
	for _, id := range ids {
		args = append(args, id)
	}
	var n int64
	err := s.write(ctx, func(ctx context.Context, x execer) error {
		// The number of ids varies: run as text, not kept prepared.
		res, err := x.ExecContext(ctx, s.d.rebind(`DELETE FROM envelopes WHERE account_id = ? AND device_id = ? AND id IN (`+placeholders(len(ids))+`)`), args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}
