package monitor

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/translog"
)

// Bounds.
const (
	// chunkBundles is how many entry bundles are verified against the
	// checkpoint (and their links replayed and stored) in one step.
	chunkBundles = 16
	// maxCachedTiles bounds the hash tiles kept in memory (8 KiB each).
	maxCachedTiles = 1024
	// DefaultCachedStates bounds the chain.States kept in memory.
	DefaultCachedStates = 4096
)

// ErrKeys: the log keys or origin given differ from those the state
// pinned, or none are known. Nothing is checked; give the pinned ones or
// use another state directory.
var ErrKeys = errors.New("monitor: log keys")

// Config configures a Monitor.
type Config struct {
	// Fetcher reads the log (HTTPFetcher).
	Fetcher Fetcher
	// Store keeps the state between runs.
	Store *Store
	// Origin and LogKeys (note verifier keys, all of which must sign
	// every checkpoint) pin the log. At the first run they are stored;
	// later they must be the stored ones, or empty to use them.
	Origin  string
	LogKeys []string
	// WitnessKeys are cosignature verifier keys (c2sp.org
	// tlog-cosignature); with MaxAge, the newest verified cosignature
	// must be at most MaxAge old.
	WitnessKeys []string
	// MaxAge is how long the served checkpoint may stay unchanged (and
	// its newest witness cosignature be old) before it is stale; 0: no
	// staleness check.
	MaxAge time.Duration
	// Maps compares map leaves with the replayed heads; nil: the
	// monitor's own, which recomputes the sparse Merkle map (smap) of
	// the heads incrementally and compares roots. A MapChecker serves one
	// Monitor.
	Maps MapChecker
	// ChainOptions are passed to chain.Apply (an attestation verifier,
	// which must be safe for concurrent use: accounts are replayed in
	// parallel).
	ChainOptions []chain.Option
	// CachedStates bounds the chain.States kept in memory (0: the
	// default).
	CachedStates int
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Report receives every finding and checkpoint event (nil: dropped).
	Report func(Finding)
	// Progress receives catch-up progress after each chunk (nil: none).
	Progress func(Progress)
}

// Monitor follows one log. Not safe for concurrent use.
type Monitor struct {
	cfg      Config
	st       state
	cp       translog.Checkpoint // the verified st.checkpoint
	accounts map[chain.AccountID]*account
	states   map[chain.AccountID]*chain.State
	dirty    map[chain.AccountID]struct{}
	// mapHeads: where an account's last link in log order (what the
	// log's map holds) is not its accepted head, that link's (seq,
	// hash); mapDirty: the ids whose entry changed since the last save.
	mapHeads map[chain.AccountID]chain.Head
	mapDirty map[chain.AccountID]struct{}
	sinceMap map[chain.AccountID]struct{} // nil until the first map leaf of this run
	rf       *compact.RangeFactory
	tiles    map[[3]uint64][]byte // hash tiles read, by level, index and width
	problems int
	started  time.Time
	done     uint64 // leaves verified in this run
}

