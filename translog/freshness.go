package translog

import (
	"context"
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/enigm/enigm/translog/smap"
)

// ErrNotFresh: a freshness proof does not prove what it claims under the
// checkpoint it names (its map leaf is not the checkpoint's last leaf or
// not in it, or the map proof does not verify under the leaf's root).
var ErrNotFresh = errors.New("translog: the freshness proof does not verify")

// Freshness proves what an account's newest link is as of a checkpoint:
// the checkpoint's last leaf (index Size-1) is the map leaf committing to
// MapRoot, Inclusion is that leaf's RFC 6962 inclusion proof in the tree
// of Size leaves, and Proof is the map proof that the account maps to
// *Value (its newest link's seq and hash) or, Value nil, to nothing.
type Freshness struct {
	Checkpoint []byte // the signed checkpoint note
	Size       uint64
	MapRoot    smap.Hash
	Inclusion  [][]byte
	Value      *smap.Value
	Proof      smap.Proof
}

// errMoved: the log moved on while a freshness proof was being built.
var errMoved = errors.New("translog: the log moved on")

// Freshness returns the freshness proof of account key at the newest
// checkpoint. Everything in it is read for that checkpoint: its leaves and
// tiles never change once it is signed, and the map is rebuilt for
// exactly its size. ErrNotFound when there is no checkpoint with a map
// leaf yet (an empty log, or one from before the map until the next
// integration).
func (l *Log) Freshness(ctx context.Context, key smap.Key) (Freshness, error) {
	for range 5 {
		f, err := l.freshness(ctx, key)
		if !errors.Is(err, errMoved) {
			return f, err
		}
	}
	return Freshness{}, fmt.Errorf("%w: the log kept changing while the freshness proof was read; try again", ErrNotFound)
}

func (l *Log) freshness(ctx context.Context, key smap.Key) (Freshness, error) {
	s, err := l.st.State(ctx)
	if err != nil {
		return Freshness{}, err
	}
	if s.Checkpoint == nil {
		return Freshness{}, fmt.Errorf("%w: the log has no checkpoint yet", ErrNotFound)
	}
	c, err := VerifyCheckpoint(s.Checkpoint, l.Origin(), l.VerifierKeys())
	if err != nil {
		return Freshness{}, fmt.Errorf("%w: the stored checkpoint: %v", ErrCorrupt, err)
	}
	if c.Size == 0 {
		return Freshness{}, fmt.Errorf("%w: the log is empty", ErrNotFound)
	}
	ls, err := l.st.Leaves(ctx, c.Size-1, c.Size)
	if err != nil {
		return Freshness{}, err
	}
	if len(ls) != 1 {
		return Freshness{}, fmt.Errorf("%w: leaf %d of the checkpoint cannot be read", ErrCorrupt, c.Size-1)
	}
	if !IsMapLeaf(ls[0]) {
		return Freshness{}, fmt.Errorf("%w: the newest checkpoint (%d leaves) ends in no map leaf (a log from before the map); the next integration adds it", ErrNotFound, c.Size)
	}
	idx, root, err := ParseMapLeaf(ls[0])
	if err != nil || idx != c.Size-1 {
		return Freshness{}, fmt.Errorf("%w: the map leaf at %d: index %d, %v", ErrCorrupt, c.Size-1, idx, err)
	}
	m, err := l.mapFor(ctx, c.Size)
	if err != nil {
		return Freshness{}, err
	}
	if got := m.tree.Root(); got != root {
		return Freshness{}, fmt.Errorf("%w: the map of the first %d leaves has root %x, the map leaf says %x", ErrCorrupt, c.Size-1, got, root)
	}
	incl, err := l.InclusionProof(ctx, c.Size-1, c.Size)
	if err != nil {
		return Freshness{}, err
	}
	f := Freshness{Checkpoint: s.Checkpoint, Size: c.Size, MapRoot: root, Inclusion: incl, Proof: m.tree.Prove(key)}
	if v, ok := m.tree.Get(key); ok {
		f.Value = &v
	}
	return f, nil
}

// mapFor returns the map of the leaves [0, size), size being a signed
// checkpoint's: from the one in memory, caught up from the leaves, or
// loaded from the storage when this Log has none or one ahead of size.
func (l *Log) mapFor(ctx context.Context, size uint64) (*mapSnap, error) {
	if m := l.getSnap(size); m != nil {
		m, err := replay(ctx, l.st, m, size, nil)
		if err != nil {
			return nil, err
		}
		l.setSnap(m)
		return m, nil
	}
	var m *mapSnap
	err := l.st.Update(ctx, func(ctx context.Context, tx Tx) error {
		s, err := tx.State(ctx)
		if err != nil {
			return err
		}
		if s.Size != size {
			return errMoved
		}
		before := s.MapSize
		if m, err = l.mapAt(ctx, tx, &s); err != nil {
			return err
		}
		if s.MapSize != before {
			return tx.PutState(ctx, s)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	l.setSnap(m)
	return m, nil
}

// VerifyFreshness checks f against the checkpoint c (which the caller
// verified): f is for c's tree, its map leaf (the last leaf, Size-1,
// committing to f.MapRoot) is included in it, and f.Proof proves under
// f.MapRoot that key maps to *f.Value, or to nothing when f.Value is nil.
// Errors wrap ErrNotFresh and say which part failed. It does not say
// whether the value is the head the caller holds: compare f.Value.
func VerifyFreshness(c Checkpoint, key smap.Key, f Freshness) error {
	if f.Size != c.Size || c.Size == 0 {
		return fmt.Errorf("%w: it is for a tree of %d leaves, the checkpoint has %d", ErrNotFresh, f.Size, c.Size)
	}
	h := rfc6962.DefaultHasher
	leaf := MapLeaf(c.Size-1, f.MapRoot)
	if err := proof.VerifyInclusion(h, c.Size-1, c.Size, h.HashLeaf(leaf), f.Inclusion, c.Hash[:]); err != nil {
		return fmt.Errorf("%w: the map leaf with root %x is not the last leaf (%d) of the checkpoint: %v", ErrNotFresh, f.MapRoot, c.Size-1, err)
	}
	if err := smap.Verify(f.MapRoot, key, f.Value, f.Proof); err != nil {
		return fmt.Errorf("%w: the map proof for %x: %v", ErrNotFresh, key, err)
	}
	return nil
}
