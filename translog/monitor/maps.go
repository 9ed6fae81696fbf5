package monitor

import (
	"fmt"
	"iter"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/translog"
	"github.com/enigm/enigm/translog/smap"
)

// MapChecker compares a map leaf with the heads the monitor replayed.
// The monitor calls it for every well-formed map leaf whose N is its own
// index; an error is reported as a map_leaf_invalid finding (reason
// root). A MapChecker serves one Monitor: it may rely on Heads.Changed
// yielding every account at its first call.
type MapChecker interface {
	CheckMapRoot(n uint64, root [32]byte, heads Heads) error
}

// Heads is what the log's map must hold after the leaves before a map
// leaf, as the monitor replayed them: for every account, the sequence
// number and hash of its link that comes last in log order among the
// leaves that parse as chain links (translog.LinkEntry), whether or not
// chain.Apply accepted it. That is the map's definition (the integrator
// does not judge links); a link the monitor refused was reported where it
// stands (link_invalid, duplicate_link), and the map naming it is not a
// second lie.
type Heads interface {
	// Len is the number of accounts.
	Len() int
	// Head returns an account's head.
	Head(chain.AccountID) (chain.Head, bool)
	// All yields every account and its head, in no order.
	All() iter.Seq2[chain.AccountID, chain.Head]
	// Changed yields the accounts whose head may have changed since the
	// previous CheckMapRoot call of this run (all of them on the first
	// call).
	Changed() iter.Seq2[chain.AccountID, chain.Head]
}

// NewMapChecker returns the MapChecker a Monitor uses when Config.Maps is
// nil (rootChecker), for one Monitor, to wrap or to measure.
func NewMapChecker() MapChecker { return &rootChecker{} }

// rootChecker is the MapChecker a Monitor uses by default: it keeps the
// sparse Merkle map (translog/smap) of the heads, updated at each map
// leaf with the heads changed since the previous one (at the first, with
// every head, so a resumed monitor rebuilds it from its stored state),
// and compares its root with the leaf's. It uses smap directly rather
// than translog.MapChecker, which would parse every link a second time.
type rootChecker struct {
	tree smap.Tree
}

func (c *rootChecker) CheckMapRoot(n uint64, root [32]byte, heads Heads) error {
	for id, h := range heads.Changed() {
		c.tree.Set(smap.Key(id), smap.Value{Seq: h.Seq, Head: h.Hash})
	}
	if got := c.tree.Root(); got != smap.Hash(root) {
		return &rootError{n: n, root: root, want: got, accounts: heads.Len()}
	}
	return nil
}

// rootError: a map leaf's root is not the map of the heads. It is
// translog.ErrMapMismatch.
type rootError struct {
	n          uint64
	root, want [32]byte
	accounts   int
}

func (e *rootError) Error() string {
	return fmt.Sprintf("it commits to map root %x, but the newest links of the %d accounts in the %d leaves before it give %x (the map names an old head, misses an account or is made up)",
		e.root, e.accounts, e.n, e.want)
}

func (e *rootError) Is(target error) bool { return target == translog.ErrMapMismatch }

// headView is the Heads a MapChecker gets: the accepted heads, overlaid
// with m.mapHeads where an account's last link in log order is not its
// accepted head.
type headView struct{ m *Monitor }

func (h headView) Len() int {
	n := len(h.m.accounts)
	for id := range h.m.mapHeads {
		if _, ok := h.m.accounts[id]; !ok {
			n++
		}
	}
	return n
}

func (h headView) Head(id chain.AccountID) (chain.Head, bool) {
	if v, ok := h.m.mapHeads[id]; ok {
		return v, true
	}
	a, ok := h.m.accounts[id]
	if !ok {
		return chain.Head{}, false
	}
	return a.head, true
}

func (h headView) All() iter.Seq2[chain.AccountID, chain.Head] {
	return func(yield func(chain.AccountID, chain.Head) bool) {
		for id, a := range h.m.accounts {
			v, ok := h.m.mapHeads[id]
			if !ok {
				v = a.head
			}
			if !yield(id, v) {
				return
			}
		}
		for id, v := range h.m.mapHeads {
			if _, ok := h.m.accounts[id]; ok {
				continue
			}
			if !yield(id, v) {
				return
			}
		}
	}
}

func (h headView) Changed() iter.Seq2[chain.AccountID, chain.Head] {
	if h.m.sinceMap == nil {
		return h.All()
	}
	return func(yield func(chain.AccountID, chain.Head) bool) {
		for id := range h.m.sinceMap {
			v, _ := h.Head(id)
			if !yield(id, v) {
				return
			}
		}
	}
}
