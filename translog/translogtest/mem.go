package translogtest

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"sync"

	"github.com/enigm/enigm/translog"
	"github.com/enigm/enigm/translog/smap"
)

// MemStorage is a translog.Storage in memory for tests (translog's own,
// a monitor's hostile logs): Update works on a copy and keeps it only
// when fn succeeds, so a failed integration leaves nothing behind, as a
// database transaction would.
type MemStorage struct {
	mu  sync.Mutex // held by Update
	seq sync.Mutex // the sequence: held by Add, and by SequenceLeaf until its Update ends
	rmu sync.RWMutex
	c   MemContents
	// BeforeSequence, when set, runs in SequenceLeaf before it takes its
	// number (once a transaction): appends that commit while an
	// integration runs.
	BeforeSequence func()
	// signedUnderSeq counts transactions that stored a new checkpoint
	// while holding the sequence (appends would have waited for it).
	signedUnderSeq int
}

// MemContents is what a MemStorage holds, for tests that rewrite a
// stored log as a hostile or broken database could (Edit).
type MemContents struct {
	Leaves [][]byte
	Tiles  map[[2]uint64][]byte
	State  translog.State
	Map    map[smap.Key]smap.Value
}

// NewMemStorage returns an empty log storage.
func NewMemStorage() *MemStorage {
	return &MemStorage{c: MemContents{Tiles: map[[2]uint64][]byte{}, Map: map[smap.Key]smap.Value{}}}
}

// Add sequences leaves, as the transaction that moves a head does.
func (m *MemStorage) Add(leaves ...[]byte) {
	m.seq.Lock()
	defer m.seq.Unlock()
	m.rmu.Lock()
	defer m.rmu.Unlock()
	m.c.Leaves = append(m.c.Leaves, leaves...)
}

// SetTile replaces the stored hashes of a tile, as a hostile or broken
// database could.
func (m *MemStorage) SetTile(level, index uint64, hashes []byte) {
	m.Edit(func(c *MemContents) { c.Tiles[[2]uint64{level, index}] = hashes })
}

// Edit runs fn on the stored contents, with no Update or read running:
// to read them whole or rewrite them.
func (m *MemStorage) Edit(fn func(*MemContents)) {
	m.rmu.Lock()
	defer m.rmu.Unlock()
	fn(&m.c)
}

// SignedUnderSeq returns how many transactions stored a new checkpoint
// while holding the sequence (on PostgreSQL appends would have waited
// for the signature).
func (m *MemStorage) SignedUnderSeq() int {
	m.rmu.RLock()
	defer m.rmu.RUnlock()
	return m.signedUnderSeq
}

// Update implements translog.Storage.
func (m *MemStorage) Update(ctx context.Context, fn func(context.Context, translog.Tx) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rmu.RLock()
	tx := &memTx{m: m, tiles: maps.Clone(m.c.Tiles), state: m.c.State, n: uint64(len(m.c.Leaves)), smap: maps.Clone(m.c.Map)}
	m.rmu.RUnlock()
	err := fn(ctx, tx)
	if tx.locked {
		defer m.seq.Unlock()
	}
	if err != nil {
		return err
	}
	m.rmu.Lock()
	if tx.locked && !bytes.Equal(tx.state.Checkpoint, m.c.State.Checkpoint) {
		m.signedUnderSeq++
	}
	m.c.Tiles, m.c.State, m.c.Map = tx.tiles, tx.state, tx.smap
	m.c.Leaves = append(m.c.Leaves, tx.added...)
	m.rmu.Unlock()
	return nil
}

// State implements translog.Storage.
func (m *MemStorage) State(context.Context) (translog.State, error) {
	m.rmu.RLock()
	defer m.rmu.RUnlock()
	return m.c.State, nil
}

// Tile implements translog.Storage.
func (m *MemStorage) Tile(_ context.Context, level, index uint64) ([]byte, error) {
	m.rmu.RLock()
	defer m.rmu.RUnlock()
	return tile(m.c.Tiles, level, index)
}

func tile(tiles map[[2]uint64][]byte, level, index uint64) ([]byte, error) {
	t, ok := tiles[[2]uint64{level, index}]
	if !ok {
		return nil, fmt.Errorf("%w: tile %d/%d", translog.ErrNotFound, level, index)
	}
	return t, nil
}

// Leaves implements translog.Storage.
func (m *MemStorage) Leaves(_ context.Context, start, end uint64) ([][]byte, error) {
	m.rmu.RLock()
	defer m.rmu.RUnlock()
	end = min(end, uint64(len(m.c.Leaves)))
	if start >= end {
		return nil, nil
	}
	return m.c.Leaves[start:end], nil
}

type memTx struct {
	m      *MemStorage
	tiles  map[[2]uint64][]byte
	state  translog.State
	n      uint64
	smap   map[smap.Key]smap.Value
	locked bool
	added  [][]byte
}

// SequenceLeaf implements translog.Tx: the map leaf an integration adds,
// numbered after the leaves appended until then.
func (tx *memTx) SequenceLeaf(_ context.Context, leaf func(uint64) ([]byte, error)) (uint64, error) {
	if f := tx.m.BeforeSequence; f != nil && !tx.locked {
		f()
	}
	if !tx.locked {
		tx.m.seq.Lock()
		tx.locked = true
	}
	tx.m.rmu.RLock()
	idx := uint64(len(tx.m.c.Leaves) + len(tx.added))
	tx.m.rmu.RUnlock()
	tx.n = idx
	b, err := leaf(idx)
	if err != nil {
		return 0, err
	}
	tx.added = append(tx.added, b)
	tx.n++
	return idx, nil
}

// Map implements translog.Tx.
func (tx *memTx) Map(context.Context) ([]smap.Entry, error) {
	es := make([]smap.Entry, 0, len(tx.smap))
	for k, v := range tx.smap {
		es = append(es, smap.Entry{Key: k, Value: v})
	}
	return es, nil
}

// PutMap implements translog.Tx.
func (tx *memTx) PutMap(_ context.Context, es []smap.Entry) error {
	for _, e := range es {
		tx.smap[e.Key] = e.Value
	}
	return nil
}

func (tx *memTx) State(context.Context) (translog.State, error)      { return tx.state, nil }
func (tx *memTx) Sequenced(context.Context) (uint64, error)          { return tx.n, nil }
func (tx *memTx) PutState(_ context.Context, s translog.State) error { tx.state = s; return nil }
func (tx *memTx) Leaves(ctx context.Context, start, end uint64) ([][]byte, error) {
	ls, err := tx.m.Leaves(ctx, start, min(end, tx.n))
	if err != nil {
		return nil, err
	}
	tx.m.rmu.RLock()
	base := uint64(len(tx.m.c.Leaves))
	tx.m.rmu.RUnlock()
	for i := max(start, base); i < min(end, tx.n); i++ {
		ls = append(ls, tx.added[i-base])
	}
	return ls, nil
}
func (tx *memTx) Tile(_ context.Context, level, index uint64) ([]byte, error) {
	return tile(tx.tiles, level, index)
}
func (tx *memTx) PutTile(_ context.Context, level, index uint64, h []byte) error {
	tx.tiles[[2]uint64{level, index}] = append([]byte(nil), h...)
	return nil
}