// New loads the state and returns a monitor.
func New(ctx context.Context, cfg Config) (*Monitor, error) {
	if cfg.Fetcher == nil || cfg.Store == nil {
		return nil, errors.New("monitor: a Fetcher and a Store are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CachedStates <= 0 {
		cfg.CachedStates = DefaultCachedStates
	}
	if len(cfg.WitnessKeys) > 0 {
		if _, err := translog.Cosignatures(nil, cfg.WitnessKeys); errors.Is(err, translog.ErrBadKey) {
			return nil, err
		}
	}
	if cfg.Maps == nil {
		cfg.Maps = NewMapChecker()
	}
	st, accts, mapHeads, err := cfg.Store.load(ctx)
	if err != nil {
		return nil, err
	}
	m := &Monitor{cfg: cfg, st: st, accounts: accts, states: map[chain.AccountID]*chain.State{},
		dirty: map[chain.AccountID]struct{}{}, mapHeads: mapHeads, mapDirty: map[chain.AccountID]struct{}{},
		tiles: map[[3]uint64][]byte{}, rf: &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}}
	switch {
	case st.origin == "" && (cfg.Origin == "" || len(cfg.LogKeys) == 0):
		return nil, fmt.Errorf("%w: the state pins no log yet: give the origin and the log's verifier keys", ErrKeys)
	case st.origin == "":
		if _, err := translog.VerifyCheckpoint(nil, cfg.Origin, cfg.LogKeys); errors.Is(err, translog.ErrBadKey) {
			return nil, err
		}
		m.st.origin, m.st.keys = cfg.Origin, slices.Clone(cfg.LogKeys)
	case cfg.Origin != "" && cfg.Origin != st.origin:
		return nil, fmt.Errorf("%w: the state follows the log %q, not %q", ErrKeys, st.origin, cfg.Origin)
	case len(cfg.LogKeys) > 0 && !sameKeys(cfg.LogKeys, st.keys):
		return nil, fmt.Errorf("%w: the state pinned other keys for %q (%d of them); a log that changed its keys must be followed from a new state", ErrKeys, st.origin, len(st.keys))
	}
	if m.st.checkpoint != nil {
		c, err := translog.VerifyCheckpoint(m.st.checkpoint, m.st.origin, m.st.keys)
		if err != nil {
			return nil, fmt.Errorf("%w: the stored checkpoint: %v", ErrStore, err)
		}
		m.cp = c
	}
	if m.st.size > m.cp.Size {
		return nil, fmt.Errorf("%w: %d leaves verified beyond the stored checkpoint's %d", ErrStore, m.st.size, m.cp.Size)
	}
	if _, err := m.loadRange(); err != nil {
		return nil, err
	}
	return m, nil
}

