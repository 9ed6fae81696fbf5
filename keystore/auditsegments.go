package keystore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/enigm/enigm/keystore/internal/audit"
)

// DefaultAuditSegmentBytes is the size past which the active audit log is
// sealed as a segment (Options.AuditSegmentBytes): about 600,000 entries.
const DefaultAuditSegmentBytes = 64 << 20

func (s *Store) segmentBytes() int64 {
	switch n := s.opts.AuditSegmentBytes; {
	case n == 0:
		return DefaultAuditSegmentBytes
	case n < 0:
		return 0
	default:
		return n
	}
}

// retention is what PruneAudit recorded in the database: entries before
// FirstKept were deleted; Prev is the hash of entry FirstKept-1, which the
// first kept entry must link to. The record: FirstKept (8) || Prev (32) ||
// At, Unix nanoseconds (8).
type retention struct {
	FirstKept uint64
	Prev      [32]byte
	At        time.Time
}

func parseRetention(b []byte) retention {
	var r retention
	if len(b) != 48 {
		return r
	}
	r.FirstKept = binary.BigEndian.Uint64(b)
	copy(r.Prev[:], b[8:40])
	r.At = time.Unix(0, int64(binary.BigEndian.Uint64(b[40:]))).UTC()
	return r
}

func (r retention) encode() []byte {
	b := make([]byte, 48)
	binary.BigEndian.PutUint64(b, r.FirstKept)
	copy(b[8:40], r.Prev[:])
	binary.BigEndian.PutUint64(b[40:], uint64(r.At.UnixNano()))
	return b
}

func (s *Store) retention() (retention, error) {
	var r retention
	err := s.view(func(tx *bolt.Tx) error {
		if m := tx.Bucket(bucketMeta); m != nil {
			r = parseRetention(m.Get(keyRetention))
		}
		return nil
	})
	return r, err
}

// auditFile is one file of the audit log: a sealed segment or the active
// file (First 0: its first seq is read from it).
type auditFile struct {
	name  string
	path  string
	first uint64
}

// auditFiles returns the sealed segments from the one holding entry from
// on (all when from is 0), then the active file.
func (s *Store) auditFiles(from uint64) ([]auditFile, error) {
	segs, err := audit.Segments(s.home)
	if err != nil {
		return nil, err
	}
	active := filepath.Join(s.home, AuditFile)
	var activeFirst uint64
	if from > 0 && len(segs) > 0 {
		first, ok, err := audit.FirstSeq(active)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", AuditFile, err)
		}
		if ok {
			activeFirst = first
		}
	}
	var out []auditFile
	for i, sg := range segs {
		next := activeFirst
		if i+1 < len(segs) {
			next = segs[i+1].First
		}
		if from > 0 && next > 0 && next <= from {
			continue // wholly before from
		}
		out = append(out, auditFile{name: filepath.Base(sg.Path), path: sg.Path, first: sg.First})
	}
	return append(out, auditFile{name: AuditFile, path: active}), nil
}

// openChained opens the log when the checkpoint's entry is not in the
// active file: a rotation was interrupted after the active file was sealed
// and before the commit recorded the new file's checkpoint. The segment
// holding the checkpoint is verified from it, every later file in full,
// each continuing the one before. With cp.Off < 0 (no checkpoint) every
// kept segment is verified in full, from the retention record on.
func (s *Store) openChained(cp audit.Checkpoint) (*audit.Log, audit.Report, error) {
	ret, err := s.retention()
	if err != nil {
		return nil, audit.Report{}, err
	}
	var after audit.Anchor
	from := cp.Seq
	if cp.Off < 0 {
		from = ret.FirstKept
		if ret.FirstKept > 1 {
			after = audit.Anchor{Seq: ret.FirstKept - 1, Hash: ret.Prev}
		}
	}
	files, err := s.auditFiles(from)
	if err != nil {
		return nil, audit.Report{}, err
	}
	if cp.Off >= 0 && (len(files) < 2 || files[0].first > cp.Seq) {
		return nil, audit.Report{}, fmt.Errorf("%w: the checkpoint's entry %d is in no audit file", audit.ErrTruncated, cp.Seq)
	}
	rep := audit.Report{From: after.Seq + 1}
	if cp.Off >= 0 {
		rep.From = cp.Seq
	}
	for i, f := range files[:len(files)-1] {
		r, err := verifyFile(f, func(fh *os.File, size int64) (audit.Report, error) {
			if i == 0 && cp.Off >= 0 {
				if cp.Off+audit.MinEntrySize > size {
					return audit.Report{}, fmt.Errorf("%w: %d bytes, the checkpoint's entry %d is at offset %d", audit.ErrTruncated, size, cp.Seq, cp.Off)
				}
				return audit.VerifyFrom(io.NewSectionReader(fh, cp.Off, size-cp.Off), cp, nil)
			}
			return audit.VerifyAfter(fh, after, audit.Anchor{}, nil)
		})
		if err != nil {
			return nil, rep, err
		}
		rep.Entries += r.Entries
		after = r.Head
	}
	l, r, err := audit.OpenAfter(filepath.Join(s.home, AuditFile), after, s.opts.auditFile)
	if err != nil {
		return nil, rep, fmt.Errorf("%s: %w", AuditFile, err)
	}
	rep.Entries += r.Entries
	rep.Head, rep.TornBytes = r.Head, r.TornBytes
	return l, rep, nil
}

