package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

func (s *sqlStore) CreateEnrollment(ctx context.Context, e Enrollment, audit ...AuditEntry) error {
	ap, err := json.Marshal(orEmpty(e.Approvals))
	if err != nil {
		return err
	}
	hs, hh := headCols(e.Head)
	_, err = s.withAudit(ctx, `INSERT INTO enrollments (id, account_id, type, state, body, device_id, device_name, protection, created_at, expires_at, head_seq, head_hash, approvals, reason, version) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		[]any{e.ID, e.AccountID, e.Type, e.State, e.Body, e.DeviceID, e.DeviceName, e.Protection, tn(e.CreatedAt), tn(e.ExpiresAt), hs, hh, string(ap), e.Reason, e.Version}, audit)
	switch s.d.classify(errors.Unwrap(err)) {
	case kindUnique:
		return fmt.Errorf("%w: enrollment %s", ErrExists, e.ID)
	case kindForeignKey:
		return fmt.Errorf("%w: account %s", ErrNotFound, e.AccountID)
	}
	return err
}

func orEmpty(a []Approval) []Approval {
	if a == nil {
		return []Approval{}
	}
	return a
}

func headCols(h *Head) (int64, string) {
	if h == nil {
		return -1, ""
	}
	return int64(h.Seq), h.Hash
}

const enrollmentCols = `e.id, e.account_id, e.type, e.state, e.body, e.device_id, e.device_name, e.protection, e.created_at, e.expires_at, e.head_seq, e.head_hash, e.approvals, e.reason, e.version`

func scanEnrollment(sc scanner) (Enrollment, error) {
	var e Enrollment
	var created, expires, hs int64
	var hh, ap string
	if err := sc.Scan(&e.ID, &e.AccountID, &e.Type, &e.State, &e.Body, &e.DeviceID, &e.DeviceName, &e.Protection, &created, &expires, &hs, &hh, &ap, &e.Reason, &e.Version); err != nil {
		return Enrollment{}, err
	}
	e.CreatedAt, e.ExpiresAt = tt(created), tt(expires)
	if hs >= 0 {
		e.Head = &Head{Seq: uint64(hs), Hash: hh}
	}
	if err := json.Unmarshal([]byte(ap), &e.Approvals); err != nil {
		return Enrollment{}, fmt.Errorf("enrollment %s: approvals column: %w", e.ID, err)
	}
	return e, nil
}

func (s *sqlStore) Enrollment(ctx context.Context, id string) (Enrollment, error) {
	return queryOne(ctx, s, scanEnrollment, "enrollment", `SELECT `+enrollmentCols+` FROM enrollments e WHERE e.id = ?`, id)
}

func (s *sqlStore) Enrollments(ctx context.Context, f EnrollmentFilter) ([]Enrollment, error) {
	from, args := filterSQL("enrollments", f.AccountID, f.OrgID, f.States)
	out, err := queryAll(ctx, s, s.db, scanEnrollment, `SELECT `+enrollmentCols+from+` ORDER BY e.created_at, e.id LIMIT 1000`, args...)
	return out, s.wrap(err)
}

func (s *sqlStore) UpdateEnrollment(ctx context.Context, e Enrollment, audit ...AuditEntry) error {
	q, args, err := updateEnrollmentSQL(e)
	if err != nil {
		return err
	}
	n, err := s.withAudit(ctx, q, args, audit)
	if err == nil && n != 1 {
		err = fmt.Errorf("%w: enrollment %s", ErrChanged, e.ID)
	}
	return err
}

func updateEnrollmentSQL(e Enrollment) (string, []any, error) {
	ap, err := json.Marshal(orEmpty(e.Approvals))
	if err != nil {
		return "", nil, err
	}
	hs, hh := headCols(e.Head)
	return `UPDATE enrollments SET state = ?, head_seq = ?, head_hash = ?, approvals = ?, reason = ?, version = ? WHERE id = ? AND version = ?`,
		[]any{e.State, hs, hh, string(ap), e.Reason, e.Version + 1, e.ID, e.Version}, nil
}

func (s *sqlStore) updateEnrollment(ctx context.Context, x execer, e Enrollment) error {
	q, args, err := updateEnrollmentSQL(e)
	if err != nil {
		return err
	}
	return s.execOne(ctx, x, "enrollment "+e.ID, q, args...)
}
