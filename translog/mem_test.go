package translog_test

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"

	"github.com/enigm/enigm/translog"
	"github.com/enigm/enigm/translog/smap"
	"github.com/enigm/enigm/translog/translogtest"
)

// memStorage is a translog.Storage in memory for the tests: Update works
// on a copy and keeps it only when fn succeeds, so a failed integration
// leaves nothing behind, as a database transaction would.
type memStorage struct {
	mu     sync.Mutex // held by Update
	seq    sync.Mutex // the sequence: held by add, and by SequenceLeaf until its Update ends
	rmu    sync.RWMutex
	leaves [][]byte
	tiles  map[[2]uint64][]byte
	state  translog.State
	smap   map[smap.Key]smap.Value
	// beforeSequence, when set, runs in SequenceLeaf before it takes its
	// number: appends that commit while an integration runs.
	beforeSequence func()
	// signedUnderSeq counts transactions that stored a new checkpoint
	// while holding the sequence (appends would have waited for it).
	signedUnderSeq int
}

func newMemStorage() *memStorage {
	return &memStorage{tiles: map[[2]uint64][]byte{}, smap: map[smap.Key]smap.Value{}}
}

// add sequences leaves, as the transaction that moves a head does.
func (m *memStorage) add(leaves ...[]byte) {
	m.seq.Lock()
	defer m.seq.Unlock()
	m.rmu.Lock()
	defer m.rmu.Unlock()
	m.leaves = append(m.leaves, leaves...)
}

func (m *memStorage) Update(ctx context.Context, fn func(context.Context, translog.Tx) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rmu.RLock()
	tx := &memTx{m: m, tiles: maps.Clone(m.tiles), state: m.state, n: uint64(len(m.leaves)), smap: maps.Clone(m.smap)}
	m.rmu.RUnlock()
	err := fn(ctx, tx)
	if tx.locked {
		defer m.seq.Unlock()
	}
	if err != nil {
		return err
	}
	m.rmu.Lock()
	if tx.locked && !bytes.Equal(tx.state.Checkpoint, m.state.Checkpoint) {
		m.signedUnderSeq++
	}
	m.tiles, m.state, m.smap = tx.tiles, tx.state, tx.smap
	m.leaves = append(m.leaves, tx.added...)
	m.rmu.Unlock()
	return nil
}

func (m *memStorage) State(context.Context) (translog.State, error) {
	m.rmu.RLock()
	defer m.rmu.RUnlock()
	return m.state, nil
}

func (m *memStorage) Tile(_ context.Context, level, index uint64) ([]byte, error) {
	m.rmu.RLock()
	defer m.rmu.RUnlock()
	t, ok := m.tiles[[2]uint64{level, index}]
	if !ok {
		return nil, fmt.Errorf("%w: tile %d/%d", translog.ErrNotFound, level, index)
	}
	return t, nil
}

func (m *memStorage) Leaves(_ context.Context, start, end uint64) ([][]byte, error) {
	m.rmu.RLock()
	defer m.rmu.RUnlock()
	end = min(end, uint64(len(m.leaves)))
	if start >= end {
		return nil, nil
	}
	return m.leaves[start:end], nil
}

// SetTile replaces the stored hashes of a tile, as a hostile or broken
// database could.
func (m *memStorage) SetTile(level, index uint64, hashes []byte) {
	m.rmu.Lock()
	defer m.rmu.Unlock()
	m.tiles[[2]uint64{level, index}] = hashes
}

// corruptTile flips one bit of a stored tile.
func (m *memStorage) corruptTile(level, index uint64, at int) {
	m.rmu.Lock()
	defer m.rmu.Unlock()
	t := append([]byte(nil), m.tiles[[2]uint64{level, index}]...)
	t[at] ^= 1
	m.tiles[[2]uint64{level, index}] = t
}

type memTx struct {
	m      *memStorage
	tiles  map[[2]uint64][]byte
	state  translog.State
	n      uint64
	smap   map[smap.Key]smap.Value
	locked bool
	added  [][]byte
}

func (tx *memTx) SequenceLeaf(_ context.Context, leaf func(uint64) ([]byte, error)) (uint64, error) {
	if f := tx.m.beforeSequence; f != nil && !tx.locked {
		f()
	}
	if !tx.locked {
		tx.m.seq.Lock()
		tx.locked = true
	}
	tx.m.rmu.RLock()
	idx := uint64(len(tx.m.leaves) + len(tx.added))
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

func (tx *memTx) Map(context.Context) ([]smap.Entry, error) {
	var es []smap.Entry
	for k, v := range tx.smap {
		es = append(es, smap.Entry{Key: k, Value: v})
	}
	return es, nil
}

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

const testOrigin = "enigm.test/log"

// newSigner returns a signer of testOrigin with new keys.
func newSigner(t testing.TB) *translog.Signer { return translogtest.NewSigner(t, testOrigin) }

// leaf returns a distinct leaf of a few hundred bytes for index i.
func leaf(i int) []byte {
	return fmt.Appendf(nil, "leaf %d %0*d", i, 100+i%300, i)
}

// newLog returns a log over memory whose tree has n leaves, integrated:
// n-1 leaves and, last, the map leaf the integration adds (n is 0 or at
// least 2).
func newLog(t testing.TB, n int) (*translog.Log, *memStorage, *translog.Signer) {
	t.Helper()
	st := newMemStorage()
	s := newSigner(t)
	l := translog.New(st, s)
	for i := range max(n-1, 0) {
		st.add(leaf(i))
	}
	if _, err := l.Integrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return l, st, s
}
