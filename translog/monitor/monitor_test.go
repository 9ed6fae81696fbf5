package monitor_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/translog"
	"github.com/enigm/enigm/translog/monitor"
	"github.com/enigm/enigm/translog/translogtest"
)

// honest returns a log with two accounts and five links, checked once
// by a monitor without findings. Each link is integrated on its own, so
// each is followed by its checkpoint's map leaf: 10 leaves, the links at
// 0, 2, 4, 6 and 8.
func honest(t *testing.T) (*hostLog, *run, []*acct, string) {
	t.Helper()
	h := newHostLog(t, translogtest.NewSigner(t, testOrigin))
	a, ga := genesis(t, "alice")
	b, gb := genesis(t, "bob")
	h.addLinks(ga, gb, a.next(t), a.next(t), b.next(t))
	dir := t.TempDir()
	r := newRun(t, h.srv.URL+"/log/", dir, h.signer)
	fs := r.check()
	only(t, fs)
	if len(fs) != 1 || fs[0].Kind != monitor.KindCheckpoint || fs[0].Size != 10 {
		t.Fatalf("first check: %+v, want one checkpoint event of size 10", fs)
	}
	if c, n := r.m.Verified(); c.Size != 10 || n != 10 {
		t.Fatalf("verified %d of %d, want 10 of 10", n, c.Size)
	}
	return h, r, []*acct{a, b}, dir
}

// TestHonestLog: a log that grows honestly gives checkpoint events and
// no finding, and a new monitor over the same state resumes: it reads
// only the new leaves' bundle and the bundles of the accounts it must
// replay.
func TestHonestLog(t *testing.T) {
	h, r, accts, dir := honest(t)
	h.addLinks(accts[0].next(t)) // leaf 10, its map leaf 11
	fs := r.check()
	only(t, fs)
	if len(fs) != 1 || fs[0].PreviousSize != 10 || fs[0].Size != 12 {
		t.Fatalf("second check: %+v", fs)
	}
	// Nothing new: no event at all.
	only(t, r.check())
	if got := r.check(); len(got) != 0 {
		t.Fatalf("unchanged log: %+v", got)
	}
	// More than a bundle: 300 new accounts and a link of bob's in one
	// integration (leaves 12 to 312, its map leaf 313), then a resumed
	// monitor.
	for i := range 300 {
		_, g := genesis(t, fmt.Sprintf("many%d", i))
		h.st.Add(g.Bytes())
	}
	h.add(accts[1].next(t).Bytes())
	only(t, r.check())
	r.store.Close()

	h.addLinks(accts[0].next(t)) // leaf 314, its map leaf 315
	counted := &countingFetcher{Fetcher: monitor.HTTPFetcher(h.srv.URL+"/log/", nil)}
	r2 := newRun(t, h.srv.URL+"/log/", dir, h.signer, func(c *monitor.Config) { c.Fetcher = counted })
	only(t, r2.check())
	if c, n := r2.m.Verified(); c.Size != 316 || n != 316 {
		t.Fatalf("resumed: verified %d of %d, want 316", n, c.Size)
	}
	// Bundle 1 (the new leaves 314 and 315) and bundle 0 (alice's earlier
	// links, to rebuild her state): not the whole log again.
	if got := strings.Join(counted.entries, " "); got != "1.p/60 0" {
		t.Fatalf("resumed monitor read entry bundles %q, want 1.p/60 then 0", got)
	}
}

type countingFetcher struct {
	monitor.Fetcher
	mu      sync.Mutex
	entries []string
}

func (c *countingFetcher) Entries(ctx context.Context, index, width uint64) ([]byte, error) {
	s := fmt.Sprint(index)
	if width < translog.TileWidth {
		s += fmt.Sprintf(".p/%d", width)
	}
	c.mu.Lock()
	c.entries = append(c.entries, s)
	c.mu.Unlock()
	return c.Fetcher.Entries(ctx, index, width)
}

