package monitor

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/translog"
)

// replay checks and replays verified leaves [first, first+len(leaves)).
// Map-root leaves split them into segments: each sees the heads of
// exactly the leaves before it.
func (m *Monitor) replay(ctx context.Context, first uint64, leaves [][]byte) {
	seg := 0
	for i, l := range leaves {
		if translog.IsMapLeaf(l) {
			m.replaySegment(ctx, first+uint64(seg), leaves[seg:i])
			m.mapLeaf(first+uint64(i), l)
			seg = i + 1
		}
	}
	m.replaySegment(ctx, first+uint64(seg), leaves[seg:])
}

// item is one leaf of a segment and what replaying it gave.
type item struct {
	link    *chain.Link
	id      chain.AccountID
	finding *Finding // nil: accepted
}

// group is the leaves of one account in a segment, replayed in order by
// one worker; different accounts are replayed in parallel.
type group struct {
	id    chain.AccountID
	items []int // indices into the segment, in leaf order
	// Results.
	acct  *account     // the account after the segment; nil if unchanged
	state *chain.State // its state then
}

func (m *Monitor) replaySegment(ctx context.Context, first uint64, leaves [][]byte) {
	if len(leaves) == 0 {
		return
	}
	items := make([]item, len(leaves))
	parallel(len(leaves), func(i int) {
		idx := first + uint64(i)
		l, err := chain.ParseLink(leaves[i])
		if err != nil {
			f := m.linkFinding(idx, nil, err, "leaf %d is neither a chain link nor a map leaf: %v", idx, err)
			items[i].finding = &f
			return
		}
		items[i].link, items[i].id = l, l.Account()
		if l.Type() == chain.TypeGenesis {
			items[i].id = chain.AccountID(l.Hash())
		}
	})
	byID := map[chain.AccountID]*group{}
	var groups []*group
	for i := range items {
		if items[i].link == nil {
			continue
		}
		g := byID[items[i].id]
		if g == nil {
			g = &group{id: items[i].id}
			byID[g.id] = g
			groups = append(groups, g)
		}
		g.items = append(g.items, i)
	}
	parallel(len(groups), func(k int) {
		g := groups[k]
		m.replayGroup(ctx, first, g, items, m.accounts[g.id], m.states[g.id])
	})
	for _, g := range groups {
		if g.acct != nil {
			m.accounts[g.id] = g.acct
			m.dirty[g.id] = struct{}{}
			m.cache(g.id, g.state)
		}
		// The log's map holds the account's last link in log order
		// (translog.LinkEntry: key the account id, the genesis link's
		// hash for seq 0, which chain.ParseLink makes the genesis), as
		// accepted or not.
		last := items[g.items[len(g.items)-1]].link
		head := chain.Head{Seq: last.Seq(), Hash: last.Hash()}
		_, had := m.mapHeads[g.id]
		if a, ok := m.accounts[g.id]; ok && a.head == head {
			delete(m.mapHeads, g.id)
		} else {
			m.mapHeads[g.id] = head
		}
		if _, has := m.mapHeads[g.id]; has || had {
			m.mapDirty[g.id] = struct{}{}
		}
		if m.sinceMap != nil {
			m.sinceMap[g.id] = struct{}{}
		}
	}
	for i := range items {
		if items[i].finding != nil {
			m.report(*items[i].finding)
		}
	}
}

// replayGroup replays one account's leaves of a segment from its stored
// account a (nil: new) and cached state s (nil: rebuilt when needed). It
// writes only to g and to its own items.
func (m *Monitor) replayGroup(ctx context.Context, first uint64, g *group, items []item, a *account, s *chain.State) {
	var cur account
	known := a != nil
	if known {
		cur = account{head: a.head, leaves: slices.Clip(a.leaves)}
	}
	var rebuildErr error
	changed := false
	for _, i := range g.items {
		it := &items[i]
		idx, l, id := first+uint64(i), it.link, g.id
		if known && l.Seq() <= cur.head.Seq {
			seq := l.Seq()
			it.finding = &Finding{Kind: KindDuplicateLink, Index: u64(idx), FirstIndex: u64(cur.leaves[seq]), Account: &id, Seq: &seq,
				Message: fmt.Sprintf("leaf %d is a second link at sequence %d of account %s (the first is leaf %d)", idx, seq, id, cur.leaves[seq])}
			continue
		}
		if known && s == nil && rebuildErr == nil {
			s, rebuildErr = m.rebuild(ctx, &cur)
		}
		if rebuildErr != nil {
			it.finding = &Finding{Kind: KindBadEntryBundle, Index: u64(idx), Account: &id, Size: m.cp.Size, Root: bytes.Clone(m.cp.Hash[:]),
				Message: fmt.Sprintf("replaying account %s before leaf %d: %v", id, idx, rebuildErr)}
			continue
		}
		ns, err := chain.Apply(s, l, m.cfg.Now(), m.cfg.ChainOptions...)
		if err != nil {
			f := m.linkFinding(idx, l, err, "leaf %d, link %d of account %s, does not verify: %v", idx, l.Seq(), id, err)
			it.finding = &f
			continue
		}
		s, known, changed = ns, true, true
		cur.head = ns.Head()
		cur.leaves = append(cur.leaves, idx)
	}
	if changed {
		g.acct, g.state = &cur, s
	}
}

// parallel calls f(0) … f(n-1) on up to GOMAXPROCS goroutines.
func parallel(n int, f func(i int)) {
	w := min(n, runtime.GOMAXPROCS(0))
	if w <= 1 {
		for i := range n {
			f(i)
		}
		return
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	next := 0
	for range w {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return
				}
				f(i)
			}
		})
	}
	wg.Wait()
}
