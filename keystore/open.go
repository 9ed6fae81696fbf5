package keystore

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/keystore/internal/audit"
	"github.com/enigm/enigm/keystore/internal/record"
	"github.com/enigm/enigm/lifecycle"
	"github.com/enigm/enigm/policy"
	"github.com/enigm/enigm/posture"
)

// checkPrivate refuses paths that others can access or that another user
// owns.
func checkPrivate(path string, wantDir bool) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if st.IsDir() != wantDir {
		return fmt.Errorf("%w: %s is not a %s", ErrPermissions, path, map[bool]string{true: "directory", false: "regular file"}[wantDir])
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		want := map[bool]string{true: "700", false: "600"}[wantDir]
		return fmt.Errorf("%w: %s has mode %04o; others must have no access (chmod %s %s)", ErrPermissions, path, perm, want, path)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Geteuid() {
		return fmt.Errorf("%w: %s is owned by uid %d, not by this user (uid %d)", ErrPermissions, path, sys.Uid, os.Geteuid())
	}
	return nil
}

// Exists reports whether home holds a keystore.
func Exists(home string) bool {
	_, err := os.Stat(filepath.Join(home, DBFile))
	return err == nil
}

// InitOptions configure Init.
type InitOptions struct {
	Options
	// Cause of the binding key's creation; 0 means lifecycle.AccountSetup.
	Cause lifecycle.Cause
}

// Init creates a keystore in home protected by b and secret, and returns it
// unlocked. home is created with mode 0700 if missing; an existing keystore
// is never overwritten (ErrExists).
func Init(ctx context.Context, home string, b backend.Backend, secret []byte, opts InitOptions) (st *Store, err error) {
	if len(secret) == 0 {
		return nil, errors.New("keystore: the passphrase must not be empty")
	}
	if err := os.Mkdir(home, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("keystore: creating %s: %w", home, err)
	}
	if err := checkPrivate(home, true); err != nil {
		return nil, err
	}
	dbPath := filepath.Join(home, DBFile)
	f, err := os.OpenFile(dbPath, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("%w: %s exists", ErrExists, dbPath)
	}
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	f.Close()
	// From here on, a failure removes what was created so that init can
	// simply be run again.
	defer func() {
		if err != nil {
			if st != nil {
				st.Close()
			}
			os.Remove(dbPath)
			os.Remove(filepath.Join(home, AuditFile))
		}
	}()
	os.Remove(filepath.Join(home, AuditFile)) // a leftover from an interrupted init

	caps := b.Capabilities()
	if caps.MaxSealSize < 32 {
		return nil, fmt.Errorf("%w: backend %s cannot seal a 32-byte wrapping key", ErrUnsupported, caps.Name)
	}
	state, err := b.Provision(ctx, secret)
	if err != nil {
		return nil, fmt.Errorf("keystore: provisioning %s backend: %w", caps.Name, err)
	}
	// Hardware resources are scarce: a failed init gives back what it
	// provisioned.
	defer func() {
		if err != nil {
			b.Destroy(context.WithoutCancel(ctx), state)
		}
	}()
	sess, err := b.Open(ctx, state, secret)
	if err != nil {
		return nil, fmt.Errorf("keystore: opening %s backend: %w", caps.Name, err)
	}
	hdr := &record.Header{Version: record.Version, Device: make([]byte, 16), Backend: caps.Name,
		State: state, Level: string(caps.Level), SealedKE: map[record.Class][]byte{}}
	rand.Read(hdr.Device)
	var k keks
	for _, c := range []Class{ClassIdentity, ClassKEM, ClassSession, ClassBinding} {
		key := make([]byte, 32)
		rand.Read(key)
		sealed, err := sess.Seal(ctx, kekLabel(c), key)
		if err != nil {
			clear(key)
			k.clear()
			sess.Close()
			return nil, fmt.Errorf("keystore: sealing the %v wrapping key: %w", c, err)
		}
		hdr.SealedKE[c] = sealed
		k.setClass(c, key)
	}
	now := time.Now()
	if opts.Clock != nil {
		now = opts.Clock()
	}
	hdr.Created = now.UnixMilli()
	hb, err := wireHeader(hdr)
	if err != nil {
		sess.Close()
		k.clear()
		return nil, err
	}
	dev := record.Device{Version: record.Version, Association: uint8(policy.Unassociated)}
	s, err := openDB(home, opts.Options, true)
	if err != nil {
		sess.Close()
		k.clear()
		return nil, err
	}
	st = s
	err = s.commitLocked(func(tx *bolt.Tx) error {
		m, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(bucketKeys); err != nil {
			return err
		}
		if err := m.Put(keyHeader, hb); err != nil {
			return err
		}
		return putDevice(m, &dev)
	}, audit.Entry{Time: now, Kind: audit.KindInit, Detail: fmt.Sprintf("backend=%s level=%s device=%x", caps.Name, caps.Level, hdr.Device)})
	if err != nil {
		sess.Close()
		k.clear()
		return nil, fmt.Errorf("keystore: writing header: %w", err)
	}
	s.hdr, s.dev, s.be, s.sess, s.keks = hdr, dev, b, sess, k
	s.markUnlocked(now, "passphrase")
	if caps.Holds(backend.AlgP256) {
		cause := opts.Cause
		if cause == 0 {
			cause = lifecycle.AccountSetup
		}
		if _, err := s.Generate(ClassBinding, GenerateOptions{Cause: cause, Activate: true}); err != nil {
			return nil, fmt.Errorf("keystore: creating the hardware binding key: %w", err)
		}
	}
	s.startRefresher()
	return s, nil
}

