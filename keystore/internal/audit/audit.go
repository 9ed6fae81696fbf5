// Package audit is the keystore's local append-only audit log: every policy
// decision (allow and deny), lifecycle event, unlock and lock, as a
// hash-chained sequence of fixed-layout entries in one file.
//
// # Entry layout (all integers big-endian)
//
//	off  size  field
//	0    1     version (1)
//	1    8     seq (first entry is 1)
//	9    8     time, Unix nanoseconds
//	17   1     kind (Kind)
//	18   16    key id (zero when none)
//	34   1     op (lifecycle.Op) or lifecycle event kind
//	35   4     reasons (policy.Reasons bit set)
//	39   1     cause (lifecycle.Cause)
//	40   2     n = detail length (≤ MaxDetail)
//	42   n     detail: UTF-8, never secret material
//	42+n 32    prev: hash of the previous entry (zero for seq 1)
//	74+n 32    hash: SHA-256 of bytes [0, 74+n)
//
// # What the chain detects
//
// An edit, deletion, insertion or reordering anywhere breaks the chain; a
// truncation is detected when it cuts below the last anchor, a (seq, hash)
// pair the keystore records in its transactional database at lifecycle
// events, unlock, lock and close. Every entry is written to the operating
// system before Append returns, so a killed process loses none; entries
// after the last fsync (Sync) can be lost when the machine loses power or
// the OS crashes, and entries after the last anchor can be cut or
// rewritten by someone with write access to the file. An attacker who can
// rewrite the whole file and the database can forge a consistent history: the log is tamper-evident against accidents
// and partial edits, not against the device's own administrator.
//
// # Checkpoints
//
// A Checkpoint is an anchor with the file offset of its entry. OpenFrom
// checks the entry at that offset against it and verifies only the
// entries after it, so opening costs what was written since the
// checkpoint; the entries before it are checked by Verify (or ReadFile)
// from the first entry, which the keystore runs on request.
package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Kind of an entry. Values are persisted: never reorder.
type Kind uint8

// Entry kinds.
const (
	KindDecision     Kind = iota + 1 // a policy decision on a key use
	KindLifecycle                    // a key lifecycle event
	KindUnlock                       // keystore unlocked
	KindUnlockFailed                 // unlock refused (wrong secret, …)
	KindLock                         // keystore locked
	KindDevice                       // device state change (association, revocation)
	KindInit                         // store created
	KindRecovered                    // a torn tail was cut off, or a broken log set aside
	KindAborted                      // the preceding entries' change did not commit
	KindSegment                      // first entry of a segment: the previous one was sealed
	KindRetention                    // sealed segments were deleted by retention
)

var kindNames = [...]string{"", "decision", "lifecycle", "unlock", "unlock_failed", "lock", "device", "init", "recovered", "aborted", "segment", "retention"}

