// Package keystore is Enigm's protected on-device key store.
//
// # Keys
//
// Keys are generated on the device, in four classes: device identity
// (hybrid Ed25519 + ML-DSA-65), device KEM (HPKE MLKEM768X25519), session
// keys (AES-256-GCM, TTL-bounded, memory-only unless persisted) and the
// hardware binding key (ECDSA P-256 inside the backend's hardware, absent on
// software-only stores). No API returns private key bytes: callers get
// handles ([IdentityKey], [KEMKey], [SessionKey], [BindingKey]) whose
// operations run only after a policy decision, and every decision, allow or
// deny, is written to the local hash-chained audit log before the operation
// runs; a use whose decision cannot be written is denied
// (policy.AuditUnavailable).
//
// # Protection
//
// Private material is stored only as wrapped records: AES-256-GCM under the
// class's own wrapping key, with the record's metadata as additional data.
// The four wrapping keys are sealed by a [backend.Backend] (Argon2id-derived
// key in software, TPM 2.0 sealed objects, PKCS#11 token keys, …) and are in
// memory only while the store is unlocked. Unlocking touches the backend;
// signing and decrypting afterwards do not.
//
// # Storage
//
// A store lives in a home directory (mode 0700) holding keystore.db, a bbolt
// database (mode 0600, one writer at a time, crash-safe transactions), and
// audit.log. The store refuses to open when either is accessible by others.
//
// docs/design/keystore.md describes the formats and the threat model.
package keystore

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/internal/audit"
	"github.com/enigm/enigm/keystore/internal/record"
	"github.com/enigm/enigm/lifecycle"
	"github.com/enigm/enigm/policy"
	"github.com/enigm/enigm/posture"
)

// File names inside the home directory.
const (
	DBFile    = "keystore.db"
	AuditFile = "audit.log"
)

var (
	bucketMeta = []byte("meta")
	bucketKeys = []byte("keys")
	keyHeader  = []byte("header")
	keyDevice  = []byte("device")
	keyAnchor  = []byte("audit-anchor")
)

// Class is a key class.
type Class = record.Class

// Key classes.
const (
	ClassIdentity = record.ClassIdentity
	ClassKEM      = record.ClassKEM
	ClassSession  = record.ClassSession
	ClassBinding  = record.ClassBinding
)

// Algorithm is a key algorithm.
type Algorithm = record.Algorithm

// Algorithms.
const (
	AlgHybrid    = record.AlgHybrid
	AlgEd25519   = record.AlgEd25519
	AlgXWing     = record.AlgXWing
	AlgAES256GCM = record.AlgAES256GCM
	AlgP256      = record.AlgP256
)

// ParseClass parses "identity", "kem", "session" or "binding".
func ParseClass(s string) (Class, bool) { return record.ParseClass(s) }

// ParseAlgorithm parses an algorithm name as printed by Algorithm.String.
func ParseAlgorithm(s string) (Algorithm, bool) { return record.ParseAlgorithm(s) }

// KeyID identifies a key: 16 random bytes.
type KeyID [16]byte

// String returns the id in hex.
func (id KeyID) String() string { return hex.EncodeToString(id[:]) }

// Short returns the first 12 hex digits.
func (id KeyID) Short() string { return id.String()[:12] }

func idString(b []byte) string {
	var id KeyID
	copy(id[:], b)
	return id.String()
}

// ParseKeyID parses a full 32-digit hex id.
func ParseKeyID(s string) (KeyID, error) {
	var id KeyID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("%w: %q is not a 32-digit hex key id", ErrNotFound, s)
	}
	copy(id[:], b)
	return id, nil
}

