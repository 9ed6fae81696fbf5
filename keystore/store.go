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
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/keystore/internal/audit"
	"github.com/enigm/enigm/keystore/internal/record"
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
	// keyRetention records the audit entries deleted by retention
	// (PruneAudit): see parseRetention.
	keyRetention = []byte("audit-retention")
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
	// AlgCheckpointEd25519 and AlgCheckpointMLDSA44 are identity keys that
	// sign transparency-log checkpoints only ([IdentityKey.CheckpointSigner]).
	AlgCheckpointEd25519 = record.AlgCheckpointEd25519
	AlgCheckpointMLDSA44 = record.AlgCheckpointMLDSA44
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
	// AuditSegmentBytes is the size past which the active audit log is
	// sealed as a segment at the next commit (a lifecycle event, unlock,
	// lock or close); 0 means DefaultAuditSegmentBytes, a negative value
	// never rotates.
	AuditSegmentBytes int64

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

// AuditStatus tells whether the audit log verified at open. Open verifies
// the entries from the last checkpoint on (VerifiedFrom); Store.VerifyAudit
// verifies the whole log.
type AuditStatus struct {
	Intact  bool
	Entries uint64 // entries verified at open
	// VerifiedFrom is the seq open verified from: the last checkpoint
	// (whose entry it checked against the database), or 1.
	VerifiedFrom uint64
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
	h, err := s.log.SyncCheckpoint()
	if err != nil {
		return fmt.Errorf("keystore: the audit log cannot be made durable (fix the disk, then open the store again): %w", err)
	}
	if limit := s.segmentBytes(); limit > 0 && s.log.Size() >= limit {
		// Seal the active file as a segment; the checkpoint recorded
		// below names the new file's first entry. A failure before the
		// rename leaves the log as it was: the change goes on, and the
		// next commit tries again.
		cp, rerr := s.log.Rotate(s.now())
		switch {
		case rerr == nil:
			h = cp
		case errors.Is(rerr, audit.ErrUnavailable):
			return fmt.Errorf("keystore: sealing an audit segment (fix %s, then open the store again): %w", s.home, rerr)
		}
	}
	b := encodeAnchor(h)
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

// Home returns the home directory.
func (s *Store) Home() string { return s.home }

// DeviceID returns the device id.
func (s *Store) DeviceID() [16]byte {
	var d [16]byte
	copy(d[:], s.hdr.Device)
	return d
}

func (s *Store) usableLocked() error {
	switch {
	case s.closed:
		return ErrClosed
	case s.dev.Revoked != 0:
		return ErrDeviceRevoked
	case s.sess == nil:
		return ErrLocked
	}
	return nil
}
