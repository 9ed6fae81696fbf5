package translogtest

import (
	"context"
	"fmt"
	"maps"
	"sync"

	"github.com/enigm/enigm/translog"
	"github.com/enigm/enigm/translog/smap"
)

// MemStorage is a translog.Storage in memory for tests of other packages
// (a monitor's hostile logs): Update works on a copy and keeps it only
// when fn succeeds, as a database transaction would.
type MemStorage struct {
	mu     sync.Mutex // held by Update
	rmu    sync.RWMutex
	leaves [][]byte
	tiles  map[[2]uint64][]byte
	state  translog.State
	smap   map[smap.Key]smap.Value
}

// NewMemStorage returns an empty log storage.
func NewMemStorage() *MemStorage {
	return &MemStorage{tiles: map[[2]uint64][]byte{}, smap: map[smap.Key]smap.Value{}}
}

// Add sequences leaves, as the transaction that moves a head does.
func (m *MemStorage) Add(leaves ...[]byte) {
	m.rmu.Lock()
	defer m.rmu.Unlock()
	m.leaves = append(m.leaves, leaves...)
}

// SetTile replaces the stored hashes of a tile, as a hostile or broken
// database could.
func (m *MemStorage) SetTile(level, index uint64, hashes []byte) {
	m.rmu.Lock()
	defer m.rmu.Unlock()
	m.tiles[[2]uint64{level, index}] = hashes
}

// Update implements translog.Storage.
func (m *MemStorage) Update(ctx context.Context, fn func(context.Context, translog.Tx) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rmu.RLock()
	tx := &memTx{m: m, tiles: maps.Clone(m.tiles), state: m.state, n: uint64(len(m.leaves)), smap: maps.Clone(m.smap)}
	m.rmu.RUnlock()
	if err := fn(ctx, tx); err != nil {
		return err
	}
	// Update is the only writer of leaves besides Add, which the tests
	// do not run during an Update: the leaves SequenceLeaf added follow.
	m.rmu.Lock()
	m.tiles, m.state, m.smap = tx.tiles, tx.state, tx.smap
	m.leaves = append(m.leaves, tx.added...)
	m.rmu.Unlock()
	return nil
}

// State implements translog.Storage.
func (m *MemStorage) State(context.Context) (translog.State, error) {
	m.rmu.RLock()
	defer m.rmu.RUnlock()
	return m.state, nil
}

// Tile implements translog.Storage.
func (m *MemStorage) Tile(_ context.Context, level, index uint64) ([]byte, error) {
	m.rmu.RLock()
	defer m.rmu.RUnlock()
	t, ok := m.tiles[[2]uint64{level, index}]
	if !ok {
		return nil, fmt.Errorf("%w: tile %d/%d", translog.ErrNotFound, level, index)
	}
	return t, nil
}

// Leaves implements translog.Storage.
func (m *MemStorage) Leaves(_ context.Context, start, end uint64) ([][]byte, error) {
	m.rmu.RLock()
	defer m.rmu.RUnlock()
	end = min(end, uint64(len(m.leaves)))
	if start >= end {
		return nil, nil
	}
	return m.leaves[start:end], nil
}

type memTx struct {
	m     *MemStorage
	tiles map[[2]uint64][]byte
	state translog.State
	n     uint64
	smap  map[smap.Key]smap.Value
	added [][]byte
}

// SequenceLeaf implements translog.Tx: the map leaf an integration adds.
func (tx *memTx) SequenceLeaf(_ context.Context, leaf func(uint64) ([]byte, error)) (uint64, error) {
	idx := tx.n
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
	base := uint64(len(tx.m.leaves))
	tx.m.rmu.RUnlock()
	for i := max(start, base); i < min(end, tx.n); i++ {
		ls = append(ls, tx.added[i-base])
	}
	return ls, nil
}
func (tx *memTx) Tile(_ context.Context, level, index uint64) ([]byte, error) {
	t, ok := tx.tiles[[2]uint64{level, index}]
	if !ok {
		return nil, fmt.Errorf("%w: tile %d/%d", translog.ErrNotFound, level, index)
	}
	return t, nil
}
func (tx *memTx) PutTile(_ context.Context, level, index uint64, h []byte) error {
	tx.tiles[[2]uint64{level, index}] = append([]byte(nil), h...)
	return nil
}