func (k Kind) String() string {
	if k >= KindDecision && k <= KindRetention {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Sizes.
const (
	fixedSize = 42
	hashSize  = 32
	// MaxDetail bounds the detail text.
	MaxDetail = 512
	// MinEntrySize and MaxEntrySize bound one encoded entry.
	MinEntrySize = fixedSize + 2*hashSize
	MaxEntrySize = MinEntrySize + MaxDetail
	version      = 1
)

// Entry is one audit record.
type Entry struct {
	Seq     uint64
	Time    time.Time
	Kind    Kind
	Key     [16]byte
	Op      uint8
	Reasons uint32
	Cause   uint8
	Detail  string
	Prev    [32]byte
	Hash    [32]byte
}

// Errors.
var (
	// ErrBroken reports a log whose chain does not verify.
	ErrBroken = errors.New("audit: log chain broken")
	// ErrTruncated reports a log shorter than its last anchor.
	ErrTruncated = errors.New("audit: log truncated below its anchor")
	// ErrEntry reports an entry that does not parse.
	ErrEntry = errors.New("audit: malformed entry")
	// ErrGap reports a log (a segment) that starts after the entry it
	// should continue from: the entries between are in no file. It is an
	// ErrBroken.
	ErrGap = fmt.Errorf("%w: entries missing", ErrBroken)
)

// appendEntry encodes e (with Prev set) and returns the bytes and hash.
func appendEntry(buf []byte, e *Entry) ([]byte, [32]byte) {
	start := len(buf)
	var fixed [fixedSize]byte
	fixed[0] = version
	binary.BigEndian.PutUint64(fixed[1:], e.Seq)
	binary.BigEndian.PutUint64(fixed[9:], uint64(e.Time.UnixNano()))
	fixed[17] = byte(e.Kind)
	copy(fixed[18:34], e.Key[:])
	fixed[34] = e.Op
	binary.BigEndian.PutUint32(fixed[35:], e.Reasons)
	fixed[39] = e.Cause
	detail := e.Detail
	if len(detail) > MaxDetail {
		// Cut at a character boundary: Decode refuses invalid UTF-8.
		n := MaxDetail
		for n > 0 && !utf8.RuneStart(detail[n]) {
			n--
		}
		detail = detail[:n]
	}
	binary.BigEndian.PutUint16(fixed[40:], uint16(len(detail)))
	buf = append(buf, fixed[:]...)
	buf = append(buf, detail...)
	buf = append(buf, e.Prev[:]...)
	h := sha256.Sum256(buf[start:])
	return append(buf, h[:]...), h
}

// Encode returns the encoding of e with the given prev hash; the hash is
// computed. It is exported for tests and tools.
func Encode(e Entry) []byte {
	b, _ := appendEntry(nil, &e)
	return b
}

// Decode parses one entry from the front of b and returns it with the
// number of bytes used. It checks the entry's own hash, not the chain.
func Decode(b []byte) (Entry, int, error) {
	var e Entry
	if len(b) < MinEntrySize {
		return e, 0, fmt.Errorf("%w: %d bytes, need at least %d", ErrEntry, len(b), MinEntrySize)
	}
	if b[0] != version {
		return e, 0, fmt.Errorf("%w: version %d", ErrEntry, b[0])
	}
	n := int(binary.BigEndian.Uint16(b[40:]))
	if n > MaxDetail {
		return e, 0, fmt.Errorf("%w: detail of %d bytes", ErrEntry, n)
	}
	total := MinEntrySize + n
	if len(b) < total {
		return e, 0, fmt.Errorf("%w: entry of %d bytes, have %d", ErrEntry, total, len(b))
	}
	e.Seq = binary.BigEndian.Uint64(b[1:])
	e.Time = time.Unix(0, int64(binary.BigEndian.Uint64(b[9:]))).UTC()
	e.Kind = Kind(b[17])
	copy(e.Key[:], b[18:34])
	e.Op = b[34]
	e.Reasons = binary.BigEndian.Uint32(b[35:])
	e.Cause = b[39]
	e.Detail = string(b[fixedSize : fixedSize+n])
	copy(e.Prev[:], b[fixedSize+n:])
	copy(e.Hash[:], b[fixedSize+n+hashSize:])
	if e.Kind < KindDecision || e.Kind > KindRetention {
		return e, 0, fmt.Errorf("%w: unknown kind %d", ErrEntry, e.Kind)
	}
	if !utf8.ValidString(e.Detail) {
		return e, 0, fmt.Errorf("%w: detail is not UTF-8", ErrEntry)
	}
	if sha256.Sum256(b[:fixedSize+n+hashSize]) != e.Hash {
		return e, 0, fmt.Errorf("%w: entry hash mismatch at seq %d", ErrBroken, e.Seq)
	}
	return e, total, nil
}

// Anchor is a (seq, hash) pair recorded outside the log.
type Anchor struct {
	Seq  uint64
	Hash [32]byte
}

// Checkpoint is an anchor with the file offset at which its entry starts:
// a summary of the log up to that entry, which the keystore records in its
// database with the anchor. Opening from a checkpoint checks that entry
// against it and verifies only the entries after it.
type Checkpoint struct {
	Anchor
	Off int64
}

// Report is the result of verifying a log.
type Report struct {
	Entries   uint64 // entries verified (from From to Head)
	From      uint64 // seq of the first entry verified (1, or a checkpoint's)
	Head      Anchor
	TornBytes int // bytes of an incomplete final entry (crash mid-write)
}

// Verify reads a whole log, checks the chain and, when anchor.Seq > 0, that
// the log contains the anchored entry. An incomplete final entry is
// reported in TornBytes, not as an error. visit, when not nil, sees every
// entry in order.
func Verify(r io.Reader, anchor Anchor, visit func(Entry) error) (Report, error) {
	return verify(r, nil, Anchor{}, anchor, visit)
}

// VerifyAfter is Verify for a log (a segment) that continues a chain: its
// first entry must follow after (seq after.Seq+1, prev after.Hash). An
// empty log verifies with Head = after.
func VerifyAfter(r io.Reader, after, anchor Anchor, visit func(Entry) error) (Report, error) {
	return verify(r, nil, after, anchor, visit)
}

// VerifyFrom verifies the log in r from checkpoint cp on: r is positioned
// at cp.Off, the entry there must be cp's (its seq and hash), and the
// entries after it must chain from it. The entries before cp are not read:
// Verify from the start checks them (and that they lead to cp, when cp is
// passed as its anchor).
func VerifyFrom(r io.Reader, cp Checkpoint, visit func(Entry) error) (Report, error) {
	return verify(r, &cp, Anchor{}, cp.Anchor, visit)
}

func verify(r io.Reader, cp *Checkpoint, after, anchor Anchor, visit func(Entry) error) (Report, error) {
	rep := Report{From: after.Seq + 1, Head: after}
	next, prev := after.Seq+1, after.Hash
	if cp != nil {
		rep.From, next = cp.Seq, cp.Seq
	}
	br := bufio.NewReaderSize(r, 64<<10)
	buf := make([]byte, 0, MaxEntrySize)
	anchored := anchor.Seq == 0
	for {
		// Read the fixed part, then the rest.
		buf = buf[:MinEntrySize]
		n, err := io.ReadFull(br, buf)
		if err == io.EOF {
			break
		}
		if err == io.ErrUnexpectedEOF {
			rep.TornBytes = n
			break
		}
		if err != nil {
			return rep, err
		}
		dl := int(binary.BigEndian.Uint16(buf[40:]))
		if buf[0] != version || dl > MaxDetail {
			return rep, fmt.Errorf("%w: at entry %d", ErrEntry, next)
		}
		if dl > 0 {
			buf = buf[:MinEntrySize+dl]
			m, err := io.ReadFull(br, buf[MinEntrySize:])
			if err == io.ErrUnexpectedEOF || err == io.EOF {
				rep.TornBytes = MinEntrySize + m
				break
			}
			if err != nil {
				return rep, err
			}
		}
		e, _, err := Decode(buf)
		if err != nil {
			return rep, fmt.Errorf("entry %d: %w", next, err)
		}
		if e.Seq != next {
			if rep.Entries == 0 && cp == nil && e.Seq > next {
				return rep, fmt.Errorf("%w: %d-%d (the file starts at entry %d)", ErrGap, next, e.Seq-1, e.Seq)
			}
			return rep, fmt.Errorf("%w: entry %d has seq %d", ErrBroken, next, e.Seq)
		}
		switch {
		case cp != nil && e.Seq == cp.Seq:
			// The checkpoint's entry: its predecessors are not read here.
			if e.Hash != cp.Hash {
				return rep, fmt.Errorf("%w: entry %d at offset %d differs from the checkpoint", ErrBroken, e.Seq, cp.Off)
			}
		case e.Prev != prev:
			return rep, fmt.Errorf("%w: entry %d does not link to its predecessor", ErrBroken, e.Seq)
		}
		if e.Seq == anchor.Seq {
			if e.Hash != anchor.Hash {
				return rep, fmt.Errorf("%w: entry %d differs from its anchor", ErrBroken, e.Seq)
			}
			anchored = true
		}
		if visit != nil {
			if err := visit(e); err != nil {
				return rep, err
			}
		}
		prev = e.Hash
		next++
		rep.Entries++
		rep.Head = Anchor{Seq: e.Seq, Hash: e.Hash}
	}
	if cp != nil && rep.Entries == 0 {
		return rep, fmt.Errorf("%w: no entry at the checkpoint's offset %d (entry %d)", ErrTruncated, cp.Off, cp.Seq)
	}
	if !anchored {
		return rep, fmt.Errorf("%w: the log ends at entry %d, the anchor is at %d", ErrTruncated, rep.Head.Seq, anchor.Seq)
	}
	return rep, nil
}

// File is what a Log writes to: an *os.File, or in tests a file that fails
// the way a full or read-only file system does.
type File interface {
	WriteAt(p []byte, off int64) (int, error)
	Truncate(size int64) error
	Sync() error
	Close() error
}

// Log appends entries to a file. Append writes each entry to the operating
// system (one write system call) before it returns, so an entry survives
// the process being killed; Sync makes the entries written so far durable
// against power loss. It is safe for concurrent use.
type Log struct {
	mu     sync.Mutex
	path   string
	wrap   func(*os.File) File
	first  uint64 // seq of the active file's first entry (0: none yet)
	f      File
	end    int64 // file offset after the head entry
	head   Anchor
	headAt int64 // file offset of the head entry
	buf    []byte
	lost   int   // entries whose write failed since the last one that succeeded
	lostE  error // the first of those failures
	err    error // sticky: a failed fsync or a write that could not be cut back
	synced Checkpoint
	syncMu sync.Mutex // one fsync at a time
}

// ErrUnavailable reports a log that cannot take entries: the entry was not
// written. The error wraps the file system's error.
var ErrUnavailable = errors.New("audit: log unavailable")

// Open opens (creating with mode 0600) the log at path, verifies it against
// anchor and positions it for appending. A torn final entry from a crash is
// cut off and recorded as a KindRecovered entry.
func Open(path string, anchor Anchor) (*Log, Report, error) {
	return OpenWith(path, anchor, nil)
}

// OpenWith is Open with the opened file passed through wrap (when not nil)
// before the log writes to it. Tests use it to make the file fail.
func OpenWith(path string, anchor Anchor, wrap func(*os.File) File) (*Log, Report, error) {
	return open(path, nil, Anchor{}, anchor, wrap)
}

// OpenAfter is OpenWith for an active file that continues a chain whose
// last entry is after (the last entry of the newest sealed segment): the
// whole file is verified as following it, and an empty file is positioned
// to continue it.
func OpenAfter(path string, after Anchor, wrap func(*os.File) File) (*Log, Report, error) {
	return open(path, nil, after, Anchor{}, wrap)
}

// OpenFrom is OpenWith that verifies only from checkpoint cp on (VerifyFrom):
// the cost of opening does not grow with the entries before cp. cp is also
// the anchor: the log must hold it.
func OpenFrom(path string, cp Checkpoint, wrap func(*os.File) File) (*Log, Report, error) {
	return open(path, &cp, Anchor{}, cp.Anchor, wrap)
}

func open(path string, cp *Checkpoint, after, anchor Anchor, wrap func(*os.File) File) (*Log, Report, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, Report{}, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, Report{}, err
	}
	var rep Report
	var off int64
	if cp != nil {
		if cp.Off < 0 || cp.Off+MinEntrySize > st.Size() {
			f.Close()
			return nil, rep, fmt.Errorf("%w: the log has %d bytes, the checkpoint's entry %d is at offset %d", ErrTruncated, st.Size(), cp.Seq, cp.Off)
		}
		off = cp.Off
	}
	// Follow each entry's offset, to know where the head starts.
	headAt, pos, first := int64(-1), off, uint64(0)
	track := func(e Entry) error {
		if pos == 0 {
			first = e.Seq
		}
		headAt = pos
		pos += int64(MinEntrySize + len(e.Detail))
		return nil
	}
	if cp != nil {
		rep, err = VerifyFrom(io.NewSectionReader(f, off, st.Size()-off), *cp, track)
	} else {
		rep, err = verify(io.NewSectionReader(f, 0, st.Size()), nil, after, anchor, track)
	}
	if err != nil {
		f.Close()
		return nil, rep, err
	}
	end := st.Size() - int64(rep.TornBytes)
	if rep.TornBytes > 0 {
		if err := f.Truncate(end); err != nil {
			f.Close()
			return nil, rep, fmt.Errorf("audit: cutting a torn tail: %w", err)
		}
	}
	var file File = f
	if wrap != nil {
		file = wrap(f)
	}
	if cp != nil && off > 0 {
		// The first entry was not read: read it for First.
		if fe, ok, ferr := readFirst(f); ferr == nil && ok {
			first = fe.Seq
		}
	}
	l := &Log{path: path, wrap: wrap, first: first, f: file, end: end, head: rep.Head, headAt: headAt}
	l.synced = Checkpoint{Anchor: rep.Head, Off: headAt}
	if rep.TornBytes > 0 {
		_, err := l.Append(Entry{Time: time.Now(), Kind: KindRecovered, Detail: fmt.Sprintf("cut %d bytes of an incomplete entry after seq %d", rep.TornBytes, rep.Head.Seq)})
		if err == nil {
			_, err = l.Sync()
		}
		if err != nil {
			file.Close()
			return nil, rep, err
		}
	}
	return l, rep, nil
}

// Append adds an entry, filling in Seq, Prev and Hash, and writes it to the
// file before returning its seq. When the write fails (file system full,
// read-only, I/O error) the entry is not in the log: any partial write is
// cut off, the head stays where it was and the error wraps ErrUnavailable.
// The next entry that is written is preceded by a KindRecovered entry
// counting the entries that were not.
func (l *Log) Append(e Entry) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost > 0 {
		note := Entry{Time: e.Time, Kind: KindRecovered,
			Detail: fmt.Sprintf("%d entries could not be written (%v); decisions among them were denials", l.lost, l.lostE)}
		if err := l.writeLocked(&note); err != nil {
			return 0, l.failLocked(err)
		}
		l.lost, l.lostE = 0, nil
	}
	if err := l.writeLocked(&e); err != nil {
		return 0, l.failLocked(err)
	}
	return e.Seq, nil
}