// Options configure a store.
type Options struct {
	// Backend returns the backend named in the store's header ("soft",
	// "tpm", …). It is needed to unlock; without it the store opens for
	// status, listing and revocation only.
	Backend func(name string) (backend.Backend, error)
	// Clock returns the time; nil means time.Now.
	Clock func() time.Time
	// Posture observes the OS posture; nil means posture.Linux over the
	// store's files.
	Posture posture.Provider
	// OSTrust and Attestation are optional providers.
	OSTrust     posture.OSTrustProvider
	Attestation posture.AttestationProvider
	// PostureRefresh is how often posture is observed again; 0 means 5s.
	PostureRefresh time.Duration
	// LockTimeout is how long Open waits for another process to release
	// the store; 0 means 2s.
	LockTimeout time.Duration

	// auditFile, in tests, wraps the audit log's file (to make it fail).
	auditFile func(*os.File) audit.File
}

// Store is an open keystore. It is safe for concurrent use.
type Store struct {
	home string
	opts Options
	db   *bolt.DB
	log  *audit.Log

	hdr      *record.Header
	auditRep AuditStatus

	mu      sync.Mutex // guards the fields below and serializes lifecycle writes
	be      backend.Backend
	sess    backend.Session
	keks    keks
	dev     record.Device
	live    map[KeyID]*liveKey
	session map[KeyID]*sessionEntry
	closed  bool

	stMu  sync.Mutex // serializes state snapshot writers
	state atomic.Pointer[policy.DeviceState]

	stop chan struct{}
	done chan struct{}
}

// AuditStatus tells whether the audit log verified at open.
type AuditStatus struct {
	Intact  bool
	Entries uint64
	// Problem describes a broken or truncated log; the broken file was
	// kept as Preserved and a new log started.
	Problem   string
	Preserved string
	TornBytes int
}