// verifyFile opens f and runs check on it, naming the file in its error.
func verifyFile(f auditFile, check func(*os.File, int64) (audit.Report, error)) (audit.Report, error) {
	fh, err := os.Open(f.path)
	if err != nil {
		return audit.Report{}, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return audit.Report{}, err
	}
	r, err := check(fh, st.Size())
	if err != nil {
		return r, fmt.Errorf("%s: %w", f.name, err)
	}
	return r, nil
}

// walkAudit verifies the whole audit log — every sealed segment from the
// oldest kept, then the active file, each continuing the one before — and
// that it holds anchor. visit (when not nil) sees every entry in order. A
// log that does not verify is a result (Intact false, Problem naming the
// file); the error is for files that cannot be read.
func (s *Store) walkAudit(anchor audit.Anchor, visit func(audit.Entry) error) (v AuditVerification, broken, err error) {
	ret, err := s.retention()
	if err != nil {
		return v, nil, err
	}
	var after audit.Anchor
	if ret.FirstKept > 1 {
		after = audit.Anchor{Seq: ret.FirstKept - 1, Hash: ret.Prev}
		v.PrunedThrough, v.PrunedAt = ret.FirstKept-1, ret.At
	}
	files, err := s.auditFiles(ret.FirstKept)
	if err != nil {
		return v, nil, err
	}
	v.From = after.Seq + 1
	anchored := anchor.Seq == 0 || anchor.Seq <= after.Seq
	see := func(e audit.Entry) error {
		if e.Seq == anchor.Seq && e.Hash == anchor.Hash {
			anchored = true
		}
		if visit != nil {
			return visit(e)
		}
		return nil
	}
	for i, f := range files {
		if i < len(files)-1 {
			v.Segments++
		}
		r, err := verifyFile(f, func(fh *os.File, _ int64) (audit.Report, error) {
			return audit.VerifyAfter(fh, after, audit.Anchor{}, see)
		})
		v.Entries += r.Entries
		if err != nil {
			if !isChainErr(err) {
				return v, nil, fmt.Errorf("keystore: reading the audit log: %w", err)
			}
			v.Problem = err.Error()
			if errors.Is(err, audit.ErrGap) {
				prev := "the start of the log"
				if i > 0 {
					prev = files[i-1].name
				} else if ret.FirstKept > 1 {
					prev = fmt.Sprintf("the entries deleted by retention (through %d)", ret.FirstKept-1)
				}
				err = fmt.Errorf("%w: no file holds them between %s and %s (a segment was deleted or moved without retention; restore it from an archive)", err, prev, f.name)
				v.Problem = err.Error()
			}
			v.Head = r.Head.Seq
			return v, err, nil
		}
		if r.TornBytes > 0 && i < len(files)-1 {
			v.Problem = fmt.Sprintf("%s: a sealed segment ends in an incomplete entry (%d bytes)", f.name, r.TornBytes)
			v.Head = r.Head.Seq
			return v, fmt.Errorf("%w: %s", audit.ErrBroken, v.Problem), nil
		}
		after = r.Head
	}
	v.Head = after.Seq
	if !anchored {
		broken = fmt.Errorf("%w: the log ends at entry %d, the anchor in the database is entry %d", audit.ErrTruncated, after.Seq, anchor.Seq)
		v.Problem = broken.Error()
		return v, broken, nil
	}
	v.Intact = true
	return v, nil, nil
}

