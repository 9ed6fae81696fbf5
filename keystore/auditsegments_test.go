package keystore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/enigm/enigm/keystore/internal/audit"
)

// segmented reopens f's store so that its audit log is sealed as a
// segment at each commit once it passes 2 KiB (about 20 entries).
func segmented(t *testing.T) *fixture {
	f := newFixture(t)
	f.reopenSeg()
	return f
}

func (f *fixture) segOpts() Options {
	o := f.opts()
	o.AuditSegmentBytes = 2 << 10
	return o
}

// reopenSeg closes and reopens the store with segOpts.
func (f *fixture) reopenSeg() {
	f.t.Helper()
	f.reopenWith(f.segOpts())
}

// rounds makes n rounds of 25 signatures, the clock moving an hour, and
// one commit (an unlock): one sealed segment per round.
func (f *fixture) rounds(n int) {
	f.t.Helper()
	for range n {
		f.signs(25)
		f.clock.Add(time.Hour)
		if err := f.s.Unlock(context.Background(), testPass); err != nil {
			f.t.Fatal(err)
		}
	}
}

func segments(t *testing.T, home string) []audit.Segment {
	t.Helper()
	segs, err := audit.Segments(home)
	if err != nil {
		t.Fatal(err)
	}
	return segs
}

// flipInEntry changes one detail-free byte of the entry with seq seq in
// the file at path and recomputes that entry's own hash, so that the file
// decodes cleanly and only the chain can tell.
func flipInEntry(t *testing.T, path string, seq uint64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(b); {
		e, n, err := audit.Decode(b[off:])
		if err != nil {
			t.Fatal(err)
		}
		if e.Seq == seq {
			e.Reasons ^= 1 // a decision's reason bits: an allow made a denial, or back
			enc := audit.Encode(e)
			if len(enc) != n {
				t.Fatal("re-encoded entry changed size")
			}
			copy(b[off:], enc)
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			return
		}
		off += n
	}
	t.Fatalf("no entry %d in %s", seq, path)
}

// The log is sealed into segments as it grows; the whole log still
// verifies across them, AuditLog returns every entry once in order, and
// Open still verifies only from the checkpoint.
func TestAuditRotatesIntoSegments(t *testing.T) {
	f := segmented(t)
	for range 4 {
		f.rounds(1)
	}
	segs := segments(t, f.home)
	if len(segs) < 4 {
		t.Fatalf("%d segments after 4 rounds over the segment size", len(segs))
	}
	f.reopenSeg()
	st, _ := f.s.Status()
	if !st.Audit.Intact || st.Audit.Entries > 5 || st.Audit.VerifiedFrom < 100 {
		t.Fatalf("open verified %d entries from %d: want only the few since the checkpoint", st.Audit.Entries, st.Audit.VerifiedFrom)
	}
	v, err := f.s.VerifyAudit()
	if err != nil || !v.Intact || v.From != 1 || v.Entries != st.AuditHead || v.Segments != len(segments(t, f.home)) || v.Unverifiable() != "" {
		t.Fatalf("VerifyAudit %+v %v (head %d)", v, err, st.AuditHead)
	}
	entries, intact, err := f.s.AuditLog()
	if err != nil || !intact {
		t.Fatal(err)
	}
	for i, e := range entries {
		if e.Seq != uint64(i+1) {
			t.Fatalf("entry %d has seq %d", i, e.Seq)
		}
	}
	// Each segment after the first starts with the entry that says which
	// one it continues.
	first, _, err := audit.ReadFirst(segs[1].Path)
	if err != nil || first.Kind != audit.KindSegment || !strings.Contains(first.Detail, filepath.Base(segs[0].Path)) {
		t.Fatalf("segment %s starts with %+v %v", segs[1].Path, first, err)
	}
}

