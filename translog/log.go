package translog

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/enigm/enigm/translog/smap"
)

// ErrNotFound: no such tile, leaf or state. Storage implementations wrap
// it.
var ErrNotFound = errors.New("translog: not found")

// ErrCorrupt: what the storage holds contradicts itself (a gap in the
// sequenced leaves, a tile that does not line up with the tree). Nothing
// is written; an operator must look at the database.
var ErrCorrupt = errors.New("translog: log storage is inconsistent")

// State is the integrated log: its size, the compact range of its leaves
// [0, Size) (the hashes of compact.Range.Hashes, concatenated), the newest
// signed checkpoint (of size Size, except between the transactions of one
// Integrate that takes more than a batch of leaves), and the number of
// leaves the stored map reflects (MapSize: Size, except in a log from
// before the map, whose first integration builds it). The zero State is a
// log that has integrated nothing.
type State struct {
	Size       uint64
	Range      []byte
	Checkpoint []byte
	MapSize    uint64
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
	// SequenceLeaf sequences one leaf, the map leaf, the way appends
	// sequence theirs (the same counter, so leaves stay numbered without
	// gaps across instances): it takes the next number, calls leaf with it
	// for the bytes and stores them. Leaves sequenced before that number
	// are committed and readable with Leaves when leaf is called, and none
	// is sequenced after it until the transaction ends.
	SequenceLeaf(ctx context.Context, leaf func(index uint64) ([]byte, error)) (uint64, error)
	// Map returns every stored map entry (State.MapSize says as of how
	// many leaves).
	Map(ctx context.Context) ([]smap.Entry, error)
	// PutMap stores entries, replacing the values of keys it holds.
	PutMap(ctx context.Context, entries []smap.Entry) error
}

// Log is a transparency log over a Storage, signing with a Signer.
type Log struct {
	st     Storage
	signer *Signer
	rf     *compact.RangeFactory

	mu    sync.Mutex
	snaps []*mapSnap // maps of the newest sizes this Log committed or read, newest first
}