func sameKeys(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// Origin returns the followed log's origin; Keys its pinned keys.
func (m *Monitor) Origin() string { return m.st.origin }

// Keys returns the pinned log keys.
func (m *Monitor) Keys() []string { return slices.Clone(m.st.keys) }

// Verified returns the last verified checkpoint and how many of its
// leaves are verified and replayed.
func (m *Monitor) Verified() (translog.Checkpoint, uint64) { return m.cp, m.st.size }

// Problems returns how many findings (not progress events) were reported
// by this Monitor.
func (m *Monitor) Problems() int { return m.problems }

func (m *Monitor) report(f Finding) {
	if f.IsProblem() {
		m.problems++
	}
	if m.cfg.Report != nil {
		m.cfg.Report(f)
	}
}

// Check fetches the served checkpoint, checks it and catches up with it.
// Findings go to Config.Report; the error is for what stopped the check
// (the log unreachable, the state unwritable), not for findings.
func (m *Monitor) Check(ctx context.Context) error {
	raw, err := m.cfg.Fetcher.Checkpoint(ctx)
	if err != nil {
		return err
	}
	now := m.cfg.Now()
	cp, err := translog.VerifyCheckpoint(raw, m.st.origin, m.st.keys)
	if err != nil {
		m.report(Finding{Kind: KindBadSignature, Message: fmt.Sprintf("the served checkpoint does not verify under the pinned log keys: %v", err),
			PreviousSize: m.cp.Size, PreviousRoot: m.prevRoot()})
		return nil
	}
	m.checkStale(raw, cp, now)
	if err := m.advance(ctx, raw, cp); err != nil {
		return err
	}
	if m.cp.Size == cp.Size && m.cp.Hash == cp.Hash {
		if err := m.catchUp(ctx); err != nil {
			return err
		}
	}
	return m.save(ctx)
}

func (m *Monitor) prevRoot() []byte {
	if m.st.checkpoint == nil {
		return nil
	}
	return bytes.Clone(m.cp.Hash[:])
}

func (m *Monitor) save(ctx context.Context) error {
	if err := m.cfg.Store.save(ctx, m.st, m.accounts, m.dirty, m.mapHeads, m.mapDirty); err != nil {
		return err
	}
	clear(m.dirty)
	clear(m.mapDirty)
	return nil
}

// checkStale reports a checkpoint whose bytes stayed the same for longer
// than MaxAge, or whose newest witness cosignature is older.
func (m *Monitor) checkStale(raw []byte, cp translog.Checkpoint, now time.Time) {
	if !bytes.Equal(raw, m.st.seen) {
		m.st.seen, m.st.seenAt = bytes.Clone(raw), now
	}
	if m.cfg.MaxAge <= 0 {
		return
	}
	if age := now.Sub(m.st.seenAt); age > m.cfg.MaxAge {
		m.report(Finding{Kind: KindStale, Reason: "unchanged", Size: cp.Size, Root: bytes.Clone(cp.Hash[:]), Since: m.st.seenAt,
			Message: fmt.Sprintf("the log has served the same checkpoint (size %d) since %s, longer than %v", cp.Size, m.st.seenAt.Format(time.RFC3339), m.cfg.MaxAge)})
	}
	if len(m.cfg.WitnessKeys) == 0 {
		return
	}
	cs, err := translog.Cosignatures(raw, m.cfg.WitnessKeys)
	var newest time.Time
	for _, c := range cs {
		if c.Valid && c.Time.After(newest) {
			newest = c.Time
		}
	}
	if err != nil || newest.IsZero() {
		m.report(Finding{Kind: KindStale, Reason: "witness", Size: cp.Size, Root: bytes.Clone(cp.Hash[:]),
			Message: fmt.Sprintf("the checkpoint of size %d carries no valid cosignature from the %d witness keys given", cp.Size, len(m.cfg.WitnessKeys))})
		return
	}
	if now.Sub(newest) > m.cfg.MaxAge {
		m.report(Finding{Kind: KindStale, Reason: "witness", Size: cp.Size, Root: bytes.Clone(cp.Hash[:]), Since: newest,
			Message: fmt.Sprintf("the newest witness cosignature of the checkpoint of size %d is from %s, older than %v", cp.Size, newest.Format(time.RFC3339), m.cfg.MaxAge)})
	}
}

// advance makes cp the verified checkpoint if it is consistent with the
// stored one, and reports it otherwise.
func (m *Monitor) advance(ctx context.Context, raw []byte, cp translog.Checkpoint) error {
	if m.st.checkpoint != nil && cp.Size == m.cp.Size && cp.Hash == m.cp.Hash {
		return nil
	}
	f := Finding{Kind: KindInconsistent, Size: cp.Size, Root: bytes.Clone(cp.Hash[:]), PreviousSize: m.cp.Size, PreviousRoot: m.prevRoot()}
	if m.st.checkpoint != nil {
		switch {
		case cp.Size < m.cp.Size:
			f.Reason = "rollback"
			f.Message = fmt.Sprintf("the log serves a tree of %d leaves after it signed one of %d", cp.Size, m.cp.Size)
			m.report(f)
			return nil
		case cp.Size == m.cp.Size:
			f.Reason = "fork"
			f.Message = fmt.Sprintf("the log signed two trees of %d leaves with different roots", cp.Size)
			m.report(f)
			return nil
		}
		p, err := m.consistencyProof(ctx, m.cp.Size, cp.Size)
		if err != nil {
			return err
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, m.cp.Size, cp.Size, p, m.cp.Hash[:], cp.Hash[:]); err != nil {
			f.Reason = "fork"
			f.Message = fmt.Sprintf("the tree of %d leaves is not an extension of the verified tree of %d (its hash tiles give no valid consistency proof: %v)", cp.Size, m.cp.Size, err)
			m.report(f)
			return nil
		}
	}
	prevSize, prevRoot := m.cp.Size, m.prevRoot()
	msg := fmt.Sprintf("checkpoint of %d leaves verified, consistent with the previous one of %d", cp.Size, prevSize)
	if prevRoot == nil {
		msg = fmt.Sprintf("first checkpoint, of %d leaves, verified (later ones must be consistent with it)", cp.Size)
	}
	m.st.checkpoint, m.cp = bytes.Clone(raw), cp
	m.report(Finding{Kind: KindCheckpoint, Size: cp.Size, Root: bytes.Clone(cp.Hash[:]), PreviousSize: prevSize, PreviousRoot: prevRoot, Message: msg})
	return m.save(ctx)
}

// consistencyProof builds the consistency proof from size a to size b
// (a ≤ b) from the hash tiles of the tree of size b.
func (m *Monitor) consistencyProof(ctx context.Context, a, b uint64) ([][]byte, error) {
	n, err := proof.Consistency(a, b)
	if err != nil {
		return nil, err
	}
	p, err := translog.ProofFromTiles(ctx, n, m.tileReader(b))
	if err != nil {
		return nil, fmt.Errorf("the consistency proof from %d to %d: %w", a, b, err)
	}
	return p, nil
}

// tileReader reads the hash tiles of the tree of size size, each at the
// width that tree has.
func (m *Monitor) tileReader(size uint64) translog.TileReader {
	return func(ctx context.Context, level, index uint64) ([]byte, error) {
		nodes := size >> (8 * level)
		if level >= 8 || index > nodes/translog.TileWidth || (index == nodes/translog.TileWidth && nodes%translog.TileWidth == 0) {
			return nil, fmt.Errorf("%w: tile %d/%d is beyond the tree of %d", ErrNotServed, level, index, size)
		}
		w := min(uint64(translog.TileWidth), nodes-index*translog.TileWidth)
		key := [3]uint64{level, index, w}
		if t, ok := m.tiles[key]; ok {
			return t, nil
		}
		t, err := m.cfg.Fetcher.Tile(ctx, level, index, w)
		if err != nil {
			return nil, err
		}
		if uint64(len(t)) != w*sha256.Size {
			return nil, fmt.Errorf("%w: tile %d/%d of width %d is %d bytes", ErrNotServed, level, index, w, len(t))
		}
		if len(m.tiles) >= maxCachedTiles {
			clear(m.tiles)
		}
		m.tiles[key] = t
		return t, nil
	}
}

func (m *Monitor) loadRange() (*compact.Range, error) {
	if len(m.st.rng)%sha256.Size != 0 {
		return nil, fmt.Errorf("%w: compact range of %d bytes", ErrStore, len(m.st.rng))
	}
	var hs [][]byte
	for b := m.st.rng; len(b) > 0; b = b[sha256.Size:] {
		hs = append(hs, b[:sha256.Size:sha256.Size])
	}
	r, err := m.rf.NewRange(0, m.st.size, hs)
	if err != nil {
		return nil, fmt.Errorf("%w: compact range: %v", ErrStore, err)
	}
	return r, nil
}

// catchUp verifies and replays the leaves [st.size, cp.Size) in chunks,
// each proved a prefix of the checkpoint's tree before it is used.
func (m *Monitor) catchUp(ctx context.Context) error {
	total := m.cp.Size
	if m.st.size >= total {
		return nil
	}
	if m.started.IsZero() {
		m.started = time.Now()
	}
	// The next chunk's bundles are fetched while this one is replayed.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type fetched struct {
		leaves [][]byte
		bad    *Finding
		err    error
	}
	chunkEnd := func(start uint64) uint64 {
		return min(total, (start/translog.TileWidth+chunkBundles)*translog.TileWidth)
	}
	fetch := func(start uint64) <-chan fetched {
		ch := make(chan fetched, 1)
		go func() {
			l, bad, err := m.fetchLeaves(ctx, start, chunkEnd(start), total)
			ch <- fetched{l, bad, err}
		}()
		return ch
	}
	next := fetch(m.st.size)
	for m.st.size < total {
		start := m.st.size
		end := chunkEnd(start)
		got := <-next
		if end < total {
			next = fetch(end)
		}
		leaves, bad, err := got.leaves, got.bad, got.err
		if err != nil {
			return err
		}
		if bad != nil {
			m.report(*bad)
			return nil
		}
		r, err := m.loadRange()
		if err != nil {
			return err
		}
		// The nodes at tile levels, to compare with the served tiles.
		computed := map[[2]uint64]map[uint64][]byte{}
		visit := func(id compact.NodeID, h []byte) {
			if id.Level%8 != 0 {
				return
			}
			key := [2]uint64{uint64(id.Level / 8), id.Index / translog.TileWidth}
			if computed[key] == nil {
				computed[key] = map[uint64][]byte{}
			}
			computed[key][id.Index%translog.TileWidth] = bytes.Clone(h)
		}
		for _, l := range leaves {
			if err := r.Append(rfc6962.DefaultHasher.HashLeaf(l), visit); err != nil {
				return err
			}
		}
		root, err := r.GetRootHash(nil)
		if err != nil {
			return err
		}
		ok := bytes.Equal(root, m.cp.Hash[:])
		var why error
		if end < total {
			p, err := m.consistencyProof(ctx, end, total)
			if err != nil {
				return err
			}
			why = proof.VerifyConsistency(rfc6962.DefaultHasher, end, total, p, root, m.cp.Hash[:])
			ok = why == nil
		}
		if !ok {
			msg := fmt.Sprintf("the entry bundles of leaves [%d, %d) do not hash to the root of the verified checkpoint of %d leaves", start, end, total)
			if why != nil {
				msg = fmt.Sprintf("the entry bundles of leaves [%d, %d) do not hash to a prefix of the verified checkpoint of %d leaves (%v)", start, end, total, why)
			}
			m.report(Finding{Kind: KindBadEntryBundle, Index: u64(start), Size: total, Root: bytes.Clone(m.cp.Hash[:]), Message: msg})
			return nil
		}
		if err := m.checkTiles(ctx, computed, total); err != nil {
			return err
		}
		m.replay(ctx, start, leaves)
		if end == total {
			m.checkLastLeaf(leaves[len(leaves)-1])
		}
		m.st.size, m.st.rng = end, bytes.Join(r.Hashes(), nil)
		if err := m.save(ctx); err != nil {
			return err
		}
		m.done += end - start
		if m.cfg.Progress != nil {
			m.cfg.Progress(Progress{Done: end, Total: total, Rate: float64(m.done) / time.Since(m.started).Seconds()})
		}
	}
	return nil
}

