package keystore

import (
	"encoding/hex"
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

// Files returns the keystore's files and directory (for posture checks).
func Files(home string) []string {
	return []string{home, filepath.Join(home, DBFile), filepath.Join(home, AuditFile)}
}
