package command

import (
	"container/list"
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/command/store"
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
	// And every link's hash.
	n += int64(st.Head().Seq+1)*2*keyHashOverhead + int64(cap(v.hashes))*32
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
// after (all when after is negative) and checks that each is the link v
// verified at its sequence number: its hash (linkHash, no parsing) is the
// one recorded when it was verified. A row changed in the database since
// is refused (an *integrityError, logged and counted), never served.
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
	if int64(len(rows)) != want || int64(len(v.hashes)) != int64(head.Seq)+1 {
		return nil, fail("%d links are stored after seq %d, the verified head is seq %d", len(rows), after, head.Seq)
	}
	out := make([][]byte, len(rows))
	for i, r := range rows {
		seq := after + 1 + int64(i)
		if r.Seq != uint64(seq) || linkHash(r.Data) != v.hashes[seq] {
			return nil, fail("the link stored at seq %d is not the one verified there (%s)", seq, v.hashes[seq])
		}
		out[i] = r.Data
	}
	return out, nil
}

// linkPrefix is the domain of link hashes (docs/design/chain.md; checked
// against chain.Link.Hash in TestLinkHashIsTheChains).
const linkPrefix = "enigm/v1/link-hash\x00"

// linkHash is chain.Link.Hash of the link encoded as b, without parsing
// it: SHA-256("enigm/v1/link-hash" || 0x00 || b).
func linkHash(b []byte) chain.Hash {
	h := sha256.New()
	h.Write([]byte(linkPrefix))
	h.Write(b)
	var out chain.Hash
	h.Sum(out[:0])
	return out
}

// respCache keeps the encoded whole-chain responses (chain, and chain with
// devices) of the accounts fetched most recently, keyed by account and
// head, within its own budget (an eighth of Config.StateCacheBytes, on top
// of the states'): a repeated device-list fetch at an unchanged head is a
// head check and a write, not a read of every link and an encoding. An
// entry is made from links storedLinks checked, and used only at the head
// it was made for.
type respCache struct {
	mu     sync.Mutex
	m      map[respKey]*list.Element // of *respEntry
	lru    list.List
	bytes  int64
	budget int64
}

type respKey struct {
	id      string
	devices bool
}

type respEntry struct {
	key  respKey
	head store.Head
	b    []byte
}

func newRespCache(budget int64) *respCache {
	c := &respCache{m: make(map[respKey]*list.Element), budget: budget}
	c.lru.Init()
	return c
}

// get returns the response for k at head, nil when none is cached.
func (c *respCache) get(k respKey, head store.Head) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok || e.Value.(*respEntry).head != head {
		return nil
	}
	c.lru.MoveToFront(e)
	return e.Value.(*respEntry).b
}

func respSize(k respKey, b []byte) int64 { return int64(len(b) + len(k.id) + 256) }

// put caches b as the response for k at head, evicting the least recently
// used responses over the budget; a response larger than the budget is
// not cached.
func (c *respCache) put(k respKey, head store.Head, b []byte) {
	size := respSize(k, b)
	if size > c.budget {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[k]; ok {
		old := e.Value.(*respEntry)
		c.bytes -= respSize(k, old.b)
		old.head, old.b = head, b
		c.lru.MoveToFront(e)
	} else {
		c.m[k] = c.lru.PushFront(&respEntry{key: k, head: head, b: b})
	}
	c.bytes += size
	for c.bytes > c.budget {
		last := c.lru.Back()
		old := last.Value.(*respEntry)
		c.lru.Remove(last)
		delete(c.m, old.key)
		c.bytes -= respSize(old.key, old.b)
	}
}

func (c *respCache) stats() (entries int, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len(), c.bytes
}