func (s *Store) now() time.Time {
	if s.opts.Clock != nil {
		return s.opts.Clock()
	}
	return time.Now()
}

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
			return nil, fmt.Errorf("%w: %s does not exist (run `enigm keystore init`)", ErrNotInitialized, home)
		}
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(home, DBFile)); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: no %s in %s (run `enigm keystore init`)", ErrNotInitialized, DBFile, home)
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
	var anchor audit.Anchor
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
func (s *Store) openAudit(anchor audit.Anchor) error {
	path := filepath.Join(s.home, AuditFile)
	if _, err := os.Stat(path); err == nil {
		if err := checkPrivate(path, false); err != nil {
			return err
		}
	}
	l, rep, err := audit.OpenWith(path, anchor, s.opts.auditFile)
	if err == nil {
		s.log = l
		s.auditRep = AuditStatus{Intact: true, Entries: rep.Entries, TornBytes: rep.TornBytes}
		return nil
	}
	if !errors.Is(err, audit.ErrBroken) && !errors.Is(err, audit.ErrTruncated) && !errors.Is(err, audit.ErrEntry) {
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

func parseAnchor(b []byte) audit.Anchor {
	var a audit.Anchor
	if len(b) == 40 {
		a.Seq = binary.BigEndian.Uint64(b)
		copy(a.Hash[:], b[8:])
	}
	return a
}

// anchor makes the audit log durable and records its head in the database.
func (s *Store) anchor() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commitLocked(nil)
}

// commitLocked is the keystore's write-ahead rule: it appends entries to the
// audit log and makes the log durable first, then runs fn and records the
// log's head (the anchor) in the same database transaction. A crash between
// the two leaves log entries describing a change that did not commit, never
// a committed change the log lacks, and the anchor always names an entry
// the log holds. If fn fails, an "aborted" entry says so.
//
// An entry that cannot be written (or a log that cannot be made durable)
// refuses the change: nothing changes without its entries on record.
func (s *Store) commitLocked(fn func(tx *bolt.Tx) error, entries ...audit.Entry) error {
	for i, e := range entries {
		if _, err := s.log.Append(e); err != nil {
			if i > 0 {
				s.log.Append(audit.Entry{Time: s.now(), Kind: audit.KindAborted, Detail: fmt.Sprintf("the %d preceding entries did not commit: %v", i, err)})
			}
			return fmt.Errorf("keystore: the audit log cannot be written (free disk space or fix %s, then retry): %w", filepath.Join(s.home, AuditFile), err)
		}
	}
	h, err := s.log.Sync()
	if err != nil {
		return fmt.Errorf("keystore: the audit log cannot be made durable (fix the disk, then open the store again): %w", err)
	}
	b := make([]byte, 40)
	binary.BigEndian.PutUint64(b, h.Seq)
	copy(b[8:], h.Hash[:])
	err = s.update(func(tx *bolt.Tx) error {
		if fn != nil {
			if err := fn(tx); err != nil {
				return err
			}
		}
		m, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		return m.Put(keyAnchor, b)
	})
	if err != nil && len(entries) > 0 {
		s.log.Append(audit.Entry{Time: s.now(), Kind: audit.KindAborted, Detail: fmt.Sprintf("the %d preceding entries did not commit: %v", len(entries), err)})
	}
	return err
}

// setState publishes a new device-state snapshot.
func (s *Store) setState(f func(*policy.DeviceState)) {
	s.stMu.Lock()
	defer s.stMu.Unlock()
	next := *s.state.Load()
	f(&next)
	s.state.Store(&next)
}

// State returns the current device-state snapshot.
func (s *Store) State() policy.DeviceState { return *s.state.Load() }

func (s *Store) refreshPosture() {
	p := s.opts.Posture.Posture()
	var ost policy.OSTrust
	var att policy.Attestation
	if s.opts.OSTrust != nil {
		ost = s.opts.OSTrust.OSTrust()
	}
	if s.opts.Attestation != nil {
		att = s.opts.Attestation.Attestation()
	}
	s.setState(func(st *policy.DeviceState) { st.Posture, st.OSTrust, st.Attestation = p, ost, att })
}

// RefreshPosture observes posture, OS Trust and attestation now.
func (s *Store) RefreshPosture() { s.refreshPosture() }

// auditSyncEvery is how often the audit log is fsynced when entries were
// written since the last fsync (group commit). Every entry reaches the
// operating system before its use returns; this bounds what power loss or
// an OS crash can take: the entries of the last auditSyncEvery.
const auditSyncEvery = 200 * time.Millisecond

func (s *Store) startRefresher() {
	s.refreshPosture()
	every := s.opts.PostureRefresh
	if every <= 0 {
		every = 5 * time.Second
	}
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		fsync := time.NewTicker(auditSyncEvery)
		defer fsync.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				s.refreshPosture()
			case <-fsync.C:
				s.log.Sync() // a failure is sticky: the next use is denied with audit_unavailable
			}
		}
	}()
}

// Authenticate records a user authentication (method e.g. "passphrase",
// "biometric") at the current time.
func (s *Store) Authenticate(method string) {
	now := s.now()
	s.setState(func(st *policy.DeviceState) { st.LastAuth, st.AuthMethod = now, method })
}

// SetAppAuthorized records whether the app session (or the calling process)
// is authorized.
func (s *Store) SetAppAuthorized(ok bool) {
	s.setState(func(st *policy.DeviceState) { st.AppAuthorized = ok })
}