func (k *keks) setClass(c Class, key []byte) {
	switch c {
	case ClassIdentity:
		k.identity.set(key)
	case ClassKEM:
		k.kem.set(key)
	case ClassSession:
		k.session.set(key)
	case ClassBinding:
		k.binding.set(key)
	}
}

func wireHeader(h *record.Header) ([]byte, error) {
	if err := h.Validate(); err != nil {
		return nil, err
	}
	return marshal(h)
}

// Open opens the keystore in home, locked.
func Open(home string, opts Options) (*Store, error) {
	if err := checkPrivate(home, true); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s does not exist", ErrNotInitialized, home)
		}
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(home, DBFile)); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: no %s in %s", ErrNotInitialized, DBFile, home)
	}
	s, err := openDB(home, opts, false)
	if err != nil {
		return nil, err
	}
	err = s.view(func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		if m == nil || tx.Bucket(bucketKeys) == nil {
			return corrupt("store", errors.New("buckets missing (an interrupted init? remove the home directory's keystore.db and run init again)"))
		}
		hdr, err := record.ParseHeader(m.Get(keyHeader))
		if err != nil {
			return corrupt("header", err)
		}
		dev, err := record.ParseDevice(m.Get(keyDevice))
		if err != nil {
			return corrupt("device entry", err)
		}
		s.hdr, s.dev = hdr, *dev
		return nil
	})
	if err != nil {
		s.Close()
		return nil, err
	}
	if s.opts.Backend != nil {
		if b, err := s.opts.Backend(s.hdr.Backend); err == nil {
			s.be = b
		}
	}
	s.setState(func(st *policy.DeviceState) {
		st.Association = policy.Association(s.dev.Association)
		st.Revoked = s.dev.Revoked != 0
	})
	s.startRefresher()
	s.Maintain()
	return s, nil
}

// openDB opens the database and the audit log.
func openDB(home string, opts Options, creating bool) (*Store, error) {
	dbPath := filepath.Join(home, DBFile)
	if err := checkPrivate(dbPath, false); err != nil {
		return nil, err
	}
	timeout := opts.LockTimeout
	if timeout == 0 {
		timeout = 2 * time.Second
	}
	var db *bolt.DB
	var err error
	if creating {
		db, err = bolt.Open(dbPath, 0o600, &bolt.Options{Timeout: timeout})
	} else {
		db, err = openBolt(dbPath, timeout)
	}
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s is locked by another process (close it, or wait)", ErrInUse, dbPath)
	}
	if err != nil {
		if errors.Is(err, ErrCorrupt) {
			return nil, err
		}
		return nil, corrupt(DBFile, err)
	}
	s := &Store{home: home, opts: opts, db: db, live: map[KeyID]*liveKey{}, session: map[KeyID]*sessionEntry{}}
	if s.opts.Posture == nil {
		s.opts.Posture = &posture.Linux{Paths: []string{home, dbPath, filepath.Join(home, AuditFile)}}
	}
	s.state.Store(&policy.DeviceState{})
	var anchor audit.Checkpoint
	if !creating {
		// Walk the whole page structure once: a damaged file is refused
		// here, with nothing written, instead of failing half-way later.
		err := s.view(func(tx *bolt.Tx) error {
			// A file shorter than its own metadata claims (truncated) would
			// fault on access: refuse it first.
			if st, err := os.Stat(dbPath); err != nil || st.Size() < tx.Size() {
				return fmt.Errorf("the file is shorter than its metadata says (truncated?)")
			}
			// Then touch every page this goroutine (guarded) can reach.
			err := tx.ForEach(func(name []byte, b *bolt.Bucket) error {
				return b.ForEach(func(k, v []byte) error { return nil })
			})
			if err != nil {
				return err
			}
			if m := tx.Bucket(bucketMeta); m != nil {
				anchor = parseAnchor(m.Get(keyAnchor))
			}
			return nil
		})
		if err != nil {
			db.Close()
			return nil, corrupt(DBFile, err)
		}
	}
	if err := s.openAudit(anchor); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// openAudit opens the audit log. A log that fails verification is kept
