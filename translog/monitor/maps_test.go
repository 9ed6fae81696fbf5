package monitor_test

import (
	"bytes"
	"crypto/rand"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/translog"
	"github.com/enigm/enigm/translog/monitor"
	"github.com/enigm/enigm/translog/smap"
	"github.com/enigm/enigm/translog/translogtest"
)

// mapWorld is a log with alice (genesis and two rotations) and bob
// (genesis and one rotation), checked once without a finding; prev is
// alice's head before her newest link.
func mapWorld(t *testing.T) (h *hostLog, r *run, alice chain.AccountID, prev chain.Head) {
	t.Helper()
	h = newHostLog(t, translogtest.NewSigner(t, testOrigin))
	a, ga := genesis(t, "alice")
	b, gb := genesis(t, "bob")
	h.addLinks(ga, gb, a.next(t), b.next(t))
	prev = a.st.Head()
	h.addLinks(a.next(t))
	r = newRun(t, h.srv.URL+"/log/", t.TempDir(), h.signer)
	only(t, r.check())
	return h, r, a.st.Account(), prev
}

// TestMapLies: a log that signs a checkpoint ending in a map leaf at its
// own index but with a lying root — one that gives an account its older
// head (hiding its newest link from freshness proofs), random bytes, or
// a map without one account — is map_leaf_invalid, reason root, at that
// leaf. The same mechanism with the honest root gives no finding.
func TestMapLies(t *testing.T) {
	for _, c := range []struct {
		name string
		lie  func(t *testing.T, h *hostLog, alice chain.AccountID, prev chain.Head, honest *smap.Tree) smap.Hash
		want []monitor.Kind
	}{
		{"honest root", func(_ *testing.T, _ *hostLog, _ chain.AccountID, _ chain.Head, honest *smap.Tree) smap.Hash {
			return honest.Root()
		}, nil},
		{"stale head", func(t *testing.T, _ *hostLog, alice chain.AccountID, prev chain.Head, honest *smap.Tree) smap.Hash {
			if v, ok := honest.Get(smap.Key(alice)); !ok || v.Seq != prev.Seq+1 {
				t.Fatalf("alice's newest link is not after %d in the honest map: %+v", prev.Seq, v)
			}
			honest.Set(smap.Key(alice), smap.Value{Seq: prev.Seq, Head: prev.Hash})
			return honest.Root()
		}, []monitor.Kind{monitor.KindMapLeafInvalid}},
		{"random root", func(_ *testing.T, _ *hostLog, _ chain.AccountID, _ chain.Head, _ *smap.Tree) smap.Hash {
			var h smap.Hash
			rand.Read(h[:])
			return h
		}, []monitor.Kind{monitor.KindMapLeafInvalid}},
		{"an account missing", func(t *testing.T, h *hostLog, alice chain.AccountID, _ chain.Head, honest *smap.Tree) smap.Hash {
			// The map of every link but alice's, from the log's leaves.
			var without smap.Tree
			ls, _ := h.leaves()
			for _, l := range ls {
				if e, ok := translog.LinkEntry(l); ok && e.Key != smap.Key(alice) {
					without.Set(e.Key, e.Value)
				}
			}
			if without.Len() != honest.Len()-1 {
				t.Fatalf("%d accounts without alice, %d with", without.Len(), honest.Len())
			}
			return without.Root()
		}, []monitor.Kind{monitor.KindMapLeafInvalid}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h, r, alice, prev := mapWorld(t)
			k := h.lieInMap(func(honest *smap.Tree) smap.Hash { return c.lie(t, h, alice, prev, honest) })
			fs := only(t, r.check(), c.want...)
			if c, n := r.m.Verified(); c.Size != k+1 || n != k+1 {
				t.Fatalf("verified %d of %d, want the %d leaves of the lying checkpoint", n, c.Size, k+1)
			}
			if len(fs) == 1 && (fs[0].Reason != "root" || *fs[0].Index != k) {
				t.Fatalf("%+v, want reason root at leaf %d", fs[0], k)
			}
		})
	}
}