// Unlock opens the backend with secret and brings the class wrapping keys
// into memory. It records a user authentication with method "passphrase".
func (s *Store) Unlock(ctx context.Context, secret []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	now := s.now()
	if s.dev.Revoked != 0 {
		return ErrDeviceRevoked
	}
	if s.sess != nil {
		if err := s.commitLocked(nil, audit.Entry{Time: now, Kind: audit.KindUnlock, Detail: "re-authenticated"}); err != nil {
			return err
		}
		s.markUnlocked(now, "passphrase")
		return nil
	}
	if s.be == nil {
		return fmt.Errorf("%w: the %s backend is not available in this build or on this machine", backend.ErrUnavailable, s.hdr.Backend)
	}
	sess, err := s.be.Open(ctx, s.hdr.State, secret)
	if err != nil {
		s.commitLocked(nil, audit.Entry{Time: now, Kind: audit.KindUnlockFailed, Detail: failReason(err)})
		if errors.Is(err, backend.ErrBadSecret) {
			return fmt.Errorf("%w: %w", ErrBadPassphrase, err)
		}
		return fmt.Errorf("keystore: unlocking the %s backend: %w", s.hdr.Backend, err)
	}
	var k keks
	for _, c := range []Class{ClassIdentity, ClassKEM, ClassSession, ClassBinding} {
		key, err := sess.Unseal(ctx, kekLabel(c), s.hdr.SealedKE[c])
		if err == nil && len(key) != 32 {
			clear(key)
			err = fmt.Errorf("%w: wrapping key of %d bytes", backend.ErrSealedData, len(key))
		}
		if err != nil {
			k.clear()
			sess.Close()
			s.commitLocked(nil, audit.Entry{Time: now, Kind: audit.KindUnlockFailed, Detail: failReason(err)})
			switch {
			case errors.Is(err, backend.ErrBadSecret):
				return fmt.Errorf("%w: %w", ErrBadPassphrase, err)
			case errors.Is(err, backend.ErrGate), errors.Is(err, backend.ErrLockedOut), errors.Is(err, backend.ErrUnavailable):
				return fmt.Errorf("keystore: the %s backend refused to unseal the %v wrapping key: %w", s.hdr.Backend, c, err)
			}
			return corrupt("header: sealed "+c.String()+" wrapping key", err)
		}
		k.setClass(c, key)
	}
	// An unlock that cannot be put on record does not happen.
	if err := s.commitLocked(nil, audit.Entry{Time: now, Kind: audit.KindUnlock, Detail: "backend=" + s.hdr.Backend}); err != nil {
		k.clear()
		sess.Close()
		return err
	}
	s.sess, s.keks = sess, k
	s.markUnlocked(now, "passphrase")
	return nil
}

func failReason(err error) string {
	switch {
	case errors.Is(err, backend.ErrBadSecret):
		return "wrong secret"
	case errors.Is(err, backend.ErrLockedOut):
		return "locked out"
	case errors.Is(err, backend.ErrSealedData):
		return "sealed data does not open"
	case errors.Is(err, backend.ErrUnavailable):
		return "backend unavailable"
	case errors.Is(err, backend.ErrGate):
		return "hardware gate not satisfied"
	}
	return "backend error"
}

func (s *Store) markUnlocked(now time.Time, method string) {
	s.setState(func(st *policy.DeviceState) {
		st.Unlocked, st.LastAuth, st.AuthMethod = true, now, method
	})
}

// Lock forgets the wrapping keys and every unwrapped key, and ends the
// backend session. Memory-only session keys are destroyed.
func (s *Store) Lock() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lockLocked("locked")
}

