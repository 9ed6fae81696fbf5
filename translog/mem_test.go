package translog_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/enigm/enigm/translog"
	"github.com/enigm/enigm/translog/translogtest"
)

// newMemStorage returns an empty translogtest.MemStorage.
func newMemStorage() *translogtest.MemStorage { return translogtest.NewMemStorage() }

// corruptTile flips one bit of a stored tile.
func corruptTile(st *translogtest.MemStorage, level, index uint64, at int) {
	st.Edit(func(c *translogtest.MemContents) {
		t := append([]byte(nil), c.Tiles[[2]uint64{level, index}]...)
		t[at] ^= 1
		c.Tiles[[2]uint64{level, index}] = t
	})
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
func newLog(t testing.TB, n int) (*translog.Log, *translogtest.MemStorage, *translog.Signer) {
	t.Helper()
	st := newMemStorage()
	s := newSigner(t)
	l := translog.New(st, s)
	for i := range max(n-1, 0) {
		st.Add(leaf(i))
	}
	if _, err := l.Integrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return l, st, s
}