// TestCheckpointWithoutMapLeaf: a signed checkpoint whose last leaf is a
// link, not the map leaf freshness needs, is map_leaf_invalid, reason
// missing, at its last leaf.
func TestCheckpointWithoutMapLeaf(t *testing.T) {
	h := newHostLog(t, translogtest.NewSigner(t, testOrigin))
	a, g := genesis(t, "alice")
	h.addLinks(g)
	r := newRun(t, h.srv.URL+"/log/", t.TempDir(), h.signer)
	only(t, r.check())
	k := h.signThrough(a.next(t).Bytes())
	f := only(t, r.check(), monitor.KindMapLeafInvalid)[0]
	if f.Reason != "missing" || *f.Index != k || f.Size != k+1 {
		t.Fatalf("%+v, want reason missing at leaf %d of %d", f, k, k+1)
	}
}

// TestMapCheckResumes: a resumed monitor rebuilds the map from its
// stored state, including an account whose last link in log order is a
// link it refused (which the log's map holds): the honest map leaves
// after the restart pass, and a lie after another restart — the map
// naming alice's accepted head instead of the refused link logged after
// it, which a monitor that lost that link would take for the truth — is
// caught.
func TestMapCheckResumes(t *testing.T) {
	h := newHostLog(t, translogtest.NewSigner(t, testOrigin))
	a, g := genesis(t, "alice")
	bad := bytes.Clone(a.rotate(t).Bytes())
	bad[len(bad)-1] ^= 1 // a signature byte: still a link, refused
	b, gb := genesis(t, "bob")
	h.addLinks(g)
	h.add(bad)
	h.addLinks(gb)
	dir := t.TempDir()
	r := newRun(t, h.srv.URL+"/log/", dir, h.signer)
	only(t, r.check(), monitor.KindLinkInvalid)
	r.store.Close()

	h.addLinks(b.next(t))
	r = newRun(t, h.srv.URL+"/log/", dir, h.signer)
	only(t, r.check())
	r.store.Close()

	genesisHead := a.st.Head()
	k := h.lieInMap(func(honest *smap.Tree) smap.Hash {
		honest.Set(smap.Key(a.st.Account()), smap.Value{Seq: genesisHead.Seq, Head: genesisHead.Hash})
		return honest.Root()
	})
	r = newRun(t, h.srv.URL+"/log/", dir, h.signer)
	f := only(t, r.check(), monitor.KindMapLeafInvalid)[0]
	if f.Reason != "root" || *f.Index != k {
		t.Fatalf("%+v, want reason root at leaf %d", f, k)
	}
}

// TestStateVersion1: a state written by a monitor that kept no map heads
// (schema version 1) keeps its pinned keys and verified checkpoint and
// replays every leaf again, so the map check starts from a complete
// state: the refused link is reported again, no map leaf is.
func TestStateVersion1(t *testing.T) {
	h := newHostLog(t, translogtest.NewSigner(t, testOrigin))
	a, g := genesis(t, "alice")
	bad := bytes.Clone(a.rotate(t).Bytes())
	bad[len(bad)-1] ^= 1
	h.addLinks(g)
	h.add(bad)
	dir := t.TempDir()
	r := newRun(t, h.srv.URL+"/log/", dir, h.signer)
	only(t, r.check(), monitor.KindLinkInvalid)
	before, _ := r.m.Verified()
	r.store.Close()

	db, err := sql.Open("sqlite", filepath.Join(dir, "monitor.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`DROP TABLE map_heads`, `UPDATE meta SET v = CAST('1' AS BLOB) WHERE k = 'version'`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	r = newRun(t, h.srv.URL+"/log/", dir, h.signer)
	if c, n := r.m.Verified(); c != before || n != 0 {
		t.Fatalf("after the upgrade: checkpoint %+v with %d leaves replayed, want %+v with 0", c, n, before)
	}
	h.addLinks(a.next(t)) // alice's valid seq 1 after the refused one
	only(t, r.check(), monitor.KindLinkInvalid)
	if c, n := r.m.Verified(); n != c.Size || n != 6 {
		t.Fatalf("verified %d of %d, want 6", n, c.Size)
	}
}
