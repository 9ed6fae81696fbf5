package keystore

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/enigm/enigm/keystore/internal/audit"
	"github.com/enigm/enigm/lifecycle"
	"github.com/enigm/enigm/policy"
)

// AuditEntry is one audit log entry in readable form.
type AuditEntry struct {
	Seq     uint64
	Time    time.Time
	Kind    string   // decision, lifecycle, unlock, unlock_failed, lock, device, init, recovered
	Key     string   // hex key id, "" when none
	Op      string   // decisions: the operation; lifecycle: the event
	Reasons []string // decisions: denial reason codes, empty when allowed
	Cause   string   // lifecycle events
	Detail  string
	Hash    string
}

// AuditLog makes the audit log durable, verifies its chain against the anchor and
// returns its entries. intact is false when the log opened broken at Open
// (the broken file was set aside; Status says where).
func (s *Store) AuditLog() (entries []AuditEntry, intact bool, err error) {
	s.mu.Lock()
	head, err := s.log.Sync()
	if err != nil {
		s.mu.Unlock()
		return nil, false, err
	}
	intact = s.auditRep.Intact
	s.mu.Unlock()
	raw, _, err := audit.ReadFile(filepath.Join(s.home, AuditFile), head)
	if err != nil {
		return nil, false, err
	}
	for _, e := range raw {
		a := AuditEntry{Seq: e.Seq, Time: e.Time, Kind: e.Kind.String(), Detail: e.Detail, Hash: hex.EncodeToString(e.Hash[:])}
		if e.Key != ([16]byte{}) {
			a.Key = hex.EncodeToString(e.Key[:])
		}
		switch e.Kind {
		case audit.KindDecision:
			a.Op = lifecycle.Op(e.Op).String()
			a.Reasons = policy.Reasons(e.Reasons).Codes()
		case audit.KindLifecycle:
			a.Op = lifecycle.Kind(e.Op).String()
			a.Cause = lifecycle.Cause(e.Cause).String()
		}
		entries = append(entries, a)
	}
	return entries, intact, nil
}

// AuditVerification is the result of verifying the whole audit log.
type AuditVerification struct {
	Intact  bool
	Entries uint64 // entries verified, from the first
	Head    uint64 // seq of the newest entry
	// Problem says what failed when Intact is false: where the chain
	// breaks in the file, or why the log was set aside at Open.
	Problem string
}

// VerifyAudit makes the audit log durable and verifies all of it, from its
// first entry: every entry's hash, the chain, and that it holds the anchor
// recorded in the database. Open verifies only from the last checkpoint on
// (AuditStatus.VerifiedFrom), so an entry changed before it is found here
// (and by AuditLog), not at Open. A broken log is a result (Intact false,
// Problem), not an error; the error is for a log that cannot be read. It
// reads the file once, in constant memory. `enigm audit --verify` runs it.
func (s *Store) VerifyAudit() (AuditVerification, error) {
	s.mu.Lock()
	head, err := s.log.Sync()
	rep := s.auditRep
	s.mu.Unlock()
	if err != nil {
		return AuditVerification{}, err
	}
	f, err := os.Open(filepath.Join(s.home, AuditFile))
	if err != nil {
		return AuditVerification{}, err
	}
	defer f.Close()
	r, err := audit.Verify(f, head, nil)
	v := AuditVerification{Intact: err == nil && rep.Intact, Entries: r.Entries, Head: r.Head.Seq}
	switch {
	case errors.Is(err, audit.ErrBroken), errors.Is(err, audit.ErrTruncated), errors.Is(err, audit.ErrEntry):
		v.Problem = err.Error()
	case err != nil:
		return v, fmt.Errorf("keystore: reading the audit log: %w", err)
	case !rep.Intact:
		v.Problem = fmt.Sprintf("the log failed verification at open (%s) and was kept as %s; this log starts after it", rep.Problem, rep.Preserved)
	}
	return v, nil
}

// Files returns the keystore's files and directory (for posture checks).
func Files(home string) []string {
	return []string{home, filepath.Join(home, DBFile), filepath.Join(home, AuditFile)}
}