// checkTiles compares the tile-level nodes computed from verified leaves
// with the hash tiles the log serves for the tree of size total.
func (m *Monitor) checkTiles(ctx context.Context, computed map[[2]uint64]map[uint64][]byte, total uint64) error {
	keys := make([][2]uint64, 0, len(computed))
	for k := range computed {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [2]uint64) int {
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		return cmp.Compare(a[1], b[1])
	})
	read := m.tileReader(total)
	for _, k := range keys {
		t, err := read(ctx, k[0], k[1])
		if err != nil {
			return fmt.Errorf("hash tile %d/%d: %w", k[0], k[1], err)
		}
		var bad []uint64
		for pos, h := range computed[k] {
			if (pos+1)*sha256.Size > uint64(len(t)) || !bytes.Equal(t[pos*sha256.Size:(pos+1)*sha256.Size], h) {
				bad = append(bad, pos)
			}
		}
		if len(bad) > 0 {
			slices.Sort(bad)
			m.report(Finding{Kind: KindBadTile, Size: total, Root: bytes.Clone(m.cp.Hash[:]), Index: u64(k[1]*translog.TileWidth + bad[0]),
				Message: fmt.Sprintf("hash tile %d/%d of the tree of %d leaves holds %d hashes that the verified leaves do not give (first at position %d); proofs built from it fail", k[0], k[1], total, len(bad), bad[0])})
		}
	}
	return nil
}