// An entry changed (hash recomputed) in an old segment is not read at
// Open, and is found by VerifyAudit, which names the segment and the entry.
func TestAuditTamperedOldSegment(t *testing.T) {
	f := segmented(t)
	for range 3 {
		f.rounds(1)
	}
	f.s.Close()
	segs := segments(t, f.home)
	victim := segs[1]
	flipInEntry(t, victim.Path, victim.First+3)
	f.reopenSeg()
	v, err := f.s.VerifyAudit()
	if err != nil || v.Intact || !strings.Contains(v.Problem, filepath.Base(victim.Path)) || !strings.Contains(v.Problem, "entry") {
		t.Fatalf("a changed entry in %s: %+v %v", filepath.Base(victim.Path), v, err)
	}
	if _, _, err := f.s.AuditLog(); err == nil {
		t.Fatal("AuditLog returned a log with a changed old segment")
	}
}

// A segment deleted from the middle (or the oldest, without retention) is
// refused, naming the missing entries and the files around them, not
// skipped.
func TestAuditDeletedSegmentRefused(t *testing.T) {
	for _, which := range []string{"middle", "oldest"} {
		t.Run(which, func(t *testing.T) {
			f := segmented(t)
			for range 4 {
				f.rounds(1)
			}
			f.s.Close()
			segs := segments(t, f.home)
			i := 0
			if which == "middle" {
				i = 2
			}
			gone := segs[i]
			if err := os.Remove(gone.Path); err != nil {
				t.Fatal(err)
			}
			f.reopenSeg()
			v, err := f.s.VerifyAudit()
			want := "start of the log"
			if which == "middle" {
				want = filepath.Base(segs[i-1].Path)
			}
			if err != nil || v.Intact || !strings.Contains(v.Problem, "missing") || !strings.Contains(v.Problem, want) ||
				!strings.Contains(v.Problem, filepath.Base(segs[i+1].Path)) || v.PrunedThrough != 0 {
				t.Fatalf("%s segment deleted: %+v %v", which, v, err)
			}
			if _, _, err := f.s.AuditLog(); err == nil {
				t.Fatal("AuditLog returned a log with a segment missing")
			}
		})
	}
}

// Retention deletes the oldest segments sealed before a time; VerifyAudit
// then reports the deleted prefix as deleted by retention (still intact),
// and still finds a changed entry or a missing segment in what is kept.
func TestAuditRetention(t *testing.T) {
	f := segmented(t)
	start := f.clock.Now()
	for range 5 {
		f.rounds(1)
	}
	segs := segments(t, f.home)
	cut := start.Add(2*time.Hour + 30*time.Minute) // rounds 1 and 2 were sealed before it
	p, err := f.s.PruneAudit(cut)
	if err != nil || p.Segments != 2 {
		t.Fatalf("pruned %+v %v", p, err)
	}
	left := segments(t, f.home)
	if len(left) != len(segs)-2 || left[0] != segs[2] {
		t.Fatalf("segments left %v, want all but the two oldest of %v", left, segs)
	}
	v, err := f.s.VerifyAudit()
	if err != nil || !v.Intact || v.PrunedThrough != segs[2].First-1 || v.From != segs[2].First ||
		!strings.Contains(v.Unverifiable(), "deleted by retention") {
		t.Fatalf("after retention: %+v %v", v, err)
	}
	// The retention is in the log too.
	entries, _, err := f.s.AuditLog()
	if err != nil || entries[0].Seq != segs[2].First || entries[len(entries)-1].Kind != "retention" && entries[len(entries)-2].Kind != "retention" {
		t.Fatalf("entries after retention: first %d, %v", entries[0].Seq, err)
	}
	// Pruning again with the same cut deletes nothing.
	if p, err := f.s.PruneAudit(cut); err != nil || p.Segments != 0 {
		t.Fatalf("second prune: %+v %v", p, err)
	}
	f.s.Close()

	// What is kept is still checked: a changed entry in the oldest kept
	// segment, then that segment deleted (not by retention).
	flipInEntry(t, left[0].Path, left[0].First+2)
	f.reopenSeg()
	if v, err := f.s.VerifyAudit(); err != nil || v.Intact || !strings.Contains(v.Problem, filepath.Base(left[0].Path)) {
		t.Fatalf("changed entry after retention: %+v %v", v, err)
	}
	// Retention refuses to delete a prefix that does not verify.
	if _, err := f.s.PruneAudit(f.clock.Now().Add(time.Hour)); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("pruned a broken prefix: %v", err)
	}
	if _, err := os.Stat(left[0].Path); err != nil {
		t.Fatal("the broken segment was deleted")
	}
	f.s.Close()
	os.Remove(left[0].Path)
	f.reopenSeg()
	if v, err := f.s.VerifyAudit(); err != nil || v.Intact || !strings.Contains(v.Problem, "missing") || !strings.Contains(v.Problem, "retention (through") {
		t.Fatalf("kept segment deleted after retention: %+v %v", v, err)
	}
}

