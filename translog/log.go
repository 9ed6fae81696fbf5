package translog

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// ErrNotFound: no such tile, leaf or state. Storage implementations wrap
// it.
var ErrNotFound = errors.New("translog: not found")

// ErrCorrupt: what the storage holds contradicts itself (a gap in the
// sequenced leaves, a tile that does not line up with the tree). Nothing
// is written; an operator must look at the database.
var ErrCorrupt = errors.New("translog: log storage is inconsistent")

// State is the integrated log: its size, the compact range of its leaves
// [0, Size) (the hashes of compact.Range.Hashes, concatenated) and the
// signed checkpoint of that size. The zero State is a log that has
// integrated nothing.
type State struct {
	Size       uint64
	Range      []byte
	Checkpoint []byte
}

// Storage holds a log. Leaves are sequenced by whoever appends them, in
// the transaction that makes them part of the record (for Command, the one
// that moves an account's head), and numbered 0, 1, 2 … without gaps in
// the order they commit; the log only integrates them. Reads outside Update
// see committed data only.
type Storage interface {
	// Update runs fn in one transaction and commits it when fn returns
	// nil. At most one Update runs at a time over the same log, on every
	// instance that shares its database.
	Update(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error
	// State returns the committed integrated state (the zero State for a
	// new log).
	State(ctx context.Context) (State, error)
	// Tile returns the stored hashes of hash tile (level, index), 32 bytes
	// each, at most TileWidth of them; ErrNotFound when there are none.
	Tile(ctx context.Context, level, index uint64) ([]byte, error)
	// Leaves returns the sequenced leaves [start, end); fewer when fewer
	// are sequenced.
	Leaves(ctx context.Context, start, end uint64) ([][]byte, error)
}

// Tx is a Storage's transaction during Update.
type Tx interface {
	State(ctx context.Context) (State, error)
	// Sequenced returns the number of leaves sequenced so far.
	Sequenced(ctx context.Context) (uint64, error)
	Leaves(ctx context.Context, start, end uint64) ([][]byte, error)
	Tile(ctx context.Context, level, index uint64) ([]byte, error)
	// PutTile stores the hashes of a tile, replacing what it held (a
	// tile only grows: hashes holds the previous ones as its prefix).
	PutTile(ctx context.Context, level, index uint64, hashes []byte) error
	PutState(ctx context.Context, s State) error
}

// Log is a transparency log over a Storage, signing with a Signer.
type Log struct {
	st     Storage
	signer *Signer
	rf     *compact.RangeFactory
}

// New returns the log held by st and signed by s (whose origin is the
// log's origin).
func New(st Storage, s *Signer) *Log {
	return &Log{st: st, signer: s, rf: &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}}
}

// Origin returns the log's origin.
func (l *Log) Origin() string { return l.signer.Origin() }

// VerifierKeys returns the log's note verifier keys.
func (l *Log) VerifierKeys() []string { return l.signer.VerifierKeys() }

// Checkpoint returns the newest signed checkpoint and its body. A log
// that has never integrated has none: ErrNotFound.
func (l *Log) Checkpoint(ctx context.Context) ([]byte, Checkpoint, error) {
	s, err := l.st.State(ctx)
	if err != nil {
		return nil, Checkpoint{}, err
	}
	if s.Checkpoint == nil {
		return nil, Checkpoint{}, fmt.Errorf("%w: the log has no checkpoint yet (Integrate makes the first)", ErrNotFound)
	}
	c, err := VerifyCheckpoint(s.Checkpoint, l.Origin(), l.VerifierKeys())
	if err != nil {
		return nil, Checkpoint{}, fmt.Errorf("%w: the stored checkpoint: %v", ErrCorrupt, err)
	}
	return s.Checkpoint, c, nil
}

// Integrate takes every sequenced leaf into the tree and stores a new
// signed checkpoint, in transactions of at most a few thousand leaves. It
// returns the newest checkpoint. With nothing new to integrate it writes
// nothing (the first call on a new log signs the empty tree).
func (l *Log) Integrate(ctx context.Context) (Checkpoint, error) {
	for {
		c, more, err := l.integrateBatch(ctx)
		if err != nil || !more {
			return c, err
		}
	}
}