func (s *Store) lockLocked(why string) error {
	if s.sess == nil {
		return nil
	}
	s.setState(func(st *policy.DeviceState) { st.Unlocked = false })
	for _, lk := range s.live {
		lk.unload()
	}
	now := s.now()
	for id, e := range s.session {
		// Memory-only session keys do not survive a lock.
		e.destroy()
		delete(s.session, id)
		if lk := s.live[id]; lk != nil {
			ev := lifecycle.Event{Kind: lifecycle.Retire, Cause: lifecycle.Expiry, At: now}
			lk.mu.Lock()
			if life, err := lk.life.Apply(ev); err == nil {
				lk.life = life
			}
			lk.destroyLocked()
			lk.dead = true
			lk.mu.Unlock()
			s.log.Append(eventEntry(id, ev, "memory-only session key destroyed at lock"))
		}
	}
	s.keks.clear()
	err := s.sess.Close()
	s.sess = nil
	if aerr := s.commitLocked(nil, audit.Entry{Time: s.now(), Kind: audit.KindLock, Detail: why}); err == nil {
		err = aerr
	}
	return err
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

// Home returns the home directory.
func (s *Store) Home() string { return s.home }

// DeviceID returns the device id.
func (s *Store) DeviceID() [16]byte {
	var d [16]byte
	copy(d[:], s.hdr.Device)
	return d
}

// Status describes the store.
type Status struct {
	Backend     string
	Protection  backend.Level
	Available   bool // the backend can be reached from this process
	Locked      bool
	Revoked     bool
	RevokedAt   time.Time
	Association policy.Association
	Account     []byte
	Device      [16]byte
	Created     time.Time
	Keys        map[lifecycle.State]int
	Audit       AuditStatus
	AuditHead   uint64
	Gates       []backend.Gate
	Attestation []string // evidence types the backend can produce
	Posture     policy.Posture
}

// Status reports the store's state.
func (s *Store) Status() (Status, error) {
	s.mu.Lock()
	st := Status{
		Backend: s.hdr.Backend, Protection: backend.Level(s.hdr.Level), Available: s.be != nil,
		Locked: s.sess == nil, Revoked: s.dev.Revoked != 0, Association: policy.Association(s.dev.Association),
		Account: append([]byte(nil), s.dev.Account...), Device: s.DeviceID(), Created: record.Time(s.hdr.Created),
		Keys: map[lifecycle.State]int{}, Audit: s.auditRep, AuditHead: s.log.Head().Seq,
		Posture: s.state.Load().Posture,
	}
	if s.dev.Revoked != 0 {
		st.RevokedAt = record.Time(s.dev.Revoked)
	}
	if s.be != nil {
		caps := s.be.Capabilities()
		st.Gates, st.Attestation = caps.HardwareGates, caps.Attestation
	}
	s.mu.Unlock()
	infos, err := s.List()
	if err != nil {
		return st, err
	}
	for _, k := range infos {
		st.Keys[k.State]++
	}
	return st, nil
}

// SetAssociation records the device's membership in its account (set by
// the device agent from the verified chain).
func (s *Store) SetAssociation(a policy.Association, account []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dev.Revoked != 0 {
		return ErrDeviceRevoked
	}
	dev := s.dev
	dev.Association = uint8(a)
	dev.Account = append([]byte(nil), account...)
	if err := s.writeDevice(&dev, audit.Entry{Time: s.now(), Kind: audit.KindDevice, Detail: "association=" + a.String()}); err != nil {
		return err
	}
	s.dev = dev
	s.setState(func(st *policy.DeviceState) { st.Association = a })
	return nil
}

// SetPolicyOverlay tightens the requirements of every key of class c (an
// organisation's policy). It can never loosen a key's own requirements.
func (s *Store) SetPolicyOverlay(c Class, req policy.Requirements) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	dev := s.dev
	dev.Overlay = map[record.Class]record.Policy{}
	for k, v := range s.dev.Overlay {
		dev.Overlay[k] = v
	}
	dev.Overlay[c] = record.FromRequirements(req)
	if err := s.writeDevice(&dev, audit.Entry{Time: s.now(), Kind: audit.KindDevice, Detail: "policy overlay for " + c.String()}); err != nil {
		return err
	}
	s.dev = dev
	for _, lk := range s.live {
		if lk.class == c {
			lk.mu.Lock()
			lk.req = lk.base.Tighten(req)
			lk.mu.Unlock()
		}
	}
	return nil
}

func (s *Store) writeDevice(dev *record.Device, e audit.Entry) error {
	if err := dev.Validate(); err != nil {
		return err
	}
	return s.commitLocked(func(tx *bolt.Tx) error { return putDevice(tx.Bucket(bucketMeta), dev) }, e)
}

func putDevice(m *bolt.Bucket, dev *record.Device) error {
	b, err := marshal(dev)
	if err != nil {
		return err
	}
	return m.Put(keyDevice, b)
}