// TestForkedCheckpoint: the log signs, with its own keys, a tree that
// does not extend the one the monitor verified: at a larger size (the
// consistency proof from its tiles fails) and at the same size (another
// root). Both are inconsistent_checkpoint, reason fork, and the monitor
// keeps its verified checkpoint.
func TestForkedCheckpoint(t *testing.T) {
	h, r, _, _ := honest(t)
	before, _ := r.m.Verified()
	// n genesis links, each integrated with its map leaf: 2n leaves, 14
	// (larger than the verified 10) and 10 (the same size).
	for _, n := range []int{7, 5} {
		fork := newHostLog(t, h.signer)
		_, g := genesis(t, "mallory")
		fork.add(g.Bytes())
		for i := 1; i < n; i++ {
			_, g := genesis(t, fmt.Sprintf("mallory%d", i))
			fork.add(g.Bytes())
		}
		h.mu.Lock()
		h.handler = fork.log.Handler()
		h.mu.Unlock()
		f := only(t, r.check(), monitor.KindInconsistent)[0]
		if f.Reason != "fork" || f.Size != uint64(2*n) || f.PreviousSize != 10 {
			t.Fatalf("size %d: %+v", n, f)
		}
		if c, _ := r.m.Verified(); c != before {
			t.Fatalf("the monitor moved to %+v", c)
		}
	}
}

// TestRolledBackCheckpoint: the log serves an older checkpoint (its own,
// genuinely signed, of fewer leaves) after a newer one.
func TestRolledBackCheckpoint(t *testing.T) {
	h := newHostLog(t, translogtest.NewSigner(t, testOrigin))
	a, g := genesis(t, "alice")
	h.addLinks(g, a.next(t)) // each with its map leaf: 4 leaves
	old := h.checkpoint()
	h.addLinks(a.next(t)) // 6
	r := newRun(t, h.srv.URL+"/log/", t.TempDir(), h.signer)
	only(t, r.check())
	h.set(func(path string, body []byte) []byte {
		if path == "/log/checkpoint" {
			return old
		}
		return body
	})
	f := only(t, r.check(), monitor.KindInconsistent)[0]
	if f.Reason != "rollback" || f.Size != 4 || f.PreviousSize != 6 {
		t.Fatalf("rollback: %+v", f)
	}
}

// TestTamperedEntryBundle: an entry bundle whose leaf was changed (the
// checkpoint and hash tiles genuine), and one that is not length-prefixed
// entries, are bad_entry_bundle; no leaf of them is replayed.
func TestTamperedEntryBundle(t *testing.T) {
	h := newHostLog(t, translogtest.NewSigner(t, testOrigin))
	a, g := genesis(t, "alice")
	h.addLinks(g, a.next(t))
	for name, mutate := range map[string]func([]byte) []byte{
		"one byte of a leaf": func(b []byte) []byte { b = bytes.Clone(b); b[len(b)-1] ^= 1; return b },
		"truncated":          func(b []byte) []byte { return b[:len(b)-1] },
		"a leaf dropped":     func(b []byte) []byte { n := binary.BigEndian.Uint16(b); return b[2+int(n):] },
	} {
		t.Run(name, func(t *testing.T) {
			h.set(func(path string, body []byte) []byte {
				if strings.HasPrefix(path, "/log/tile/entries/") {
					return mutate(body)
				}
				return body
			})
			r := newRun(t, h.srv.URL+"/log/", t.TempDir(), h.signer)
			f := only(t, r.check(), monitor.KindBadEntryBundle)[0]
			if f.Index == nil || *f.Index != 0 {
				t.Fatalf("%+v", f)
			}
			if _, n := r.m.Verified(); n != 0 {
				t.Fatalf("%d leaves taken from a tampered bundle", n)
			}
		})
	}
}

// TestDuplicateLink: the log holds two links at one (account, seq): the
// same link twice, and two different links each signed by the device.
func TestDuplicateLink(t *testing.T) {
	h := newHostLog(t, translogtest.NewSigner(t, testOrigin))
	a, g := genesis(t, "alice")
	r1 := a.rotate(t)
	other := a.rotate(t) // also seq 1, another KEM key
	// Each integrated on its own, with its map leaf: g 0, r1 2, r1 4,
	// other 6 (map leaves at 1, 3, 5, 7).
	h.addLinks(g, r1, r1, other)
	r := newRun(t, h.srv.URL+"/log/", t.TempDir(), h.signer)
	fs := only(t, r.check(), monitor.KindDuplicateLink, monitor.KindDuplicateLink)
	for i, f := range fs {
		if *f.Index != uint64(4+2*i) || *f.FirstIndex != 2 || *f.Seq != 1 || *f.Account != a.st.Account() {
			t.Fatalf("duplicate %d: %+v", i, f)
		}
	}
	// The genesis again (leaf 8) is a duplicate at seq 0.
	h.addLinks(g)
	f := only(t, r.check(), monitor.KindDuplicateLink)[0]
	if *f.Seq != 0 || *f.FirstIndex != 0 || *f.Index != 8 {
		t.Fatalf("genesis twice: %+v", f)
	}
}

