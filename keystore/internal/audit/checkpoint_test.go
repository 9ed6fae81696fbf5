package audit

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"time"
)

// checkpointAt writes a log of n entries and returns its path, and the
// checkpoint of entry at (SyncCheckpoint when it was the head).
func checkpointAt(t *testing.T, n, at int) (string, Checkpoint, Anchor) {
	t.Helper()
	path, _ := writeLog(t, 0)
	l, _, err := Open(path, Anchor{})
	if err != nil {
		t.Fatal(err)
	}
	var cp Checkpoint
	for i := 1; i <= n; i++ {
		l.Append(Entry{Time: t0.Add(time.Duration(i) * time.Second), Kind: KindDecision, Op: 2, Detail: string(bytes.Repeat([]byte("d"), i%7))})
		if i == at {
			if cp, err = l.SyncCheckpoint(); err != nil {
				t.Fatal(err)
			}
		}
	}
	l.Close()
	return path, cp, l.Head()
}

// Opening from a checkpoint verifies the entries from it on and continues
// the chain; the result is the log a full verification accepts.
func TestOpenFromCheckpoint(t *testing.T) {
	path, cp, head := checkpointAt(t, 50, 40)
	if cp.Seq != 40 || cp.Off <= 0 {
		t.Fatalf("checkpoint %+v", cp)
	}
	l, rep, err := OpenFrom(path, cp, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.From != 40 || rep.Entries != 11 || rep.Head != head {
		t.Fatalf("report %+v, want entries 40-50", rep)
	}
	l.Append(Entry{Time: t0, Kind: KindLock})
	next, err := l.SyncCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if _, rep, err := ReadFile(path, next.Anchor); err != nil || rep.Entries != 51 {
		t.Fatalf("full verification after appending from a checkpoint: %+v %v", rep, err)
	}
	// The new head's checkpoint opens too, verifying one entry.
	if l, rep, err := OpenFrom(path, next, nil); err != nil || rep.Entries != 1 {
		t.Fatalf("from the new head: %+v %v", rep, err)
	} else {
		l.Close()
	}
}

// What opening from a checkpoint catches: the checkpoint's entry changed
// (even re-hashed), any entry after it changed, the log cut at or below the
// checkpoint, an offset that is not the checkpoint's entry. What it does
// not read, an entry before the checkpoint, full verification catches.
func TestCheckpointTamper(t *testing.T) {
	path, cp, head := checkpointAt(t, 30, 20)
	orig, _ := os.ReadFile(path)
	reset := func() { os.WriteFile(path, orig, 0o600) }
	open := func() error {
		l, _, err := OpenFrom(path, cp, nil)
		if err == nil {
			l.Close()
		}
		return err
	}
	for i := int(cp.Off); i < len(orig); i++ {
		b := bytes.Clone(orig)
		b[i] ^= 0x20
		os.WriteFile(path, b, 0o600)
		if err := open(); err == nil {
			// A flip in the last entry's tail can read as a torn entry:
			// then the anchor at cp still holds and the tail is cut, as
			// after a crash; it is never a different accepted entry.
			if rep, err2 := VerifyFrom(bytes.NewReader(b[cp.Off:]), cp, nil); err2 != nil || rep.TornBytes == 0 {
				t.Fatalf("byte %d (after the checkpoint at %d) flipped: opened", i, cp.Off)
			}
		}
	}
	reset()
	// The checkpoint's entry rewritten, and every later entry re-chained
	// with its hash recomputed: the file verifies on its own, the
	// checkpoint does not match.
	forged := bytes.Clone(orig[:cp.Off])
	var prev [32]byte
	for off := int(cp.Off); off < len(orig); {
		e, n, err := Decode(orig[off:])
		if err != nil {
			t.Fatal(err)
		}
		if off == int(cp.Off) {
			e.Reasons = 7
		} else {
			e.Prev = prev
		}
		b := Encode(e)
		copy(prev[:], b[len(b)-32:])
		forged = append(forged, b...)
		off += n
	}
	os.WriteFile(path, forged, 0o600)
	if err := open(); !errors.Is(err, ErrBroken) {
		t.Fatalf("checkpoint entry rewritten and the rest re-chained: %v", err)
	}
	// Cut at the checkpoint, or an offset past the end.
	os.WriteFile(path, orig[:cp.Off], 0o600)
	if err := open(); !errors.Is(err, ErrTruncated) {
		t.Fatalf("cut at the checkpoint: %v", err)
	}
	reset()
	for _, off := range []int64{0, cp.Off - MinEntrySize, cp.Off + 1, int64(len(orig)) + 10, -1} {
		bad := cp
		bad.Off = off
		l, _, err := OpenFrom(path, bad, nil)
		if err == nil {
			l.Close()
			t.Fatalf("offset %d accepted for the checkpoint at %d", off, cp.Off)
		}
	}
	// An entry before the checkpoint changed: not read by OpenFrom, found
	// by a full verification against the checkpoint.
	b := bytes.Clone(orig)
	b[10] ^= 1
	os.WriteFile(path, b, 0o600)
	if err := open(); err != nil {
		t.Fatalf("OpenFrom read before its checkpoint: %v", err)
	}
	if _, _, err := ReadFile(path, head); !errors.Is(err, ErrBroken) {
		t.Fatalf("full verification missed an entry changed before the checkpoint: %v", err)
	}
	if _, _, err := ReadFile(path, cp.Anchor); !errors.Is(err, ErrBroken) {
		t.Fatalf("full verification against the checkpoint: %v", err)
	}
}

// FuzzVerifyFrom: whatever follows a checkpoint's offset, VerifyFrom never
// panics, and what it accepts starts with the checkpoint's own entry and
// chains from it (checked here independently, entry by entry).
func FuzzVerifyFrom(f *testing.F) {
	first := Encode(Entry{Seq: 5, Time: t0, Kind: KindDecision, Detail: "x", Prev: [32]byte{1}})
	cpHash := [32]byte(first[len(first)-32:])
	e6 := Encode(Entry{Seq: 6, Time: t0, Kind: KindLock, Prev: cpHash})
	f.Add(first)
	f.Add(append(bytes.Clone(first), e6...))
	f.Add(append(bytes.Clone(first), e6[:40]...))
	cp := Checkpoint{Anchor: Anchor{Seq: 5, Hash: cpHash}}
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := VerifyFrom(bytes.NewReader(b), cp, nil)
		if err != nil {
			return
		}
		if rep.From != 5 || rep.Entries == 0 {
			t.Fatalf("accepted with report %+v", rep)
		}
		prev, off := cpHash, 0
		for i := uint64(0); i < rep.Entries; i++ {
			e, n, err := Decode(b[off:])
			if err != nil || e.Seq != 5+i || (i == 0 && e.Hash != cpHash) || (i > 0 && e.Prev != prev) {
				t.Fatalf("accepted entry %d: %+v %v", 5+i, e, err)
			}
			prev, off = e.Hash, off+n
		}
		if len(b)-off != rep.TornBytes || rep.Head.Hash != prev {
			t.Fatalf("%d bytes after the entries, torn %d", len(b)-off, rep.TornBytes)
		}
	})
}
