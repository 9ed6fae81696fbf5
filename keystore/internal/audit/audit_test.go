package audit

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/enigm/enigm/internal/testkit"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func writeLog(t *testing.T, n int) (string, Anchor) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	l, _, err := Open(path, Anchor{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		l.Append(Entry{Time: t0.Add(time.Duration(i) * time.Second), Kind: KindDecision, Op: 2, Reasons: uint32(i % 3), Detail: strings.Repeat("d", i%5)})
	}
	testkit.NoErr(t, l.Close())
	return path, l.Head()
}

func TestRoundTrip(t *testing.T) {
	path, head := writeLog(t, 20)
	entries, rep, err := ReadFile(path, head)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 20 || rep.Head != head || rep.Entries != 20 {
		t.Fatalf("got %d entries, report %+v, head %+v", len(entries), rep, head)
	}
	for i, e := range entries {
		if e.Seq != uint64(i+1) || e.Reasons != uint32(i%3) || !e.Time.Equal(t0.Add(time.Duration(i)*time.Second)) {
			t.Fatalf("entry %d = %+v", i, e)
		}
	}
	// Reopening continues the chain.
	l, _, err := Open(path, head)
	if err != nil {
		t.Fatal(err)
	}
	l.Append(Entry{Time: t0, Kind: KindLock})
	l.Close()
	if _, rep, err := ReadFile(path, l.Head()); err != nil || rep.Entries != 21 {
		t.Fatalf("after reopen: %+v %v", rep, err)
	}
}

func TestTamperDetected(t *testing.T) {
	path, head := writeLog(t, 10)
	orig, _ := os.ReadFile(path)
	// Every single-byte change anywhere in the file is detected.
	for i := 0; i < len(orig); i++ {
		b := bytes.Clone(orig)
		b[i] ^= 0x40
		os.WriteFile(path, b, 0o600)
		_, rep, err := ReadFile(path, head)
		if err == nil && rep.TornBytes == 0 {
			t.Fatalf("flipping byte %d went unnoticed", i)
		}
	}
	// Deleting an entry in the middle breaks the chain.
	first := MinEntrySize // entry 1 has an empty detail
	b := append(bytes.Clone(orig[:first]), orig[2*first+1:]...)
	os.WriteFile(path, b, 0o600)
	if _, _, err := ReadFile(path, head); !errors.Is(err, ErrBroken) && !errors.Is(err, ErrEntry) {
		t.Fatalf("deleted entry: %v", err)
	}
}

func TestTruncationBelowAnchor(t *testing.T) {
	path, head := writeLog(t, 10)
	orig, _ := os.ReadFile(path)
	// Cut at an entry boundary: the chain is intact but the anchor is gone.
	_, n, err := Decode(orig)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path, orig[:n], 0o600)
	if _, _, err := ReadFile(path, head); !errors.Is(err, ErrTruncated) {
		t.Fatalf("err = %v, want ErrTruncated", err)
	}
	os.WriteFile(path, nil, 0o600)
	if _, _, err := ReadFile(path, head); !errors.Is(err, ErrTruncated) {
		t.Fatalf("empty log: err = %v, want ErrTruncated", err)
	}
}

func TestTornTailRecovered(t *testing.T) {
	path, head := writeLog(t, 5)
	orig, _ := os.ReadFile(path)
	// A crash in the middle of writing entry 6.
	extra := Encode(Entry{Seq: 6, Time: t0, Kind: KindDecision, Prev: head.Hash})
	os.WriteFile(path, append(bytes.Clone(orig), extra[:30]...), 0o600)
	l, rep, err := Open(path, head)
	if err != nil {
		t.Fatal(err)
	}
	if rep.TornBytes != 30 {
		t.Fatalf("TornBytes = %d", rep.TornBytes)
	}
	l.Close()
	entries, _, err := ReadFile(path, l.Head())
	if err != nil {
		t.Fatal(err)
	}
	if last := entries[len(entries)-1]; last.Kind != KindRecovered || last.Seq != 6 {
		t.Fatalf("last entry %+v", last)
	}
}

// Golden bytes of one entry, annotated.
func TestEntryGolden(t *testing.T) {
	e := Entry{Seq: 1, Time: time.Unix(0, 0x0102030405060708), Kind: KindDecision,
		Key: [16]byte{0xaa}, Op: 2, Reasons: 0x201, Cause: 0, Detail: "hi"}
	got := hex.EncodeToString(Encode(e))
	want := "01" + // version
		"0000000000000001" + // seq 1
		"0102030405060708" + // time, Unix ns
		"01" + // kind: decision
		"aa000000000000000000000000000000" + // key id
		"02" + // op: sign
		"00000201" + // reasons: locked|key_state
		"00" + // cause
		"0002" + "6869" + // detail "hi"
		strings.Repeat("00", 32) // prev (zero: first entry)
	if !strings.HasPrefix(got, want) || len(got) != len(want)+64 {
		t.Fatalf("entry encoding changed:\n got %s\nwant %s<hash>", got, want)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Encode(Entry{Seq: 1, Time: t0, Kind: KindDecision, Detail: "x"}))
	f.Add(Encode(Entry{Seq: 9, Time: t0, Kind: KindLifecycle, Reasons: 7}))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, n, err := Decode(b)
		if err != nil {
			return
		}
		// Round trip: re-encoding reproduces the bytes.
		if again := Encode(e); !bytes.Equal(again, b[:n]) {
			t.Fatalf("re-encoding differs")
		}
	})
}

