package keystore

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"fmt"

	"github.com/enigm/enigm/keystore/internal/record"
)

// Class separation in the type system.
//
// Each class has its own wrapping key, a kek[T] whose tag type T names the
// class, and wrapped material of a class is a *wrapped[T]. The only
// functions that seal and open material take a *kek[T] and a *wrapped[T] of
// the same T, so passing the identity class's key for a session record does
// not compile. keystore_compile_test.go proves it with the compiler.
// The class is also in every record's authenticated metadata and checked at
// run time, for records read back from disk.

type classTag interface{ class() record.Class }

type identityTag struct{}
type kemTag struct{}
type sessionTag struct{}
type bindingTag struct{}

func (identityTag) class() record.Class { return record.ClassIdentity }
func (kemTag) class() record.Class      { return record.ClassKEM }
func (sessionTag) class() record.Class  { return record.ClassSession }
func (bindingTag) class() record.Class  { return record.ClassBinding }

// kek is one class's wrapping key, present only while unlocked. It must be
// kept secret.
type kek[T classTag] struct {
	key []byte // 32 bytes, nil when locked
}

func (k *kek[T]) set(b []byte) { k.clear(); k.key = b }

func (k *kek[T]) clear() {
	clear(k.key)
	k.key = nil
}

func (k *kek[T]) aead() (cipher.AEAD, error) {
	if k.key == nil {
		return nil, ErrLocked
	}
	blk, err := aes.NewCipher(k.key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(blk)
}

// wrapped is a record of class T: its metadata and its sealed form.
type wrapped[T classTag] struct {
	meta record.Meta
	rec  record.Record
}

// asWrapped checks at run time that a decoded record belongs to class T.
func asWrapped[T classTag](d *record.Decoded) (*wrapped[T], error) {
	var t T
	if d.Meta.Class != t.class() {
		return nil, fmt.Errorf("%w: key is %v, not %v", ErrWrongClass, d.Meta.Class, t.class())
	}
	return &wrapped[T]{meta: d.Meta, rec: d.Raw}, nil
}

// seal wraps material (nil for keys without software material: a tag only)
// under k with meta as additional data.
func seal[T classTag](k *kek[T], meta record.Meta, material []byte) (*wrapped[T], error) {
	var t T
	if meta.Class != t.class() {
		return nil, fmt.Errorf("%w: sealing a %v record under the %v wrapping key", ErrWrongClass, meta.Class, t.class())
	}
	aead, err := k.aead()
	if err != nil {
		return nil, err
	}
	mb, err := record.EncodeMeta(&meta)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, record.NonceSize)
	rand.Read(nonce)
	return &wrapped[T]{meta: meta, rec: record.Record{Meta: mb, Nonce: nonce, Sealed: aead.Seal(nil, nonce, material, record.AD(mb))}}, nil
}

// tombstone is a record without material, sealed (tag only) when k is
// available, bare otherwise.
func tombstone[T classTag](k *kek[T], meta record.Meta) (*wrapped[T], error) {
	if k.key != nil {
		return seal(k, meta, nil)
	}
	mb, err := record.EncodeMeta(&meta)
	if err != nil {
		return nil, err
	}
	return &wrapped[T]{meta: meta, rec: record.Record{Meta: mb}}, nil
}

// open returns w's material (the caller must clear it), or an error naming
// the key when it does not authenticate.
func open[T classTag](k *kek[T], w *wrapped[T]) ([]byte, error) {
	var t T
	if w.meta.Class != t.class() {
		return nil, fmt.Errorf("%w: opening a %v record with the %v wrapping key", ErrWrongClass, w.meta.Class, t.class())
	}
	aead, err := k.aead()
	if err != nil {
		return nil, err
	}
	if len(w.rec.Nonce) != record.NonceSize {
		return nil, corrupt("key "+idString(w.meta.ID), fmt.Errorf("no sealed material"))
	}
	pt, err := aead.Open(nil, w.rec.Nonce, w.rec.Sealed, record.AD(w.rec.Meta))
	if err != nil {
		return nil, corrupt("key "+idString(w.meta.ID), fmt.Errorf("record does not authenticate under the %v wrapping key", t.class()))
	}
	if len(pt) != w.meta.Alg.SeedSize() {
		clear(pt)
		return nil, corrupt("key "+idString(w.meta.ID), fmt.Errorf("material of %d bytes", len(pt)))
	}
	return pt, nil
}

// keks holds the four class wrapping keys.
type keks struct {
	identity kek[identityTag]
	kem      kek[kemTag]
	session  kek[sessionTag]
	binding  kek[bindingTag]
}

func (k *keks) clear() {
	k.identity.clear()
	k.kem.clear()
	k.session.clear()
	k.binding.clear()
}

func kekLabel(c record.Class) string { return "enigm/v1/kek/" + c.String() }
