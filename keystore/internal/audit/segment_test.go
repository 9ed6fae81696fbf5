package audit

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Rotate seals the active file under its first seq and starts a new one
// whose first entry (KindSegment) continues the chain: each file verifies
// as continuing the one before, the new file alone from the start is a
// gap (an ErrBroken), and the returned checkpoint opens the new file.
func TestRotateContinuesChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, _, err := Open(path, Anchor{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		l.Append(Entry{Time: t0.Add(time.Duration(i)), Kind: KindDecision, Op: 2})
	}
	sealedHead := l.Head()
	cp, err := l.Rotate(t0)
	if err != nil || cp.Seq != 6 || cp.Off != 0 {
		t.Fatalf("rotate: %+v %v", cp, err)
	}
	for range 3 {
		l.Append(Entry{Time: t0, Kind: KindDecision, Op: 2})
	}
	l.Close()
	segs, err := Segments(filepath.Dir(path))
	if err != nil || len(segs) != 1 || segs[0].First != 1 || filepath.Base(segs[0].Path) != SegmentName(1) {
		t.Fatalf("segments %v %v", segs, err)
	}
	sf, _ := os.Open(segs[0].Path)
	defer sf.Close()
	r, err := VerifyAfter(sf, Anchor{}, Anchor{}, nil)
	if err != nil || r.Head != sealedHead || r.Entries != 5 {
		t.Fatalf("sealed segment: %+v %v", r, err)
	}
	af, _ := os.Open(path)
	defer af.Close()
	var kinds []Kind
	r, err = VerifyAfter(af, sealedHead, Anchor{}, func(e Entry) error { kinds = append(kinds, e.Kind); return nil })
	if err != nil || r.Entries != 4 || r.From != 6 || kinds[0] != KindSegment {
		t.Fatalf("active file after the segment: %+v %v %v", r, kinds, err)
	}
	af.Seek(0, 0)
	if _, err := Verify(af, Anchor{}, nil); !errors.Is(err, ErrGap) || !errors.Is(err, ErrBroken) {
		t.Fatalf("the new file alone from the start: %v", err)
	}
	// Continuing from a wrong hash is a break, not a gap.
	af.Seek(0, 0)
	wrong := sealedHead
	wrong.Hash[0] ^= 1
	if _, err := VerifyAfter(af, wrong, Anchor{}, nil); !errors.Is(err, ErrBroken) || errors.Is(err, ErrGap) {
		t.Fatalf("continuing from a wrong hash: %v", err)
	}
	if seq, ok, err := FirstSeq(path); err != nil || !ok || seq != 6 {
		t.Fatalf("FirstSeq %d %v %v", seq, ok, err)
	}
	l, rep, err := OpenFrom(path, cp, nil)
	if err != nil || rep.Head.Seq != 9 {
		t.Fatalf("open from the rotation's checkpoint: %+v %v", rep, err)
	}
	l.Close()
}

// A segment name already taken is refused before anything moves: the log
// goes on in the same file (the error is not ErrUnavailable).
func TestRotateRefusesExistingSegment(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	l, _, err := Open(path, Anchor{})
	if err != nil {
		t.Fatal(err)
	}
	l.Append(Entry{Time: t0, Kind: KindDecision})
	if err := os.WriteFile(filepath.Join(dir, SegmentName(1)), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Rotate(t0); err == nil || errors.Is(err, ErrUnavailable) {
		t.Fatalf("rotate over an existing segment: %v", err)
	}
	if _, err := l.Append(Entry{Time: t0, Kind: KindDecision}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if _, rep, err := ReadFile(path, Anchor{}); err != nil || rep.Entries != 2 {
		t.Fatalf("log after a refused rotation: %+v %v", rep, err)
	}
}