func (l *Log) integrateBatch(ctx context.Context) (c Checkpoint, more bool, err error) {
	err = l.st.Update(ctx, func(ctx context.Context, tx Tx) error {
		c, more = Checkpoint{}, false
		s, err := tx.State(ctx)
		if err != nil {
			return err
		}
		n, err := tx.Sequenced(ctx)
		if err != nil {
			return err
		}
		if n < s.Size {
			return fmt.Errorf("%w: %d leaves sequenced but %d integrated", ErrCorrupt, n, s.Size)
		}
		if n == s.Size && s.Checkpoint != nil {
			c, err = VerifyCheckpoint(s.Checkpoint, l.Origin(), l.VerifierKeys())
			if err != nil {
				return fmt.Errorf("%w: the stored checkpoint: %v", ErrCorrupt, err)
			}
			return nil
		}
		end := min(n, s.Size+maxIntegrateBatch)
		more = end < n
		r, err := l.loadRange(s)
		if err != nil {
			return err
		}
		leaves, err := tx.Leaves(ctx, s.Size, end)
		if err != nil {
			return err
		}
		if uint64(len(leaves)) != end-s.Size {
			return fmt.Errorf("%w: %d leaves sequenced, but only %d of [%d, %d) could be read", ErrCorrupt, n, len(leaves), s.Size, end)
		}
		tiles := map[[2]uint64][]byte{}
		var verr error
		visit := func(id compact.NodeID, h []byte) {
			if verr != nil || id.Level%tileHeight != 0 {
				return
			}
			key := [2]uint64{uint64(id.Level / tileHeight), id.Index / TileWidth}
			t, ok := tiles[key]
			if !ok {
				t, verr = tx.Tile(ctx, key[0], key[1])
				if errors.Is(verr, ErrNotFound) {
					t, verr = nil, nil
				}
				if verr != nil {
					return
				}
			}
			if uint64(len(t)) != id.Index%TileWidth*sha256.Size {
				verr = fmt.Errorf("%w: tile %d/%d holds %d bytes where node %d of level %d goes", ErrCorrupt, key[0], key[1], len(t), id.Index, id.Level)
				return
			}
			tiles[key] = append(t, h...)
		}
		for i, leaf := range leaves {
			if len(leaf) > MaxLeafSize {
				return fmt.Errorf("%w: leaf %d is %d bytes, more than %d", ErrCorrupt, s.Size+uint64(i), len(leaf), MaxLeafSize)
			}
			if err := r.Append(rfc6962.DefaultHasher.HashLeaf(leaf), visit); err != nil {
				return err
			}
			if verr != nil {
				return verr
			}
		}
		root, err := rootOf(r)
		if err != nil {
			return err
		}
		c = Checkpoint{Origin: l.Origin(), Size: end}
		copy(c.Hash[:], root)
		signed, err := l.signer.Sign(c)
		if err != nil {
			return err
		}
		keys := make([][2]uint64, 0, len(tiles))
		for k := range tiles {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b [2]uint64) int {
			return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1]))
		})
		for _, k := range keys {
			if err := tx.PutTile(ctx, k[0], k[1], tiles[k]); err != nil {
				return err
			}
		}
		return tx.PutState(ctx, State{Size: end, Range: bytes.Join(r.Hashes(), nil), Checkpoint: signed})
	})
	return c, more, err
}

// loadRange rebuilds the compact range of a state.
func (l *Log) loadRange(s State) (*compact.Range, error) {
	if len(s.Range)%sha256.Size != 0 {
		return nil, fmt.Errorf("%w: stored compact range of %d bytes", ErrCorrupt, len(s.Range))
	}
	var hs [][]byte
	for b := s.Range; len(b) > 0; b = b[sha256.Size:] {
		hs = append(hs, b[:sha256.Size:sha256.Size])
	}
	r, err := l.rf.NewRange(0, s.Size, hs)
	if err != nil {
		return nil, fmt.Errorf("%w: stored compact range: %v", ErrCorrupt, err)
	}
	return r, nil
}

// rootOf returns the root hash of a compact range that starts at 0.
func rootOf(r *compact.Range) ([]byte, error) {
	if r.End() == 0 {
		return rfc6962.DefaultHasher.EmptyRoot(), nil
	}
	return r.GetRootHash(nil)
}

// InclusionProof returns the RFC 6962 inclusion proof of leaf index in the
// tree of size size (which must be integrated), built from the tiles.
func (l *Log) InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error) {
	if err := l.checkSize(ctx, size); err != nil {
		return nil, err
	}
	n, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, err
	}
	return l.build(ctx, n)
}

// ConsistencyProof returns the RFC 6962 consistency proof from the tree
// of size1 to the tree of size2 (which must be integrated).
func (l *Log) ConsistencyProof(ctx context.Context, size1, size2 uint64) ([][]byte, error) {
	if err := l.checkSize(ctx, size2); err != nil {
		return nil, err
	}
	n, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, err
	}
	return l.build(ctx, n)
}

func (l *Log) checkSize(ctx context.Context, size uint64) error {
	s, err := l.st.State(ctx)
	if err != nil {
		return err
	}
	if size > s.Size {
		return fmt.Errorf("%w: tree size %d, the log has integrated %d leaves", ErrNotFound, size, s.Size)
	}
	return nil
}

func (l *Log) build(ctx context.Context, n proof.Nodes) ([][]byte, error) {
	return ProofFromTiles(ctx, n, l.st.Tile)
}
