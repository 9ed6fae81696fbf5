package translog_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/enigm/enigm/translog"
	"github.com/enigm/enigm/translog/translogtest"
)

// memStorage is translogtest.MemStorage with this package's helpers.
type memStorage struct{ *translogtest.MemStorage }

func newMemStorage() *memStorage { return &memStorage{translogtest.NewMemStorage()} }

// add sequences leaves, as the transaction that moves a head does.
func (m *memStorage) add(leaves ...[]byte) { m.Add(leaves...) }

// corruptTile flips one bit of a stored tile.
func (m *memStorage) corruptTile(level, index uint64, at int) {
	t, err := m.Tile(context.Background(), level, index)
	if err != nil {
		panic(err)
	}
	t = append([]byte(nil), t...)
	t[at] ^= 1
	m.SetTile(level, index, t)
}

const testOrigin = "enigm.test/log"

// newSigner returns a signer of testOrigin with new keys.
func newSigner(t testing.TB) *translog.Signer { return translogtest.NewSigner(t, testOrigin) }

// leaf returns a distinct leaf of a few hundred bytes for index i.
func leaf(i int) []byte {
	return fmt.Appendf(nil, "leaf %d %0*d", i, 100+i%300, i)
}

// newLog returns a log over memory with n leaves, integrated.
func newLog(t testing.TB, n int) (*translog.Log, *memStorage, *translog.Signer) {
	t.Helper()
	st := newMemStorage()
	s := newSigner(t)
	l := translog.New(st, s)
	for i := range n {
		st.add(leaf(i))
	}
	if _, err := l.Integrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return l, st, s
}