// writeLocked encodes e after the head and writes it at the end of the
// file; on success the head advances.
func (l *Log) writeLocked(e *Entry) error {
	if l.err != nil {
		return l.err
	}
	if l.end == 0 {
		l.first = l.head.Seq + 1
	}
	e.Seq = l.head.Seq + 1
	e.Prev = l.head.Hash
	var h [32]byte
	l.buf, h = appendEntry(l.buf[:0], e)
	n, err := l.f.WriteAt(l.buf, l.end)
	if err == nil && n != len(l.buf) {
		err = io.ErrShortWrite
	}
	if err != nil {
		if n > 0 {
			// Cut the partial entry so that the next one follows the head.
			if terr := l.f.Truncate(l.end); terr != nil {
				l.err = fmt.Errorf("%w: a partial entry could not be cut off (%v) after: %w", ErrUnavailable, terr, err)
			}
		}
		return err
	}
	l.headAt = l.end
	l.end += int64(n)
	l.head = Anchor{Seq: e.Seq, Hash: h}
	e.Hash = h
	return nil
}

func (l *Log) failLocked(err error) error {
	if l.lost == 0 {
		l.lostE = err
	}
	l.lost++
	if errors.Is(err, ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// Head returns the newest entry's (seq, hash).
func (l *Log) Head() Anchor {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.head
}

// Sync makes every entry written before the call durable (fsync) and
// returns the newest of them. Appends go on while it runs. A failed fsync
// is sticky: the file system may have dropped written entries, so the log
// refuses further entries (ErrUnavailable) until it is opened again, which
// verifies what the file holds.
func (l *Log) Sync() (Anchor, error) {
	cp, err := l.SyncCheckpoint()
	return cp.Anchor, err
}

// SyncCheckpoint is Sync returning the newest durable entry with its file
// offset: what the keystore records so that the next open verifies only
// what follows it (OpenFrom). Off is -1 for an empty log.
func (l *Log) SyncCheckpoint() (Checkpoint, error) {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	head, err := Checkpoint{Anchor: l.head, Off: l.headAt}, l.err
	l.mu.Unlock()
	if err != nil {
		return l.synced, err
	}
	if head == l.synced {
		return head, nil
	}
	if err := l.f.Sync(); err != nil {
		l.mu.Lock()
		if l.err == nil {
			l.err = fmt.Errorf("%w: fsync failed: %w", ErrUnavailable, err)
		}
		err = l.err
		l.mu.Unlock()
		return l.synced, err
	}
	l.synced = head
	return head, nil
}

// Size returns the bytes of the active file.
func (l *Log) Size() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.end
}

// Rotate seals the active file as a segment, named by the seq of its
// first entry (SegmentName) in the same directory, and starts a new active
// file whose first entry, of kind KindSegment, continues the chain from
// the sealed segment's last entry. Both files and the directory are made
// durable before it returns the checkpoint of that first entry (offset 0
// of the new file). Appends wait while it runs.
//
// An error before the rename leaves the log as it was (the error does not
// wrap ErrUnavailable); after it, the log refuses entries (ErrUnavailable)
// until it is opened again, which finds the sealed segment.
func (l *Log) Rotate(now time.Time) (Checkpoint, error) {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return l.synced, l.err
	}
	if l.end == 0 {
		return l.synced, nil
	}
	if err := l.f.Sync(); err != nil {
		l.err = fmt.Errorf("%w: fsync failed: %w", ErrUnavailable, err)
		return l.synced, l.err
	}
	l.synced = Checkpoint{Anchor: l.head, Off: l.headAt}
	dir := filepath.Dir(l.path)
	name := SegmentName(l.first)
	sealed := filepath.Join(dir, name)
	if _, err := os.Lstat(sealed); err == nil {
		return l.synced, fmt.Errorf("audit: cannot seal the log as %s: the file exists", sealed)
	}
	if err := os.Rename(l.path, sealed); err != nil {
		return l.synced, fmt.Errorf("audit: sealing the log as a segment: %w", err)
	}
	fail := func(err error) (Checkpoint, error) {
		l.err = fmt.Errorf("%w: the log was sealed as %s but a new one could not be started: %w", ErrUnavailable, name, err)
		return l.synced, l.err
	}
	nf, err := os.OpenFile(l.path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fail(err)
	}
	var file File = nf
	if l.wrap != nil {
		file = l.wrap(nf)
	}
	l.f.Close()
	l.f, l.end, l.headAt = file, 0, -1
	last := l.head
	e := Entry{Time: now, Kind: KindSegment, Detail: fmt.Sprintf("previous segment sealed as %s (entries %d-%d)", name, l.first, last.Seq)}
	if err := l.writeLocked(&e); err != nil {
		return fail(err)
	}
	if err := l.f.Sync(); err != nil {
		return fail(err)
	}
	if err := syncDir(dir); err != nil {
		return fail(err)
	}
	l.synced = Checkpoint{Anchor: l.head, Off: 0}
	return l.synced, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// SegmentName is the file name of a sealed segment whose first entry has
// seq first: "audit." and 20 decimal digits, ".seg", so that names sort
// like their seqs.
func SegmentName(first uint64) string { return fmt.Sprintf("audit.%020d.seg", first) }

// Segment is a sealed segment file.
type Segment struct {
	First uint64 // seq of its first entry, from its name
	Path  string
}

// Segments lists the sealed segments in dir, oldest first.
func Segments(dir string) ([]Segment, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []Segment
	for _, de := range des {
		n := de.Name()
		if len(n) != len(SegmentName(0)) || !strings.HasPrefix(n, "audit.") || !strings.HasSuffix(n, ".seg") {
			continue
		}
		first, err := strconv.ParseUint(n[len("audit."):len(n)-len(".seg")], 10, 64)
		if err != nil || SegmentName(first) != n {
			continue
		}
		out = append(out, Segment{First: first, Path: filepath.Join(dir, n)})
	}
	// os.ReadDir sorts by name, and names sort like their seqs.
	return out, nil
}

// ReadFirst returns the first entry of the log at path (ok false when the
// file is empty or missing). It checks the entry's own hash.
func ReadFirst(path string) (e Entry, ok bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return e, false, nil
	}
	if err != nil {
		return e, false, err
	}
	defer f.Close()
	return readFirst(f)
}