// mapSnap is the map of the leaves [0, size), fully hashed (so Prove on
// it only reads, from any goroutine).
type mapSnap struct {
	tree *smap.Tree
	size uint64
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
// returns the newest checkpoint. Before signing, it updates the map of
// every account's newest link (smap) with the new leaves and sequences one
// more leaf, the map leaf (MapLeaf), so the last leaf of every checkpoint
// commits to the map of all the leaves before it. With nothing new to
// integrate it writes nothing (the first call on a new log signs the empty
// tree, which has no map leaf).
func (l *Log) Integrate(ctx context.Context) (Checkpoint, error) {
	for {
		c, more, err := l.integrateBatch(ctx)
		if err != nil || !more {
			return c, err
		}
	}
}

func (l *Log) integrateBatch(ctx context.Context) (c Checkpoint, more bool, err error) {
	var next *mapSnap
	err = l.st.Update(ctx, func(ctx context.Context, tx Tx) error {
		c, more, next = Checkpoint{}, false, nil
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
		closed, err := lastIsMapLeaf(ctx, tx, s.Size)
		if err != nil {
			return err
		}
		var signedSize uint64
		if s.Checkpoint != nil {
			if c, err = VerifyCheckpoint(s.Checkpoint, l.Origin(), l.VerifierKeys()); err != nil {
				return fmt.Errorf("%w: the stored checkpoint: %v", ErrCorrupt, err)
			}
			signedSize = c.Size
		}
		if closed && s.Size > 0 && (s.Checkpoint == nil || signedSize < s.Size) {
			// The previous transaction integrated up to its map leaf:
			// sign that tree. Only log_state is locked here, so appends
			// do not wait for the signature.
			return l.sign(ctx, tx, s, &c)
		}
		if n == s.Size && s.Checkpoint != nil && closed {
			return nil
		}
		c = Checkpoint{}
		m, err := l.mapAt(ctx, tx, &s)
		if err != nil {
			return err
		}
		tree := m.tree.Clone()
		end := min(n, s.Size+maxIntegrateBatch)
		// A log from before the map, or a new one, gets its map leaf even
		// without new links; the empty tree is signed as it is.
		withMap := end == n && (n > s.Size || (!closed && s.Size > 0))
		more = end < n
		r, err := l.loadRange(s)
		if err != nil {
			return err
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
		changed := map[smap.Key]smap.Value{}
		take := func(start uint64, leaves [][]byte) error {
			for i, leaf := range leaves {
				if len(leaf) > MaxLeafSize {
					return fmt.Errorf("%w: leaf %d is %d bytes, more than %d", ErrCorrupt, start+uint64(i), len(leaf), MaxLeafSize)
				}
				if e, ok := LinkEntry(leaf); ok {
					tree.Set(e.Key, e.Value)
					changed[e.Key] = e.Value
				}
				if err := r.Append(rfc6962.DefaultHasher.HashLeaf(leaf), visit); err != nil {
					return err
				}
				if verr != nil {
					return verr
				}
			}
			return nil
		}
		if err := readLeaves(ctx, tx, s.Size, end, take); err != nil {
			return err
		}
		// putMap stores what changed in the map since it last ran.
		putMap := func() error {
			entries := make([]smap.Entry, 0, len(changed))
			for k, v := range changed {
				entries = append(entries, smap.Entry{Key: k, Value: v})
			}
			slices.SortFunc(entries, func(a, b smap.Entry) int { return bytes.Compare(a.Key[:], b.Key[:]) })
			clear(changed)
			return tx.PutMap(ctx, entries)
		}
		size := end
		if withMap {
			// Hash and store the map before taking the number: on
			// PostgreSQL appends wait for the sequence row from there to
			// the commit.
			tree.Root()
			if err := putMap(); err != nil {
				return err
			}
			idx, err := tx.SequenceLeaf(ctx, func(idx uint64) ([]byte, error) {
				if idx < end {
					return nil, fmt.Errorf("%w: the map leaf got number %d, below the %d leaves sequenced", ErrCorrupt, idx, end)
				}
				if err := readLeaves(ctx, tx, end, idx, take); err != nil {
					return nil, err
				}
				return MapLeaf(idx, tree.Root()), nil
			})
			if err != nil {
				return err
			}
			if err := take(idx, [][]byte{MapLeaf(idx, tree.Root())}); err != nil {
				return err
			}
			size = idx + 1
		}
		tree.Root()
		if err := putMap(); err != nil {
			return err
		}
		// Only a tree that ends in its map leaf is signed (or the empty
		// tree), in the next transaction (l.sign), which does not hold the
		// sequence row; until then the previous checkpoint stays.
		signed := s.Checkpoint
		if withMap {
			more = true
		}
		if size == 0 {
			root, err := rootOf(r)
			if err != nil {
				return err
			}
			c = Checkpoint{Origin: l.Origin(), Size: size}
			copy(c.Hash[:], root)
			if signed, err = l.signer.Sign(c); err != nil {
				return err
			}
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
		next = &mapSnap{tree: tree, size: size}
		return tx.PutState(ctx, State{Size: size, Range: bytes.Join(r.Hashes(), nil), Checkpoint: signed, MapSize: size})
	})
	if err == nil && next != nil {
		l.setSnap(next)
	}
	return c, more, err
}

// sign signs the checkpoint of the integrated tree of s (which ends in
// its map leaf) and stores it.
func (l *Log) sign(ctx context.Context, tx Tx, s State, c *Checkpoint) error {
	r, err := l.loadRange(s)
	if err != nil {
		return err
	}
	root, err := rootOf(r)
	if err != nil {
		return err
	}
	*c = Checkpoint{Origin: l.Origin(), Size: s.Size}
	copy(c.Hash[:], root)
	signed, err := l.signer.Sign(*c)
	if err != nil {
		return err
	}
	s.Checkpoint = signed
	return tx.PutState(ctx, s)
}

// lastIsMapLeaf reports whether the last of the size integrated leaves is
// a map leaf (true for the empty log).
func lastIsMapLeaf(ctx context.Context, tx Tx, size uint64) (bool, error) {
	if size == 0 {
		return true, nil
	}
	ls, err := tx.Leaves(ctx, size-1, size)
	if err != nil {
		return false, err
	}
	if len(ls) != 1 {
		return false, fmt.Errorf("%w: integrated leaf %d cannot be read", ErrCorrupt, size-1)
	}
	return IsMapLeaf(ls[0]), nil
}

// leafReader is the part of Storage and Tx that reads leaves.
type leafReader interface {
	Leaves(ctx context.Context, start, end uint64) ([][]byte, error)
}

// readLeaves calls fn on the leaves [start, end), a batch at a time,
// refusing a gap.
func readLeaves(ctx context.Context, st leafReader, start, end uint64, fn func(start uint64, leaves [][]byte) error) error {
	for start < end {
		stop := min(end, start+maxIntegrateBatch)
		ls, err := st.Leaves(ctx, start, stop)
		if err != nil {
			return err
		}
		if uint64(len(ls)) != stop-start {
			return fmt.Errorf("%w: only %d of the leaves [%d, %d) could be read", ErrCorrupt, len(ls), start, stop)
		}
		if err := fn(start, ls); err != nil {
			return err
		}
		start = stop
	}
	return nil
}

// keptMaps is how many maps of recent sizes a Log keeps in memory: the
// newest, the one of the newest signed checkpoint (older while the newest
// integration's checkpoint is being signed), and a few more for proofs
// that read a checkpoint just before integrations replaced it. They share
// all but the paths that changed.
const keptMaps = 4

// setSnap keeps m among the maps in memory (newest first).
func (l *Log) setSnap(m *mapSnap) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := 0
	for i < len(l.snaps) && l.snaps[i].size > m.size {
		i++
	}
	if i < len(l.snaps) && l.snaps[i].size == m.size {
		l.snaps[i] = m
		return
	}
	l.snaps = slices.Insert(l.snaps, i, m)
	if len(l.snaps) > keptMaps {
		l.snaps = l.snaps[:keptMaps]
	}
}

// getSnap returns the newest map in memory of at most size leaves.
func (l *Log) getSnap(size uint64) *mapSnap {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range l.snaps {
		if m.size <= size {
			return m
		}
	}
	return nil
}

// mapAt returns the map of the leaves [0, s.Size) inside an integration:
// the one in memory, caught up from the leaves when another instance
// integrated meanwhile; otherwise the stored one, caught up from the
// leaves it does not reflect yet (a log from before the map: it is built
// here and stored). It may update s.MapSize.
func (l *Log) mapAt(ctx context.Context, tx Tx, s *State) (*mapSnap, error) {
	if m := l.getSnap(s.Size); m != nil && s.MapSize == s.Size {
		return replay(ctx, tx, m, s.Size, nil)
	}
	if s.MapSize > s.Size {
		return nil, fmt.Errorf("%w: the stored map reflects %d leaves, the log has %d", ErrCorrupt, s.MapSize, s.Size)
	}
	es, err := tx.Map(ctx)
	if err != nil {
		return nil, err
	}
	t := &smap.Tree{}
	for _, e := range es {
		t.Set(e.Key, e.Value)
	}
	t.Root()
	if s.MapSize == s.Size {
		return &mapSnap{tree: t, size: s.Size}, nil
	}
	changed := map[smap.Key]smap.Value{}
	m, err := replay(ctx, tx, &mapSnap{tree: t, size: s.MapSize}, s.Size, changed)
	if err != nil {
		return nil, err
	}
	entries := make([]smap.Entry, 0, len(changed))
	for k, v := range changed {
		entries = append(entries, smap.Entry{Key: k, Value: v})
	}
	if err := tx.PutMap(ctx, entries); err != nil {
		return nil, err
	}
	s.MapSize = s.Size
	return m, nil
}

// replay returns m caught up to size with the leaves after it (and notes
// what changed in changed, when not nil).
func replay(ctx context.Context, st leafReader, m *mapSnap, size uint64, changed map[smap.Key]smap.Value) (*mapSnap, error) {
	if m.size == size {
		return m, nil
	}
	t := m.tree.Clone()
	err := readLeaves(ctx, st, m.size, size, func(_ uint64, ls [][]byte) error {
		for _, leaf := range ls {
			if e, ok := LinkEntry(leaf); ok {
				t.Set(e.Key, e.Value)
				if changed != nil {
					changed[e.Key] = e.Value
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	t.Root()
	return &mapSnap{tree: t, size: size}, nil
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