// TestLinkInvalid: a leaf whose signature does not verify is
// link_invalid with the chain's code, and the account's later valid link
// still replays; a link that skips a sequence number and a leaf that is
// not a link are link_invalid too.
func TestLinkInvalid(t *testing.T) {
	h := newHostLog(t, translogtest.NewSigner(t, testOrigin))
	a, g := genesis(t, "alice")
	good := a.rotate(t)
	bad := bytes.Clone(good.Bytes())
	bad[len(bad)-1] ^= 1 // the last byte of the last signature
	if _, err := chain.ParseLink(bad); err != nil {
		t.Fatalf("the tampered link must still parse: %v", err)
	}
	h.addLinks(g)
	h.add(bad)
	h.addLinks(good)
	a.st = mustApply(t, a.st, good)
	b, gb := genesis(t, "bob")
	b.next(t)
	gap := b.rotate(t) // seq 2 while bob's log has only seq 0
	h.addLinks(gb, gap)
	h.add([]byte("not a link"))
	// Each add is integrated with its map leaf: g 0, bad 2, good 4, gb 6,
	// gap 8, "not a link" 10 (map leaves at the odd indices).
	r := newRun(t, h.srv.URL+"/log/", t.TempDir(), h.signer)
	fs := only(t, r.check(), monitor.KindLinkInvalid, monitor.KindLinkInvalid, monitor.KindLinkInvalid)
	want := []struct {
		idx  uint64
		code string
	}{{2, "bad_signature"}, {8, "sequence"}, {10, "malformed"}}
	for i, w := range want {
		if *fs[i].Index != w.idx || fs[i].Code != w.code {
			t.Fatalf("finding %d: index %d code %q (%s), want %d %q", i, *fs[i].Index, fs[i].Code, fs[i].Message, w.idx, w.code)
		}
	}
	if *fs[0].Account != a.st.Account() || *fs[0].Seq != 1 {
		t.Fatalf("%+v", fs[0])
	}
}

func mustApply(t *testing.T, s *chain.State, l *chain.Link) *chain.State {
	t.Helper()
	ns, err := chain.Apply(s, l, t0)
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// TestBadSignature: a checkpoint signed by other keys under the log's
// origin, and the genuine one stripped of its ML-DSA-44 line.
func TestBadSignature(t *testing.T) {
	h, r, _, _ := honest(t)
	other := newHostLog(t, translogtest.NewSigner(t, testOrigin))
	_, g := genesis(t, "eve")
	other.add(g.Bytes())
	genuine := h.checkpoint()
	lines := strings.SplitAfter(string(genuine), "\n")
	stripped := strings.Join(lines[:len(lines)-2], "") // text, blank line, Ed25519 line
	for name, cp := range map[string][]byte{"other keys": other.checkpoint(), "no ML-DSA-44": []byte(stripped)} {
		h.set(func(path string, body []byte) []byte {
			if path == "/log/checkpoint" {
				return cp
			}
			return body
		})
		f := only(t, r.check(), monitor.KindBadSignature)[0]
		if f.PreviousSize != 10 {
			t.Fatalf("%s: %+v", name, f)
		}
	}
}

// TestStaleCheckpoint: the same checkpoint served for longer than
// MaxAge is stale (reason unchanged); with witness keys, a checkpoint
// whose newest valid cosignature is older than MaxAge, or that has none,
// is stale (reason witness), and a fresh cosignature is not.
func TestStaleCheckpoint(t *testing.T) {
	h := newHostLog(t, translogtest.NewSigner(t, testOrigin))
	_, g := genesis(t, "alice")
	h.addLinks(g)
	r := newRun(t, h.srv.URL+"/log/", t.TempDir(), h.signer, func(c *monitor.Config) { c.MaxAge = time.Hour })
	only(t, r.check())
	r.clock.Add(59 * time.Minute)
	only(t, r.check())
	r.clock.Add(2 * time.Minute)
	f := only(t, r.check(), monitor.KindStale)[0]
	if f.Reason != "unchanged" || !f.Since.Equal(t0.Add(time.Hour)) {
		t.Fatalf("%+v", f)
	}
	// A new checkpoint is fresh again.
	a2, g2 := genesis(t, "bob")
	h.addLinks(g2, a2.next(t))
	only(t, r.check())

	_, wpriv, _ := ed25519.GenerateKey(rand.Reader)
	_, wkey := translogtest.Cosign("w.enigm.test", wpriv, t0, h.checkpoint())
	now := r.clock.Now()
	for _, c := range []struct {
		name string
		at   time.Time // zero: no cosignature
		want []monitor.Kind
	}{
		{"fresh cosignature", now.Add(-time.Minute), nil},
		{"old cosignature", now.Add(-2 * time.Hour), []monitor.Kind{monitor.KindStale}},
		{"no cosignature", time.Time{}, []monitor.Kind{monitor.KindStale}},
	} {
		cp := h.checkpoint()
		if !c.at.IsZero() {
			line, _ := translogtest.Cosign("w.enigm.test", wpriv, c.at, cp)
			cp = append(cp, line...)
		}
		h.set(func(path string, body []byte) []byte {
			if path == "/log/checkpoint" {
				return cp
			}
			return body
		})
		rw := newRun(t, h.srv.URL+"/log/", t.TempDir(), h.signer, func(cf *monitor.Config) {
			cf.MaxAge, cf.WitnessKeys = time.Hour, []string{wkey}
		})
		rw.clock.Add(now.Sub(rw.clock.Now()))
		fs := only(t, rw.check(), c.want...)
		if len(fs) == 1 && fs[0].Reason != "witness" {
			t.Fatalf("%s: %+v", c.name, fs[0])
		}
	}
}

// mapChecker records the calls and refuses the roots in refuse.
type mapChecker struct {
	calls  []string
	refuse map[uint64]bool
}

func (c *mapChecker) CheckMapRoot(n uint64, root [32]byte, heads monitor.Heads) error {
	var changed int
	for range heads.Changed() {
		changed++
	}
	c.calls = append(c.calls, fmt.Sprintf("%d:%d/%d", n, changed, heads.Len()))
	if c.refuse[n] {
		return errors.New("the root is not the map of the heads")
	}
	return nil
}

func mapLeaf(n uint64, root byte) []byte {
	return fmt.Appendf(nil, "%s%d\n%s\n", translog.MapLeafPrefix, n, base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{root}, 32)))
}