// under another name and a new log is started whose first entry says so:
// keys stay usable, and the break is visible in Status and in the log.
//
// With a checkpoint (the anchor with its entry's offset, recorded at every
// commit) only the entries from the anchor on are verified, so the cost of
// opening follows what was written since the last commit, not the log's
// history; VerifyAudit checks the whole log. An anchor recorded before
// checkpoints (no offset) is verified from the first entry, once.
func (s *Store) openAudit(anchor audit.Checkpoint) error {
	path := filepath.Join(s.home, AuditFile)
	if _, err := os.Stat(path); err == nil {
		if err := checkPrivate(path, false); err != nil {
			return err
		}
	}
	var l *audit.Log
	var rep audit.Report
	var err error
	switch {
	case anchor.Seq > 0 && anchor.Off >= 0:
		l, rep, err = audit.OpenFrom(path, anchor, s.opts.auditFile)
		if err != nil && isChainErr(err) {
			// The checkpoint's entry is in the active file unless a
			// rotation was interrupted before its commit recorded the new
			// file's: then the active file is empty or starts after it,
			// and the sealed segments hold it.
			if first, ok, ferr := audit.FirstSeq(path); ferr == nil && (!ok || first > anchor.Seq) {
				if segs, serr := audit.Segments(s.home); serr == nil && len(segs) > 0 {
					l, rep, err = s.openChained(anchor)
				}
			}
		}
	default:
		var segs []audit.Segment
		if segs, err = audit.Segments(s.home); err != nil {
			return fmt.Errorf("keystore: audit log: %w", err)
		}
		if len(segs) == 0 {
			l, rep, err = audit.OpenWith(path, anchor.Anchor, s.opts.auditFile)
			break
		}
		// An anchor without an offset next to segments (a database
		// edited by hand): verify everything, then continue the chain.
		var broken error
		if _, broken, err = s.walkAudit(anchor.Anchor, nil); err == nil {
			err = broken
		}
		if err == nil {
			l, rep, err = s.openChained(audit.Checkpoint{Off: -1})
		}
	}
	if err == nil {
		s.log = l
		s.auditRep = AuditStatus{Intact: true, Entries: rep.Entries, VerifiedFrom: rep.From, TornBytes: rep.TornBytes}
		return nil
	}
	if !isChainErr(err) {
		return fmt.Errorf("keystore: audit log: %w", err)
	}
	preserved := fmt.Sprintf("%s.broken-%d", path, time.Now().UnixNano())
	if rerr := os.Rename(path, preserved); rerr != nil {
		return fmt.Errorf("keystore: audit log is broken (%v) and could not be set aside: %w", err, rerr)
	}
	l, _, err2 := audit.Open(path, audit.Anchor{})
	if err2 != nil {
		return fmt.Errorf("keystore: starting a new audit log: %w", err2)
	}
	s.log = l
	s.auditRep = AuditStatus{Intact: false, Problem: err.Error(), Preserved: preserved}
	return s.commitLocked(nil, audit.Entry{Time: s.now(), Kind: audit.KindRecovered, Detail: fmt.Sprintf("previous log failed verification (%v); kept as %s", err, filepath.Base(preserved))})
}

// The anchor record in the database: seq (8) || hash (32) || offset of
// the anchored entry in audit.log (8). Records written before checkpoints
// have no offset (40 bytes): parsed with Off -1, verified from the start.
func parseAnchor(b []byte) audit.Checkpoint {
	a := audit.Checkpoint{Off: -1}
	if len(b) == 40 || len(b) == 48 {
		a.Seq = binary.BigEndian.Uint64(b)
		copy(a.Hash[:], b[8:40])
	}
	if len(b) == 48 {
		a.Off = int64(binary.BigEndian.Uint64(b[40:]))
	}
	return a
}

func encodeAnchor(a audit.Checkpoint) []byte {
	b := make([]byte, 48)
	binary.BigEndian.PutUint64(b, a.Seq)
	copy(b[8:40], a.Hash[:])
	binary.BigEndian.PutUint64(b[40:], uint64(a.Off))
	return b
}

// anchor makes the audit log durable and records its head in the database.
func (s *Store) anchor() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commitLocked(nil)
}

// Close locks the store and releases it.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	err := s.lockLocked("closed")
	s.closed = true
	s.mu.Unlock()
	if s.stop != nil {
		close(s.stop)
		<-s.done
	}
	if s.log != nil {
		if aerr := s.anchor(); err == nil && s.db != nil {
			err = aerr
		}
		s.log.Close()
	}
	if s.db != nil {
		if cerr := s.db.Close(); err == nil {
			err = cerr
		}
	}
	return err
}