func isChainErr(err error) bool {
	return errors.Is(err, audit.ErrBroken) || errors.Is(err, audit.ErrTruncated) || errors.Is(err, audit.ErrEntry)
}

// AuditPruned reports what PruneAudit deleted.
type AuditPruned struct {
	Segments int    // segment files deleted
	Through  uint64 // the newest entry deleted (0 when none was)
}

// PruneAudit is the audit log's retention: it deletes the oldest sealed
// segments that were sealed before before (a prefix of the log: never a
// segment newer than one it keeps, never the active file). It first
// verifies them (a prefix that does not verify is not deleted: the error
// says where it breaks, so that evidence of tampering is not destroyed by
// retention), then records in the database and in the log, in one commit,
// which entries are gone and the hash of the last of them, which the
// first kept entry links to: VerifyAudit then reports the deleted range as
// deleted by retention, not as missing. Archive a segment (copy it
// elsewhere) before it is pruned to keep it.
func (s *Store) PruneAudit(before time.Time) (AuditPruned, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return AuditPruned{}, ErrClosed
	}
	ret, err := s.retention()
	if err != nil {
		return AuditPruned{}, err
	}
	files, err := s.auditFiles(ret.FirstKept)
	if err != nil {
		return AuditPruned{}, err
	}
	// A segment was sealed when the next file's first entry was written.
	n := 0
	for n < len(files)-1 {
		next, ok, err := audit.ReadFirst(files[n+1].path)
		if err != nil {
			return AuditPruned{}, fmt.Errorf("keystore: reading %s: %w", files[n+1].name, err)
		}
		if !ok || !next.Time.Before(before) {
			break
		}
		n++
	}
	if n == 0 {
		return AuditPruned{}, nil
	}
	after := audit.Anchor{}
	if ret.FirstKept > 1 {
		after = audit.Anchor{Seq: ret.FirstKept - 1, Hash: ret.Prev}
	}
	for _, f := range files[:n] {
		r, err := verifyFile(f, func(fh *os.File, _ int64) (audit.Report, error) {
			return audit.VerifyAfter(fh, after, audit.Anchor{}, nil)
		})
		if err != nil {
			return AuditPruned{}, fmt.Errorf("keystore: not pruning the audit log: it does not verify (%w)", err)
		}
		after = r.Head
	}
	next, _, err := audit.ReadFirst(files[n].path)
	if err != nil {
		return AuditPruned{}, err
	}
	if next.Seq != after.Seq+1 || next.Prev != after.Hash {
		return AuditPruned{}, fmt.Errorf("keystore: not pruning the audit log: %s does not continue %s", files[n].name, files[n-1].name)
	}
	r := retention{FirstKept: next.Seq, Prev: after.Hash, At: s.now()}
	first := ret.FirstKept
	if first == 0 {
		first = 1
	}
	err = s.commitLocked(func(tx *bolt.Tx) error {
		m, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		return m.Put(keyRetention, r.encode())
	}, audit.Entry{Time: r.At, Kind: audit.KindRetention,
		Detail: fmt.Sprintf("retention deleted entries %d-%d (%d segments, %s to %s, sealed before %s)", first, after.Seq, n, files[0].name, files[n-1].name, before.UTC().Format(time.RFC3339))})
	if err != nil {
		return AuditPruned{}, err
	}
	// Recorded: delete the files. A crash here leaves segments wholly
	// before the kept range, which verification skips and the next prune
	// deletes.
	for _, f := range files[:n] {
		if err := os.Remove(f.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return AuditPruned{Segments: n, Through: after.Seq}, fmt.Errorf("keystore: deleting %s after recording its retention: %w", f.name, err)
		}
	}
	// Segments from before an earlier prune that a crash left behind.
	if stale, err := audit.Segments(s.home); err == nil {
		for i, sg := range stale {
			if i+1 < len(stale) && stale[i+1].First <= r.FirstKept {
				os.Remove(sg.Path)
			}
		}
	}
	return AuditPruned{Segments: n, Through: after.Seq}, nil
}