// fetchLeaves reads the leaves [start, end) of the tree of size total
// from its entry bundles. A malformed bundle is a finding.
func (m *Monitor) fetchLeaves(ctx context.Context, start, end, total uint64) ([][]byte, *Finding, error) {
	var out [][]byte
	for b := start / translog.TileWidth; b*translog.TileWidth < end; b++ {
		all, bad, err := m.bundle(ctx, b, total)
		if err != nil || bad != nil {
			return nil, bad, err
		}
		first := b * translog.TileWidth
		lo, hi := max(start, first)-first, min(end, first+uint64(len(all)))-first
		out = append(out, all[lo:hi]...)
	}
	return out, nil, nil
}

// bundle reads entry bundle b of the tree of size total and splits it.
func (m *Monitor) bundle(ctx context.Context, b, total uint64) ([][]byte, *Finding, error) {
	w := min(uint64(translog.TileWidth), total-b*translog.TileWidth)
	data, err := m.cfg.Fetcher.Entries(ctx, b, w)
	if err != nil {
		return nil, nil, err
	}
	leaves, ok := splitBundle(data, w)
	if !ok {
		return nil, &Finding{Kind: KindBadEntryBundle, Index: u64(b * translog.TileWidth), Size: total, Root: bytes.Clone(m.cp.Hash[:]),
			Message: fmt.Sprintf("entry bundle %d (width %d) of %d bytes is not %d length-prefixed entries", b, w, len(data), w)}, nil
	}
	return leaves, nil, nil
}

// splitBundle splits an entry bundle into exactly w entries, each behind
// a big-endian uint16 length, with nothing left over.
func splitBundle(data []byte, w uint64) ([][]byte, bool) {
	leaves := make([][]byte, 0, min(w, translog.TileWidth))
	for rest := data; len(rest) > 0; {
		if len(rest) < 2 || len(rest) < 2+int(binary.BigEndian.Uint16(rest)) {
			return nil, false
		}
		n := int(binary.BigEndian.Uint16(rest))
		leaves = append(leaves, rest[2:2+n:2+n])
		rest = rest[2+n:]
	}
	return leaves, uint64(len(leaves)) == w
}

