package keystore

import (
	"encoding/hex"
	"fmt"
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
	Kind    string   // decision, lifecycle, unlock, unlock_failed, lock, device, init, recovered, aborted, segment, retention
	Key     string   // hex key id, "" when none
	Op      string   // decisions: the operation; lifecycle: the event
	Reasons []string // decisions: denial reason codes, empty when allowed
	Cause   string   // lifecycle events
	Detail  string
	Hash    string
}

// AuditLog makes the audit log durable, verifies its chain against the
// anchor (every kept segment, then the active file, as VerifyAudit) and
// returns its entries. intact is false when the log opened broken at Open
// (the broken file was set aside; Status says where).
func (s *Store) AuditLog() (entries []AuditEntry, intact bool, err error) {
	// Held while the files are read: a commit that rotates the log
	// would otherwise rename the active file under the walk. Key uses do
	// not take it.
	s.mu.Lock()
	defer s.mu.Unlock()
	head, err := s.log.Sync()
	if err != nil {
		return nil, false, err
	}
	intact = s.auditRep.Intact
	var raw []audit.Entry
	_, broken, err := s.walkAudit(head, func(e audit.Entry) error { raw = append(raw, e); return nil })
	if err == nil {
		err = broken
	}
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
	Entries uint64 // entries verified, from From
	From    uint64 // seq of the first entry verified: 1, or the first kept by retention
	Head    uint64 // seq of the newest entry
	// Segments is how many sealed segments were verified before the
	// active file.
	Segments int
	// PrunedThrough is the newest entry deleted by retention (PruneAudit),
	// 0 when none was; entries 1 to PrunedThrough can no longer be
	// checked. PrunedAt is when they were deleted. A deleted prefix is not
	// a problem: the first kept entry links to the hash recorded when they
	// were deleted.
	PrunedThrough uint64
	PrunedAt      time.Time
	// Problem says what failed when Intact is false: the file and entry
	// where the chain breaks, the entries no file holds, or why the log was
	// set aside at Open.
	Problem string
}

// Unverifiable says which entries can no longer be checked because
// retention deleted them ("" when none were).
func (v AuditVerification) Unverifiable() string {
	if v.PrunedThrough == 0 {
		return ""
	}
	return fmt.Sprintf("entries 1-%d were deleted by retention on %s and can no longer be checked; the chain is verified from entry %d on",
		v.PrunedThrough, v.PrunedAt.Format(time.RFC3339), v.PrunedThrough+1)
}

// VerifyAudit makes the audit log durable and verifies all of it: every
// sealed segment from the oldest kept, then the active file, each entry's
// hash, every link (within a file and from one file to the next), and that
// it holds the anchor recorded in the database. Open verifies only from the
// last checkpoint on (AuditStatus.VerifiedFrom), so an entry changed before
// it is found here (and by AuditLog), not at Open. A broken log — an entry
// changed in any segment, a segment missing from the middle or the start
// without retention — is a result (Intact false, Problem naming the file),
// not an error; the error is for a log that cannot be read. Entries
// deleted by retention are reported (PrunedThrough, Unverifiable), not as
// a break. It reads each file once, in constant memory. `enigm audit
// --verify` runs it.
func (s *Store) VerifyAudit() (AuditVerification, error) {
	// Held while the files are read (see AuditLog).
	s.mu.Lock()
	defer s.mu.Unlock()
	head, err := s.log.Sync()
	rep := s.auditRep
	if err != nil {
		return AuditVerification{}, err
	}
	v, _, err := s.walkAudit(head, nil)
	if err != nil {
		return v, err
	}
	if v.Intact && !rep.Intact {
		v.Intact = false
		v.Problem = fmt.Sprintf("the log failed verification at open (%s) and was kept as %s; this log starts after it", rep.Problem, rep.Preserved)
	}
	return v, nil
}

// Files returns the keystore's files and directory (for posture checks).
func Files(home string) []string {
	return []string{home, filepath.Join(home, DBFile), filepath.Join(home, AuditFile)}
}