// FirstSeq returns the seq of the first entry of the log at path (ok false
// when the file is empty or missing) without checking that entry: Open
// uses it to find which file holds its checkpoint, and verifies only from
// there.
func FirstSeq(path string) (seq uint64, ok bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	var b [9]byte
	n, err := f.ReadAt(b[:], 0)
	switch {
	case n == 0 && (err == nil || err == io.EOF):
		return 0, false, nil
	case n < len(b):
		return 0, false, fmt.Errorf("%w: %d bytes", ErrEntry, n)
	case b[0] != version:
		return 0, false, fmt.Errorf("%w: version %d", ErrEntry, b[0])
	}
	return binary.BigEndian.Uint64(b[1:]), true, nil
}

func readFirst(r io.ReaderAt) (Entry, bool, error) {
	buf := make([]byte, MaxEntrySize)
	n, err := r.ReadAt(buf, 0)
	if n == 0 && (err == io.EOF || err == nil) {
		return Entry{}, false, nil
	}
	if err != nil && err != io.EOF {
		return Entry{}, false, err
	}
	e, _, err := Decode(buf[:n])
	if err != nil {
		return Entry{}, false, err
	}
	return e, true, nil
}

// Close syncs and closes the file.
func (l *Log) Close() error {
	_, err := l.Sync()
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ReadFile verifies the log at path against anchor and returns its entries.
func ReadFile(path string, anchor Anchor) ([]Entry, Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, Report{}, err
	}
	var out []Entry
	rep, err := Verify(bytes.NewReader(b), anchor, func(e Entry) error { out = append(out, e); return nil })
	return out, rep, err
}