func (m *Monitor) linkFinding(idx uint64, l *chain.Link, err error, format string, args ...any) Finding {
	f := Finding{Kind: KindLinkInvalid, Index: u64(idx), Message: fmt.Sprintf(format, args...)}
	if c, ok := chain.CodeOf(err); ok {
		f.Code = c.String()
	}
	if l != nil {
		id, seq := l.Account(), l.Seq()
		if l.Type() == chain.TypeGenesis {
			id = chain.AccountID(l.Hash())
		}
		f.Account, f.Seq = &id, &seq
	}
	return f
}

func (m *Monitor) mapLeaf(idx uint64, data []byte) {
	n, root, err := translog.ParseMapLeaf(data)
	f := Finding{Kind: KindMapLeafInvalid, Index: u64(idx), Size: m.cp.Size, Root: bytes.Clone(m.cp.Hash[:])}
	switch {
	case err != nil:
		f.Reason, f.Message = "malformed", fmt.Sprintf("map leaf %d: %s", idx, strings.TrimPrefix(err.Error(), "translog: "))
	case n != idx:
		f.Reason, f.Message = "size", fmt.Sprintf("map leaf %d says it covers leaves 0..%d; a map leaf covers exactly the leaves before it", idx, n)
	default:
		err = m.cfg.Maps.CheckMapRoot(n, root, headView{m})
		if m.sinceMap == nil {
			m.sinceMap = map[chain.AccountID]struct{}{}
		}
		clear(m.sinceMap)
		if err == nil {
			return
		}
		f.Reason, f.Message = "root", fmt.Sprintf("map leaf %d: %v", idx, err)
	}
	m.report(f)
}

// checkLastLeaf reports a verified checkpoint whose last leaf is not a
// map leaf (translog.CheckCheckpointLeaf): then no freshness proof can be
// given for it. A last leaf that is a map leaf but malformed or naming
// another index was reported by mapLeaf already.
func (m *Monitor) checkLastLeaf(last []byte) {
	err := translog.CheckCheckpointLeaf(m.cp, last)
	if err == nil || translog.IsMapLeaf(last) {
		return
	}
	m.report(Finding{Kind: KindMapLeafInvalid, Reason: "missing", Index: u64(m.cp.Size - 1), Size: m.cp.Size, Root: bytes.Clone(m.cp.Hash[:]),
		Message: fmt.Sprintf("the checkpoint of %d leaves does not end in a map leaf: its last leaf (%d) is not the map leaf every checkpoint must end in, so no freshness proof can be given for it (a log from before the map gets it at its next integration; if it stays, the log withholds freshness)", m.cp.Size, m.cp.Size-1)})
}

// cache keeps s for id, evicting another state when full.
func (m *Monitor) cache(id chain.AccountID, s *chain.State) {
	if _, ok := m.states[id]; !ok && len(m.states) >= m.cfg.CachedStates {
		for k := range m.states {
			delete(m.states, k)
			break
		}
	}
	m.states[id] = s
}

// rebuild returns the chain state of a known account, rebuilt from its
// leaves, which must replay to the stored head. It only reads m.
func (m *Monitor) rebuild(ctx context.Context, a *account) (*chain.State, error) {
	bundles := map[uint64][][]byte{}
	var s *chain.State
	for seq, idx := range a.leaves {
		b := idx / translog.TileWidth
		all, ok := bundles[b]
		if !ok {
			var bad *Finding
			var err error
			all, bad, err = m.bundle(ctx, b, m.cp.Size)
			if err != nil {
				return nil, err
			}
			if bad != nil {
				return nil, errors.New(bad.Message)
			}
			bundles[b] = all
		}
		l, err := chain.ParseLink(all[idx%translog.TileWidth])
		if err != nil {
			return nil, fmt.Errorf("leaf %d (link %d) no longer parses: %w", idx, seq, err)
		}
		if s, err = chain.Apply(s, l, m.cfg.Now(), m.cfg.ChainOptions...); err != nil {
			return nil, fmt.Errorf("leaf %d (link %d) no longer verifies: %w", idx, seq, err)
		}
	}
	if s == nil || s.Head() != a.head {
		return nil, fmt.Errorf("the leaves served now replay to another head than the verified %d/%s", a.head.Seq, a.head.Hash)
	}
	return s, nil
}
