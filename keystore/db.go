package keystore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"runtime"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bbolt memory-maps the database. A truncated or damaged file can make it
// read past the end of the mapping (SIGBUS) or follow a corrupt page id; Go
// would crash the process. guard turns such faults into panics for the
// calling goroutine only, and the panics into ErrCorrupt: bad input gets an
// error, never a crash. bbolt rolls back the transaction on the way out.
func guard(fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			err = corrupt(DBFile, fmt.Errorf("database structure is damaged (%v); restore it from a backup", r))
		}
	}()
	return fn()
}

func (s *Store) view(fn func(*bolt.Tx) error) error {
	return guard(func() error { return s.db.View(fn) })
}

func (s *Store) update(fn func(*bolt.Tx) error) error {
	return guard(func() error { return s.db.Update(fn) })
}

// openSized opens path with flag (os.O_RDONLY, os.O_WRONLY) and returns
// the file, which the caller closes, and its size.
func openSized(path string, flag int) (*os.File, int64, error) {
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}

// checkBoltFile validates a bbolt file's meta pages before bbolt maps it: at
// least one meta page must carry the right magic, version and checksum, and
// the newest valid one must describe pages that the file really holds. A
// truncated file is refused here instead of faulting inside bbolt.
//
// Meta page layout (bbolt file format version 2, little-endian on the
// platforms we build for): a 16-byte page header, then magic u32, version
// u32, page size u32, flags u32, root bucket (root pgid u64, sequence u64),
// freelist pgid u64, high-water pgid u64, txid u64, checksum u64 = FNV-64a
// of the 56 bytes before it.
func checkBoltFile(path string) error {
	f, size, err := openSized(path, os.O_RDONLY)
	if err != nil {
		return err
	}
	defer f.Close()
	type meta struct {
		pageSize             uint32
		root, freelist, pgid uint64
		txid                 uint64
	}
	read := func(off int64) (meta, bool) {
		var b [16 + 64]byte
		if _, err := f.ReadAt(b[:], off); err != nil {
			return meta{}, false
		}
		m := b[16:]
		le := binary.LittleEndian
		if le.Uint32(m[0:]) != 0xED0CDAED || le.Uint32(m[4:]) != 2 {
			return meta{}, false
		}
		h := fnv.New64a()
		h.Write(m[:56])
		if h.Sum64() != le.Uint64(m[56:]) {
			return meta{}, false
		}
		return meta{pageSize: le.Uint32(m[8:]), root: le.Uint64(m[16:]), freelist: le.Uint64(m[32:]), pgid: le.Uint64(m[40:]), txid: le.Uint64(m[48:])}, true
	}
	m0, ok0 := read(0)
	pageSize := int64(os.Getpagesize())
	if ok0 {
		pageSize = int64(m0.pageSize)
	}
	m1, ok1 := read(pageSize)
	var m meta
	switch {
	case ok0 && ok1 && m1.txid > m0.txid, !ok0 && ok1:
		m = m1
	case ok0:
		m = m0
	default:
		return errors.New("no valid meta page: not a keystore database, or damaged")
	}
	switch {
	case m.pageSize < 512 || m.pageSize > 1<<16 || m.pageSize&(m.pageSize-1) != 0:
		return fmt.Errorf("implausible page size %d", m.pageSize)
	case m.pgid < 2 || m.pgid > uint64(size)/uint64(m.pageSize):
		return fmt.Errorf("the file holds %d bytes but its metadata describes %d pages of %d bytes (truncated?)", size, m.pgid, m.pageSize)
	case m.root >= m.pgid || (m.freelist >= m.pgid && m.freelist != ^uint64(0)):
		return errors.New("metadata points past the end of the file")
	}
	return nil
}

// openBolt opens a bbolt file after checkBoltFile. If bbolt still faults
// while opening, the file it opened is unreachable from here; a garbage
// collection lets the runtime close it (and release its lock).
func openBolt(path string, timeout time.Duration) (*bolt.DB, error) {
	if err := checkBoltFile(path); err != nil {
		return nil, corrupt(DBFile, err)
	}
	var db *bolt.DB
	err := guard(func() (err error) {
		db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
		return err
	})
	if errors.Is(err, ErrCorrupt) {
		runtime.GC()
		runtime.GC()
	}
	return db, err
}