// TestMapLeaves: a map leaf must say N = its own index and be well
// formed; the MapChecker gets each valid one with the replayed heads and
// its refusal is map_leaf_invalid (reason root).
func TestMapLeaves(t *testing.T) {
	h := newHostLog(t, translogtest.NewSigner(t, testOrigin))
	a, g := genesis(t, "alice")
	b, gb := genesis(t, "bob")
	// One integration, so the leaves keep the indices written here; the
	// log's own map leaf follows them, at 8.
	h.add(g.Bytes(), gb.Bytes(),
		mapLeaf(2, 1),     // 2: fine
		a.next(t).Bytes(), // 3
		mapLeaf(3, 2),     // 4: says 3
		[]byte(translog.MapLeafPrefix+"5\nAAAA\n"), // 5: malformed
		b.next(t).Bytes(), // 6
		mapLeaf(7, 3),     // 7: refused by the checker
	)
	mc := &mapChecker{refuse: map[uint64]bool{7: true}}
	r := newRun(t, h.srv.URL+"/log/", t.TempDir(), h.signer, func(c *monitor.Config) { c.Maps = mc })
	fs := only(t, r.check(), monitor.KindMapLeafInvalid, monitor.KindMapLeafInvalid, monitor.KindMapLeafInvalid)
	for i, w := range []struct {
		idx    uint64
		reason string
	}{{4, "size"}, {5, "malformed"}, {7, "root"}} {
		if *fs[i].Index != w.idx || fs[i].Reason != w.reason {
			t.Fatalf("finding %d: %+v, want index %d reason %s", i, fs[i], w.idx, w.reason)
		}
	}
	// Leaf 2: both accounts new (changed 2 of 2); leaf 7: alice and bob
	// changed since leaf 2; leaf 8, the log's: nothing since leaf 7.
	if got := strings.Join(mc.calls, " "); got != "2:2/2 7:2/2 8:0/2" {
		t.Fatalf("map checks %q", got)
	}
}