// A rotation interrupted after the active file was sealed and before the
// commit recorded the new file's checkpoint (the database still names an
// entry in the sealed segment): Open verifies the segment from the
// checkpoint and the new file, and the log goes on intact. Played both
// ways: the new file not created yet, and created with its first entry.
func TestAuditInterruptedRotation(t *testing.T) {
	for _, created := range []bool{false, true} {
		f := segmented(t)
		f.rounds(1)
		f.signs(5)
		f.s.Close()
		path := filepath.Join(f.home, AuditFile)
		if created {
			fe, _, err := audit.ReadFirst(path)
			if err != nil {
				t.Fatal(err)
			}
			l, _, err := audit.OpenAfter(path, audit.Anchor{Seq: fe.Seq - 1, Hash: fe.Prev}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := l.Rotate(f.clock.Now()); err != nil {
				t.Fatal(err)
			}
			l.Close()
		} else {
			first, _, _ := audit.FirstSeq(path)
			if err := os.Rename(path, filepath.Join(f.home, audit.SegmentName(first))); err != nil {
				t.Fatal(err)
			}
		}
		f.reopenSeg()
		st, _ := f.s.Status()
		if !st.Audit.Intact {
			t.Fatalf("created %v: open after an interrupted rotation: %+v", created, st.Audit)
		}
		f.signs(3)
		f.reopenSeg()
		if v, err := f.s.VerifyAudit(); err != nil || !v.Intact || v.From != 1 {
			t.Fatalf("created %v: %+v %v", created, v, err)
		}
	}
}

// Commits that rotate the log while VerifyAudit and AuditLog read it:
// every verification sees one consistent set of files (intact).
func TestAuditVerifyDuringRotation(t *testing.T) {
	f := segmented(t)
	f.rounds(1)
	k, err := f.s.Identity(f.gen(ClassIdentity, true).ID)
	if err != nil {
		t.Fatal(err)
	}
	done, stop := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for range 15 {
			for range 25 {
				if _, err := k.Sign(appPurpose("p"), nil); err != nil {
					t.Error(err)
					return
				}
			}
			if err := f.s.Unlock(context.Background(), testPass); err != nil {
				t.Error(err)
				return
			}
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	var problem string
	n := 0
loop:
	for ; ; n++ {
		select {
		case <-done:
			break loop
		default:
		}
		if v, err := f.s.VerifyAudit(); err != nil || !v.Intact {
			problem = fmt.Sprintf("verification %d during rotation: %+v %v", n, v, err)
			break
		}
		if _, _, err := f.s.AuditLog(); err != nil {
			problem = fmt.Sprintf("AuditLog %d during rotation: %v", n, err)
			break
		}
	}
	close(stop)
	<-done
	switch {
	case problem != "":
		t.Fatal(problem)
	case n == 0:
		t.Fatal("no verification ran during the rotations")
	case len(segments(t, f.home)) < 10:
		t.Fatalf("%d segments: the rotations did not happen", len(segments(t, f.home)))
	}
}
