package keystore

import (
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/enigm/enigm/internal/wire"
	"github.com/enigm/enigm/keystore/internal/record"
)

func marshal(v any) ([]byte, error) { return wire.Marshal(v) }

// sealMeta wraps material (nil: tag only) under the class's wrapping key.
// It dispatches on the class to the typed seal.
func (s *Store) sealMeta(meta record.Meta, material []byte) ([]byte, error) {
	switch meta.Class {
	case ClassIdentity:
		return sealEncoded(&s.keks.identity, meta, material)
	case ClassKEM:
		return sealEncoded(&s.keks.kem, meta, material)
	case ClassSession:
		return sealEncoded(&s.keks.session, meta, material)
	case ClassBinding:
		return sealEncoded(&s.keks.binding, meta, material)
	}
	return nil, fmt.Errorf("keystore: unknown class %d", meta.Class)
}

// tombstoneMeta encodes a record without material: tagged when the class
// key is in memory, bare otherwise.
func (s *Store) tombstoneMeta(meta record.Meta) ([]byte, error) {
	switch meta.Class {
	case ClassIdentity:
		return tombstoneEncoded(&s.keks.identity, meta)
	case ClassKEM:
		return tombstoneEncoded(&s.keks.kem, meta)
	case ClassSession:
		return tombstoneEncoded(&s.keks.session, meta)
	case ClassBinding:
		return tombstoneEncoded(&s.keks.binding, meta)
	}
	return nil, fmt.Errorf("keystore: unknown class %d", meta.Class)
}

func sealEncoded[T classTag](k *kek[T], meta record.Meta, material []byte) ([]byte, error) {
	w, err := seal(k, meta, material)
	if err != nil {
		return nil, err
	}
	return record.Encode(&w.rec)
}

func tombstoneEncoded[T classTag](k *kek[T], meta record.Meta) ([]byte, error) {
	w, err := tombstone(k, meta)
	if err != nil {
		return nil, err
	}
	return record.Encode(&w.rec)
}

// openDecoded unwraps a decoded record's material, dispatching on class to
// the typed open. The caller must clear the result.
func (s *Store) openDecoded(d *record.Decoded) ([]byte, error) {
	switch d.Meta.Class {
	case ClassIdentity:
		return openAs(&s.keks.identity, d)
	case ClassKEM:
		return openAs(&s.keks.kem, d)
	case ClassSession:
		return openAs(&s.keks.session, d)
	}
	return nil, fmt.Errorf("%w: class %v has no software material", ErrUnsupported, d.Meta.Class)
}

func openAs[T classTag](k *kek[T], d *record.Decoded) ([]byte, error) {
	w, err := asWrapped[T](d)
	if err != nil {
		return nil, err
	}
	return open(k, w)
}

// readRecord reads and parses a stored record; errors name the key.
func readRecord(tx *bolt.Tx, id KeyID) (*record.Decoded, error) {
	b := tx.Bucket(bucketKeys).Get(id[:])
	if b == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	d, err := record.Parse(b)
	if err != nil {
		return nil, corrupt("key "+id.String(), err)
	}
	if string(d.Meta.ID) != string(id[:]) {
		return nil, corrupt("key "+id.String(), errors.New("record is stored under another key's id"))
	}
	return d, nil
}
