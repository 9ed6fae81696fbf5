package keystore

import (
	"fmt"
	"runtime/debug"

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