// TestPinnedKeys: a state pins the log; other keys or another origin
// are refused before anything is read, and no keys at first is an
// error that says what to give.
func TestPinnedKeys(t *testing.T) {
	h, _, _, dir := honest(t)
	other := translogtest.NewSigner(t, testOrigin)
	st, err := monitor.OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f := monitor.HTTPFetcher(h.srv.URL+"/log/", nil)
	for _, c := range []monitor.Config{
		{Fetcher: f, Store: st, Origin: testOrigin, LogKeys: other.VerifierKeys()},
		{Fetcher: f, Store: st, Origin: "other.enigm.test/log"},
	} {
		if _, err := monitor.New(context.Background(), c); !errors.Is(err, monitor.ErrKeys) {
			t.Fatalf("%v, want ErrKeys", err)
		}
	}
	if _, err := monitor.New(context.Background(), monitor.Config{Fetcher: f, Store: st}); err != nil {
		t.Fatalf("the pinned keys: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "monitor.db")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("monitor.db: %v, %v; want mode 0600", fi.Mode(), err)
	}
	st2, _ := monitor.OpenStore(t.TempDir())
	defer st2.Close()
	if _, err := monitor.New(context.Background(), monitor.Config{Fetcher: f, Store: st2}); !errors.Is(err, monitor.ErrKeys) || !strings.Contains(err.Error(), "give the origin") {
		t.Fatalf("no keys at all: %v", err)
	}
}

// TestEvictedStates: with room for one chain.State, accounts whose links
// interleave are rebuilt from their own leaves (authenticated by the
// stored head) and replay without a finding, across chunks; a duplicate
// of an evicted account's link is still found.
func TestEvictedStates(t *testing.T) {
	h := newHostLog(t, translogtest.NewSigner(t, testOrigin))
	var as []*acct
	var leaves [][]byte
	for i := range 40 {
		a, g := genesis(t, fmt.Sprintf("evict%d", i))
		as = append(as, a)
		leaves = append(leaves, g.Bytes())
	}
	h.add(leaves...)
	r := newRun(t, h.srv.URL+"/log/", t.TempDir(), h.signer, func(c *monitor.Config) { c.CachedStates = 1 })
	only(t, r.check())
	// Every later link needs its account's state: 39 of 40 rebuilt.
	leaves = nil
	var first *chain.Link
	for range 3 {
		for _, a := range as {
			l := a.next(t)
			if first == nil {
				first = l
			}
			leaves = append(leaves, l.Bytes())
		}
	}
	h.st.Add(leaves...)
	h.add(first.Bytes())
	counted := &countingFetcher{Fetcher: monitor.HTTPFetcher(h.srv.URL+"/log/", nil)}
	r.store.Close()
	r = newRun(t, h.srv.URL+"/log/", r.dir, h.signer, func(c *monitor.Config) { c.CachedStates = 1; c.Fetcher = counted })
	f := only(t, r.check(), monitor.KindDuplicateLink)[0]
	if len(counted.entries) < 40 {
		t.Fatalf("%d bundle reads: the states were not rebuilt", len(counted.entries))
	}
	// 40 genesis links, their map leaf (40), 120 links from 41 on, the
	// duplicate, and its checkpoint's map leaf.
	if *f.FirstIndex != 41 || *f.Index != 161 {
		t.Fatalf("%+v", f)
	}
	if _, n := r.m.Verified(); n != 163 {
		t.Fatalf("verified %d, want 163", n)
	}
}

// TestBadState: a state directory whose database is not a monitor's is
// refused with ErrStore and left as it was.
func TestBadState(t *testing.T) {
	dir := t.TempDir()
	junk := []byte("this is not an SQLite database, and it is long enough to have a header")
	if err := os.WriteFile(filepath.Join(dir, "monitor.db"), junk, 0o600); err != nil {
		t.Fatal(err)
	}
	if st, err := monitor.OpenStore(dir); !errors.Is(err, monitor.ErrStore) {
		if st != nil {
			st.Close()
		}
		t.Fatalf("OpenStore on junk: %v, want ErrStore", err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "monitor.db")); !bytes.Equal(got, junk) {
		t.Fatal("the file was changed")
	}
}

// TestBadTile: a hash tile that differs from what the verified leaves
// give is bad_tile (the leaves, which hash to the checkpoint's root, are
// still replayed).
func TestBadTile(t *testing.T) {
	h := newHostLog(t, translogtest.NewSigner(t, testOrigin))
	a, g := genesis(t, "alice")
	h.addLinks(g, a.next(t), a.next(t)) // each with its map leaf: 6 leaves
	h.set(func(path string, body []byte) []byte {
		if path == "/log/"+translog.TilePath(0, 0, 6) {
			body = bytes.Clone(body)
			body[32+5] ^= 1 // the hash of leaf 1 (the first map leaf)
		}
		return body
	})
	r := newRun(t, h.srv.URL+"/log/", t.TempDir(), h.signer)
	f := only(t, r.check(), monitor.KindBadTile)[0]
	if *f.Index != 1 || f.Size != 6 {
		t.Fatalf("%+v", f)
	}
	if _, n := r.m.Verified(); n != 6 {
		t.Fatalf("verified %d leaves, want 6", n)
	}
}