func BenchmarkAppend(b *testing.B) {
	l, _, err := Open(filepath.Join(b.TempDir(), "a.log"), Anchor{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	e := Entry{Time: t0, Kind: KindDecision, Op: 2}
	for b.Loop() {
		l.Append(e)
	}
}

// rechain re-encodes entries[i..upto], the first with edit applied, each
// with its own hash recomputed and linked to the one before: what someone
// who can write the file, but not the anchor, produces. The other entries
// are encoded unchanged.
func rechain(entries []Entry, i, upto int, edit func(*Entry)) []byte {
	var out []byte
	var last [32]byte
	for j, e := range entries {
		if j < i || j > upto {
			out = append(out, Encode(e)...)
			last = e.Hash
			continue
		}
		if j == i {
			edit(&e)
		} else {
			e.Prev = last
		}
		out, last = appendEntry(out, &e)
	}
	return out
}

// The attack the chain exists to stop: an entry rewritten (a denial made to
// look allowed) with its own hash recomputed, so that it decodes cleanly.
// The next entry's link catches it; when the rewritten entries run to the
// end of the log, the anchor does.
func TestRewriteWithRecomputedHash(t *testing.T) {
	path, head := writeLog(t, 10)
	entries, _, err := ReadFile(path, head)
	if err != nil {
		t.Fatal(err)
	}
	allow := func(e *Entry) { e.Reasons = 0; e.Detail = "" }
	cases := []struct {
		desc     string
		i, upto  int // rewritten entries (0-based), each with a recomputed hash
		anchor   Anchor
		contains string
	}{
		{"one entry in the middle", 4, 4, head, "entry 6 does not link to its predecessor"},
		{"one entry in the middle, no anchor", 4, 4, Anchor{}, "entry 6 does not link to its predecessor"},
		{"the last entry", 9, 9, head, "entry 10 differs from its anchor"},
		{"an entry and every later one re-chained", 4, 9, head, "entry 10 differs from its anchor"},
		{"re-chained up to an older anchor", 4, 6, entriesAnchor(entries[6]), "entry 7 differs from its anchor"},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			b := rechain(entries, c.i, c.upto, allow)
			// Every rewritten entry decodes on its own: only the chain can tell.
			for off := 0; off < len(b); {
				_, n, err := Decode(b[off:])
				if err != nil {
					t.Fatalf("rewritten log has an entry that does not decode: %v", err)
				}
				off += n
			}
			_, err := Verify(bytes.NewReader(b), c.anchor, nil)
			if !errors.Is(err, ErrBroken) || !strings.Contains(err.Error(), c.contains) {
				t.Fatalf("Verify = %v, want ErrBroken: %s", err, c.contains)
			}
		})
	}
}

func entriesAnchor(e Entry) Anchor { return Anchor{Seq: e.Seq, Hash: e.Hash} }

// halfFile fails writes half-way (a full disk) and, when truncFails is set,
// cannot cut them back either.
type halfFile struct {
	*os.File
	full, truncFails bool
}

func (f *halfFile) WriteAt(p []byte, off int64) (int, error) {
	if f.full {
		n, _ := f.File.WriteAt(p[:len(p)/2], off)
		return n, errors.New("no space left on device")
	}
	return f.File.WriteAt(p, off)
}

func (f *halfFile) Truncate(n int64) error {
	if f.truncFails {
		return errors.New("read-only file system")
	}
	return f.File.Truncate(n)
}

// A failed append leaves the log as it was (the partial entry is cut off),
// reports ErrUnavailable, and the next entry written is preceded by a note
// counting the lost ones. When the partial entry cannot be cut off, the
// log refuses everything after it.
func TestAppendFailureLeavesLogWhole(t *testing.T) {
	path, head := writeLog(t, 3)
	var hf *halfFile
	l, _, err := OpenWith(path, head, func(f *os.File) File { hf = &halfFile{File: f}; return hf })
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	hf.full = true
	for i := 0; i < 5; i++ {
		if _, err := l.Append(Entry{Time: t0, Kind: KindDecision}); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("append %d on a full disk: %v", i, err)
		}
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, before) || l.Head() != head {
		t.Fatal("a failed append changed the log")
	}
	hf.full = false
	seq, err := l.Append(Entry{Time: t0, Kind: KindLock})
	if err != nil || seq != head.Seq+2 {
		t.Fatalf("append after the disk has room: seq %d, %v (want %d: note, then entry)", seq, err, head.Seq+2)
	}
	entries, _, err := ReadFile(path, l.Head())
	if err != nil {
		t.Fatal(err)
	}
	if note := entries[len(entries)-2]; note.Kind != KindRecovered || !strings.Contains(note.Detail, "5 entries could not be written") {
		t.Fatalf("no note of the lost entries: %+v", note)
	}
	hf.full, hf.truncFails = true, true
	if _, err := l.Append(Entry{Time: t0, Kind: KindDecision}); !errors.Is(err, ErrUnavailable) {
		t.Fatal(err)
	}
	hf.full, hf.truncFails = false, false
	if _, err := l.Append(Entry{Time: t0, Kind: KindDecision}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("append after a partial entry that could not be cut: %v, want ErrUnavailable", err)
	}
	l.Close()
}

// A detail longer than MaxDetail is cut at a character boundary, so that
// the entry still decodes (Decode refuses invalid UTF-8).
func TestLongDetailCutAtCharacter(t *testing.T) {
	e := Entry{Seq: 1, Time: t0, Kind: KindRecovered, Detail: strings.Repeat("a", MaxDetail-1) + "é and more"}
	got, _, err := Decode(Encode(e))
	if err != nil {
		t.Fatalf("entry with a long multibyte detail does not decode: %v", err)
	}
	if got.Detail != strings.Repeat("a", MaxDetail-1) {
		t.Fatalf("detail cut to %d bytes", len(got.Detail))
	}
}
