package keystore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/enigm/enigm/keystore/internal/audit"
	"github.com/enigm/enigm/keystore/internal/record"
	"github.com/enigm/enigm/lifecycle"
	"github.com/enigm/enigm/policy"
)

// RevokeDevice is what a device does when it learns it was revoked: every
// key moves to revoked and its material is destroyed, the backend destroys
// its hardware objects, the database is compacted into a fresh file and the
// old file overwritten, and from then on every key use is denied with
// reason "revoked". It works while locked and cannot be undone.
func (s *Store) RevokeDevice(ctx context.Context, why string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.dev.Revoked != 0 {
		return nil
	}
	now := s.now()
	ev := lifecycle.Event{Kind: lifecycle.Revoke, Cause: lifecycle.Revocation, At: now}
	dev := s.dev
	dev.Revoked = now.UnixMilli()
	dev.Association = uint8(policy.Unassociated)
	// Build every tombstone first, then write them all, the device entry
	// and the audit entries in one commit.
	type change struct {
		key []byte
		rec []byte // nil: delete (a damaged record cannot become a tombstone)
	}
	var changes []change
	entries := []audit.Entry{{Time: now, Kind: audit.KindDevice, Detail: "device revoked: " + why}}
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketKeys).ForEach(func(k, v []byte) error {
			key := append([]byte(nil), k...)
			d, err := record.Parse(v)
			if err != nil {
				changes = append(changes, change{key: key})
				return nil
			}
			if lifecycle.State(d.Meta.State) == lifecycle.Revoked {
				return nil
			}
			meta := d.Meta
			life, err := meta.Lifecycle().Apply(ev)
			if err != nil {
				return err
			}
			meta.SetLifecycle(life)
			rec, err := s.tombstoneMeta(meta)
			if err != nil {
				return err
			}
			changes = append(changes, change{key, rec})
			var id KeyID
			copy(id[:], k)
			entries = append(entries, eventEntry(id, ev, "device revoked"))
			return nil
		})
	})
	if err == nil {
		err = s.commitLocked(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketKeys)
			for _, c := range changes {
				var err error
				if c.rec == nil {
					err = b.Delete(c.key)
				} else {
					err = b.Put(c.key, c.rec)
				}
				if err != nil {
					return err
				}
			}
			return putDevice(tx.Bucket(bucketMeta), &dev)
		}, entries...)
	}
	if err != nil {
		return fmt.Errorf("keystore: revoking device: %w", err)
	}
	s.dev = dev
	s.setState(func(st *policy.DeviceState) { st.Revoked, st.Association = true, policy.Unassociated })
	for id, e := range s.session {
		e.destroy()
		delete(s.session, id)
	}
	for _, lk := range s.live {
		lk.mu.Lock()
		lk.destroyLocked()
		lk.dead = true
		lk.life.State = lifecycle.Revoked
		lk.mu.Unlock()
	}
	// Destroy before locking: some hardware (PKCS#11) can remove private
	// objects only while a session is logged in.
	var errs error
	if s.be != nil {
		if err := s.be.Destroy(ctx, s.hdr.State); err != nil {
			errs = errors.Join(errs, fmt.Errorf("keystore: destroying %s backend objects: %w", s.hdr.Backend, err))
		}
	} else {
		errs = errors.Join(errs, fmt.Errorf("keystore: the %s backend is unavailable here: its hardware objects were not destroyed", s.hdr.Backend))
	}
	if err := s.lockLocked("device revoked"); err != nil {
		errs = errors.Join(errs, err)
	}
	if err := s.compactLocked(); err != nil {
		errs = errors.Join(errs, err)
	}
	errs = errors.Join(errs, s.commitLocked(nil))
	return errs
}

// compactLocked rewrites the database into a fresh file so that freed pages
// holding destroyed records do not survive, then overwrites the old file's
// contents. On flash storage and copy-on-write file systems overwriting is
// best effort; the hardware backends' Destroy is what makes residue useless.
func (s *Store) compactLocked() error {
	path := filepath.Join(s.home, DBFile)
	tmp := path + ".compact"
	os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, nil)
	if err != nil {
		return fmt.Errorf("keystore: compacting: %w", err)
	}
	if err := bolt.Compact(dst, s.db, 1<<20); err != nil {
		dst.Close()
		os.Remove(tmp)
		return fmt.Errorf("keystore: compacting: %w", err)
	}
	dst.Close()
	old, size, err := openSized(path, os.O_WRONLY)
	if err != nil {
		return err
	}
	defer old.Close()
	s.db.Close()
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("keystore: replacing the compacted database: %w", err)
	}
	if _, err := io.CopyN(old, zeroReader{}, size); err != nil {
		return fmt.Errorf("keystore: overwriting the old database: %w", err)
	}
	old.Sync()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return fmt.Errorf("keystore: reopening after compaction: %w", err)
	}
	s.db = db
	return nil
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }
