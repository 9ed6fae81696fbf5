package command

import (
	"container/list"
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/hybrid"
)

// DefaultStateCacheBytes is the default memory budget of the verified-state
// cache (Config.StateCacheBytes): about 25,000 two-device accounts.
const DefaultStateCacheBytes = 256 << 20

// MinStateCacheBytes is the smallest budget Config accepts: room for the
// largest state the chain's limits allow, so that every account can be
// cached.
const MinStateCacheBytes = 1 << 20

// Cache lookup results, as the metrics label them.
const (
	cacheHit    = iota // the state at the current head was cached
	cacheExtend        // an older state was cached: only the new links were verified
	cacheMiss          // nothing was cached: the whole chain was verified
	nCacheResults
)

var cacheResultNames = [nCacheResults]string{"hit", "extend", "miss"}

// stateCache caches verified states per account, keyed by head, within a
// memory budget: the least recently used entries are evicted when the
// estimated bytes of all entries exceed it. It is per server instance;
// the database stays the source of truth: a lookup reads the account's
// current head first (load), unless the head announcements say the cached
// head is still current (loadFresh), and a head the cache has not
// verified is verified (from the cached state when the chain only grew).
type stateCache struct {
	mu     sync.Mutex
	m      map[string]*list.Element // of *cacheEntry
	lru    list.List                // front: most recently used
	bytes  int64                    // estimated, of every entry
	budget int64

	lookups   [nCacheResults]atomic.Uint64
	evictions atomic.Uint64
}

type cacheEntry struct {
	id   string
	v    *verified
	size int64
}

func newStateCache(budget int64) *stateCache {
	c := &stateCache{m: make(map[string]*list.Element), budget: budget}
	c.lru.Init()
	return c
}

// get returns the cached state of account id, nil when none, and marks it
// recently used.
func (c *stateCache) get(id string) *verified {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	if !ok {
		return nil
	}
	c.lru.MoveToFront(e)
	return e.Value.(*cacheEntry).v
}

// count records the result of one lookup.
func (c *stateCache) count(result int) { c.lookups[result].Add(1) }

// put caches v as account id's state, unless a newer verified state is
// cached, and evicts the least recently used entries over the budget.
// The entry just put is never evicted by its own put: a state larger than
// the whole budget is cached alone.
func (c *stateCache) put(id string, v *verified) {
	size := entrySize(id, v)
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[id]; ok {
		old := e.Value.(*cacheEntry)
		if old.v.err == nil && v.err == nil && old.v.account.Head.Seq > v.account.Head.Seq {
			c.lru.MoveToFront(e)
			return // keep the newer one
		}
		c.bytes += size - old.size
		old.v, old.size = v, size
		c.lru.MoveToFront(e)
	} else {
		c.m[id] = c.lru.PushFront(&cacheEntry{id: id, v: v, size: size})
		c.bytes += size
	}
	for c.bytes > c.budget && c.lru.Len() > 1 {
		last := c.lru.Back()
		old := last.Value.(*cacheEntry)
		c.lru.Remove(last)
		delete(c.m, old.id)
		c.bytes -= old.size
		c.evictions.Add(1)
	}
}

// stats returns the number of entries and their estimated bytes.
func (c *stateCache) stats() (entries int, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len(), c.bytes
}

// Estimated heap bytes of the parts of a cached state, on linux/amd64
// with Go 1.26: a hybrid public key holds its encoding and the parsed
// ML-DSA-65 key (its encoding in a fixed 2,592-byte array and a 64-byte
// hash); a device record is about 300 bytes besides its keys, name and
// evidence; an entry (map slot, list element, verified, chain.State, its
// three maps and the account row) the rest. Calibrated against the heap
// an emptied cache releases: 15.3 KB per one-device account at seq 1,
// estimated 15.6 KB (docs/perf.md, "Server memory").
const (
	hybridKeyOverhead = 2592 + 64 + 32 + 96
	deviceOverhead    = 300
	entryOverhead     = 4096
	keyHashOverhead   = 64 // one entry of chain.State's map of used keys
)

// entrySize estimates the heap bytes that caching v as account id's state
// keeps alive.
func entrySize(id string, v *verified) int64 {
	n := int64(entryOverhead + 2*len(id) + len(v.account.Name) + len(v.account.OrgID) + len(v.account.Head.Hash))
	st := v.state
	if st == nil {
		return n
	}
	n += hybridKeySize(st.RecoveryKey())
	if org, ok := st.Org(); ok {
		n += int64(len(org.ID)) + hybridKeySize(org.AdminKey)
	}
	if p, ok := st.PendingRecovery(); ok {
		n += deviceSize(&p.Device)
	}
	for _, d := range st.Devices() {
		n += deviceSize(&d.Device)
	}
	// Every link adds at most a few entries to the maps of used keys and
	// closed recovery requests; they are not exposed, so count by link.
	n += int64(st.Head().Seq+1) * 2 * keyHashOverhead
	return n
}

func deviceSize(d *chain.Device) int64 {
	n := int64(deviceOverhead+len(d.Name)+len(d.KEM)) + hybridKeySize(d.Identity)
	if d.Binding != nil {
		n += 256
	}
	if d.Evidence != nil {
		n += int64(len(d.Evidence.Type) + len(d.Evidence.Data))
	}
	return n
}

func hybridKeySize(k *hybrid.PublicKey) int64 {
	if k == nil {
		return 0
	}
	return int64(hybridKeyOverhead + len(k.Bytes()))
}

// storedLinks reads from the store the links of v's chain with seq >
// after (all when after is negative) and checks that they are the links
// v verified: hash-linked back from v's head, each at its sequence number.
// A row changed in the database since it was verified is refused (an
// *integrityError, logged and counted), never served.
func (s *Server) storedLinks(ctx context.Context, v *verified, after int64) ([][]byte, error) {
	head := v.account.Head
	after = max(after, -1)
	if after >= int64(head.Seq) {
		return [][]byte{}, nil
	}
	want := int64(head.Seq) - after
	rows, err := s.store.Links(ctx, v.account.ID, after, int(want))
	if err != nil {
		return nil, err
	}
	fail := func(format string, args ...any) error {
		err := &integrityError{account: v.account.ID, err: fmt.Errorf(format, args...)}
		s.log.Error("stored chain differs from the chain this server verified; refusing to serve it",
			"account", v.account.ID, "head_seq", head.Seq, "err", err.err)
		s.metrics.integrityFailures.Add(1)
		return err
	}
	if int64(len(rows)) != want {
		return nil, fail("%d links are stored after seq %d, the verified head is seq %d", len(rows), after, head.Seq)
	}
	out := make([][]byte, len(rows))
	next := head.Hash
	for i := len(rows) - 1; i >= 0; i-- {
		seq := uint64(after + 1 + int64(i))
		l, err := chain.ParseLink(rows[i].Data)
		if err != nil {
			return nil, fail("link seq %d: %w", seq, err)
		}
		if l.Seq() != seq || l.Hash().String() != next {
			return nil, fail("the link stored at seq %d (seq %d, %s) is not the verified one (%s)", seq, l.Seq(), l.Hash(), next)
		}
		next = l.Prev().String()
		out[i] = rows[i].Data
	}
	return out, nil
}
