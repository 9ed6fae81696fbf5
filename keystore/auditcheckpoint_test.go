package keystore

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/enigm/enigm/keystore/internal/audit"
)

// signs makes n signatures (n decision entries).
func (f *fixture) signs(n int) {
	f.t.Helper()
	id := f.gen(ClassIdentity, true)
	k, _ := f.s.Identity(id.ID)
	for range n {
		if _, err := k.Sign(appPurpose("p"), nil); err != nil {
			f.t.Fatal(err)
		}
	}
}

// Open verifies the audit log from the checkpoint recorded at the last
// commit on, not from the first entry; VerifyAudit verifies all of it.
func TestAuditOpenVerifiesFromCheckpoint(t *testing.T) {
	f := newFixture(t)
	f.signs(100)
	f.reopen()
	st, _ := f.s.Status()
	if !st.Audit.Intact || st.Audit.VerifiedFrom < 100 || st.Audit.Entries > 3 {
		t.Fatalf("open verified %d entries from %d (head %d), want only the last few", st.Audit.Entries, st.Audit.VerifiedFrom, st.AuditHead)
	}
	v, err := f.s.VerifyAudit()
	if err != nil || !v.Intact || v.Entries != st.AuditHead || v.Head != st.AuditHead || v.Problem != "" {
		t.Fatalf("VerifyAudit %+v %v (head %d)", v, err, st.AuditHead)
	}
}

// An anchor recorded before checkpoints (40 bytes, no offset) makes Open
// verify from the first entry, once; the next commit records a checkpoint.
func TestAuditAnchorWithoutOffset(t *testing.T) {
	f := newFixture(t)
	f.signs(20)
	f.s.Close()
	db, err := bolt.Open(filepath.Join(f.home, DBFile), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		return m.Put(keyAnchor, append([]byte(nil), m.Get(keyAnchor)[:40]...))
	})
	db.Close()
	s := f.open()
	st, _ := s.Status()
	if !st.Audit.Intact || st.Audit.VerifiedFrom != 1 || st.Audit.Entries < 20 {
		t.Fatalf("old anchor: verified %d entries from %d", st.Audit.Entries, st.Audit.VerifiedFrom)
	}
	f.reopen()
	if st, _ := f.s.Status(); st.Audit.VerifiedFrom <= 1 {
		t.Fatalf("no checkpoint recorded after the old anchor: verified from %d", st.Audit.VerifiedFrom)
	}
}

// An entry changed before the checkpoint (an old part of the log) is not
// read at Open; VerifyAudit and AuditLog find it. One changed at or after
// the checkpoint is found at Open (TestAuditBrokenIsPreserved,
// TestAuditRewriteDetectedAtOpen), and a log cut below the checkpoint too.
func TestAuditOldEntryTamperFoundByVerify(t *testing.T) {
	f := newFixture(t)
	f.signs(50)
	f.s.Close()
	path := filepath.Join(f.home, AuditFile)
	orig, _ := os.ReadFile(path)
	b := append([]byte(nil), orig...)
	b[20] ^= 1 // in entry 1
	os.WriteFile(path, b, 0o600)
	s := f.open()
	if st, _ := s.Status(); !st.Audit.Intact {
		t.Fatalf("open read before its checkpoint: %+v", st.Audit)
	}
	v, err := s.VerifyAudit()
	if err != nil || v.Intact || !strings.Contains(v.Problem, "entry 1") {
		t.Fatalf("VerifyAudit missed a changed old entry: %+v %v", v, err)
	}
	if _, _, err := s.AuditLog(); err == nil {
		t.Fatal("AuditLog missed a changed old entry")
	}
	s.Close()

	// Cut below the checkpoint: found at Open, the cut file kept aside.
	os.WriteFile(path, orig[:len(orig)/2], 0o600)
	s = f.open()
	st, _ := s.Status()
	if st.Audit.Intact || st.Audit.Preserved == "" {
		t.Fatalf("a log cut below its checkpoint opened: %+v", st.Audit)
	}
	v, err = s.VerifyAudit()
	if err != nil || v.Intact || !strings.Contains(v.Problem, "failed verification at open") {
		t.Fatalf("VerifyAudit after a log was set aside: %+v %v", v, err)
	}
	if _, _, err := audit.ReadFile(st.Audit.Preserved, audit.Anchor{}); err != nil {
		t.Fatalf("the kept log: %v", err)
	}
}
