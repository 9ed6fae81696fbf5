package translog_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"testing"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/translog"
	"github.com/enigm/enigm/translog/smap"
	"github.com/enigm/enigm/translog/translogtest"
)

// TestMapLeafGolden pins the map leaf's bytes, its one spelling, and that
// no chain link parser takes it for a link.
func TestMapLeafGolden(t *testing.T) {
	root := smap.Hash{0: 0xff, 31: 0x01}
	want := testkit.Unannotate(t, `
		"enigm.map/v1" 0a           // prefix
		"42" 0a                     // index of this leaf = the leaves it reflects
		"/wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE=" 0a // base64 of the root
	`)
	got := translog.MapLeaf(42, root)
	if !bytes.Equal(got, want) {
		t.Fatalf("map leaf %q, want %q", got, want)
	}
	n, r, err := translog.ParseMapLeaf(got)
	if err != nil || n != 42 || r != root || !translog.IsMapLeaf(got) {
		t.Fatalf("ParseMapLeaf: %d %x %v", n, r, err)
	}
	if _, err := chain.ParseLink(got); err == nil {
		t.Fatal("chain.ParseLink takes a map leaf for a link")
	}
	for _, bad := range []string{
		"enigm.map/v1\n042\n/wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE=\n",
		"enigm.map/v1\n42\n/wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE\n",
		"enigm.map/v1\n42\n/wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE=\nextra\n",
		"enigm.map/v1\n42\n/wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE=",
		"enigm.map/v1\n-1\n/wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE=\n",
		"enigm.map/v2\n42\n/wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE=\n",
	} {
		if _, _, err := translog.ParseMapLeaf([]byte(bad)); err == nil {
			t.Errorf("ParseMapLeaf(%q) accepted", bad)
		}
	}
}

// world is a memory log with a few real chains whose links were
// appended, interleaved, and integrated.
type world struct {
	l      *translog.Log
	st     *translogtest.MemStorage
	s      *translog.Signer
	chains []*translogtest.Chain
}

func newWorld(t *testing.T, accounts, links int) *world {
	t.Helper()
	w := &world{st: newMemStorage(), s: newSigner(t)}
	w.l = translog.New(w.st, w.s)
	for i := range accounts {
		c := translogtest.NewChain(t, fmt.Sprintf("acct%d", i))
		w.chains = append(w.chains, c)
		w.st.Add(c.Links[0].Bytes())
	}
	for range links - 1 {
		for _, c := range w.chains {
			w.st.Add(c.Next(t).Bytes())
		}
	}
	w.integrate(t)
	return w
}

func (w *world) integrate(t *testing.T) translog.Checkpoint {
	t.Helper()
	c, err := w.l.Integrate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// check verifies the freshness proof of c at checkpoint cp and returns
// what it proves.
func check(t *testing.T, l *translog.Log, cp translog.Checkpoint, id chain.AccountID) *smap.Value {
	t.Helper()
	f, err := l.Freshness(context.Background(), smap.Key(id))
	if err != nil {
		t.Fatal(err)
	}
	if err := translog.VerifyFreshness(cp, smap.Key(id), f); err != nil {
		t.Fatalf("freshness of %s: %v", id, err)
	}
	return f.Value
}

func valueOf(h chain.Head) *smap.Value { return &smap.Value{Seq: h.Seq, Head: h.Hash} }

// TestFreshness: every checkpoint ends in a map leaf whose map gives each
// account its newest link; the freshness proof of each account verifies
// against the checkpoint and proves that head, an unknown account proves
// absent, and after more links the old head is no longer what the log
// proves. Monitors recompute the same roots from the leaves alone.
func TestFreshness(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, 4, 3)
	cp := w.integrate(t)
	if cp.Size != 4*3+1 {
		t.Fatalf("checkpoint of %d leaves, want 12 links and the map leaf", cp.Size)
	}
	for _, c := range w.chains {
		if v := check(t, w.l, cp, c.ID); v == nil || *v != *valueOf(c.Head()) {
			t.Fatalf("%s: the log proves %v, its head is %v", c, v, c.Head())
		}
	}
	if v := check(t, w.l, cp, chain.AccountID{1, 2, 3}); v != nil {
		t.Fatalf("an unknown account proves %v", v)
	}

	old := w.chains[2].Head()
	w.st.Add(w.chains[2].Next(t).Bytes())
	if v := check(t, w.l, cp, w.chains[2].ID); *v != *valueOf(old) {
		t.Fatal("a link not yet integrated changed the proven head")
	}
	cp2 := w.integrate(t)
	if cp2.Size != cp.Size+2 {
		t.Fatalf("checkpoint of %d leaves after one more link, want %d", cp2.Size, cp.Size+2)
	}
	v := check(t, w.l, cp2, w.chains[2].ID)
	if *v == *valueOf(old) || *v != *valueOf(w.chains[2].Head()) {
		t.Fatalf("after the new link the log proves %v, want the new head %v", v, w.chains[2].Head())
	}
	// A proof for the old checkpoint does not verify under the new one.
	f, _ := w.l.Freshness(ctx, smap.Key(w.chains[0].ID))
	if err := translog.VerifyFreshness(cp, smap.Key(w.chains[0].ID), f); !errors.Is(err, translog.ErrNotFresh) {
		t.Fatalf("a proof of the newer checkpoint against the older: %v", err)
	}

	// Nothing new: no new checkpoint, no new map leaf.
	if cp3 := w.integrate(t); cp3 != cp2 {
		t.Fatalf("Integrate with nothing new made checkpoint %d", cp3.Size)
	}
	leaves, _ := w.st.Leaves(ctx, 0, cp2.Size)
	if err := translog.CheckMapLeaves(leaves); err != nil {
		t.Fatal(err)
	}
	var mc translog.MapChecker
	var maps int
	for _, lf := range leaves {
		isMap, err := mc.Add(lf)
		if err != nil {
			t.Fatal(err)
		}
		if isMap {
			maps++
		}
	}
	if maps != 2 {
		t.Fatalf("%d map leaves; want one as the last leaf of each checkpoint", maps)
	}
	for _, c := range []translog.Checkpoint{cp, cp2} {
		if err := translog.CheckCheckpointLeaf(c, leaves[c.Size-1]); err != nil {
			t.Fatal(err)
		}
	}
	// A checkpoint that ends in a link, or in a map leaf of another index.
	if err := translog.CheckCheckpointLeaf(translog.Checkpoint{Size: cp.Size - 1}, leaves[cp.Size-2]); !errors.Is(err, translog.ErrMapMismatch) {
		t.Fatalf("a checkpoint ending in a link: %v", err)
	}
	if err := translog.CheckCheckpointLeaf(translog.Checkpoint{Size: cp2.Size}, leaves[cp.Size-1]); !errors.Is(err, translog.ErrMapMismatch) {
		t.Fatalf("a checkpoint ending in an older map leaf: %v", err)
	}
	if mc.Map().Root() != f.MapRoot {
		t.Fatal("the monitor's map of the leaves is not the map the log proves from")
	}
}

// TestFreshnessForgeries: what a server might send instead of the truth
// is refused by VerifyFreshness: a forged map proof (the old head), a map
// leaf that is not the checkpoint's last leaf, a map root the leaf does
// not carry, an inclusion proof of another leaf.
func TestFreshnessForgeries(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, 3, 2)
	c := w.chains[1]
	stale := c.Head()
	w.st.Add(c.Next(t).Bytes())
	cp := w.integrate(t)
	key := smap.Key(c.ID)
	f, err := w.l.Freshness(ctx, key)
	if err != nil {
		t.Fatal(err)
	}

	// The old head with the genuine proof.
	forged := f
	forged.Value = valueOf(stale)
	if err := translog.VerifyFreshness(cp, key, forged); !errors.Is(err, translog.ErrNotFresh) {
		t.Fatalf("the stale head with the genuine proof: %v", err)
	}
	// A map of the server's making in which the stale head is the newest:
	// its proof verifies under its own root, which no checkpoint leaf has.
	var fake smap.Tree
	fake.Set(key, *valueOf(stale))
	forged = f
	forged.MapRoot, forged.Value, forged.Proof = fake.Root(), valueOf(stale), fake.Prove(key)
	if err := translog.VerifyFreshness(cp, key, forged); !errors.Is(err, translog.ErrNotFresh) {
		t.Fatalf("a map of the server's making: %v", err)
	}
	// The account hidden: an absence proof from the fake map.
	var none smap.Tree
	forged = f
	forged.MapRoot, forged.Value, forged.Proof = none.Root(), nil, none.Prove(key)
	if err := translog.VerifyFreshness(cp, key, forged); !errors.Is(err, translog.ErrNotFresh) {
		t.Fatalf("the account proven absent from an empty map: %v", err)
	}
	// The previous map leaf (a genuine leaf, but not the last one).
	leaves, _ := w.st.Leaves(ctx, 0, cp.Size)
	var prevIdx uint64
	for i := range cp.Size - 1 {
		if translog.IsMapLeaf(leaves[i]) {
			prevIdx = i
		}
	}
	_, prevRoot, _ := translog.ParseMapLeaf(leaves[prevIdx])
	incl, _ := w.l.InclusionProof(ctx, prevIdx, cp.Size)
	var prevMap translog.MapChecker
	for _, lf := range leaves[:prevIdx] {
		prevMap.Add(lf)
	}
	forged = translog.Freshness{Checkpoint: f.Checkpoint, Size: cp.Size, MapRoot: prevRoot, Inclusion: incl,
		Value: valueOf(stale), Proof: prevMap.Map().Prove(key)}
	if err := smap.Verify(prevRoot, key, valueOf(stale), forged.Proof); err != nil {
		t.Fatalf("the older map does prove the stale head (the setup): %v", err)
	}
	if err := translog.VerifyFreshness(cp, key, forged); !errors.Is(err, translog.ErrNotFresh) {
		t.Fatalf("a map leaf that is not the last leaf: %v", err)
	}
	// Another size than the checkpoint's.
	forged = f
	forged.Size--
	if err := translog.VerifyFreshness(cp, key, forged); !errors.Is(err, translog.ErrNotFresh) {
		t.Fatalf("a proof for another tree size: %v", err)
	}
	if err := translog.VerifyFreshness(cp, key, f); err != nil {
		t.Fatalf("the genuine proof: %v", err)
	}
}

// TestCheckMapLeavesCatchesLies: a log whose map leaf hides a link (the
// root of the map without it), names another index, or carries a changed
// root, is caught by the monitor's check.
func TestCheckMapLeavesCatchesLies(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, 3, 2)
	cp := w.integrate(t)
	leaves, _ := w.st.Leaves(ctx, 0, cp.Size)
	if err := translog.CheckMapLeaves(leaves); err != nil {
		t.Fatal(err)
	}
	last := cp.Size - 1
	var hiding translog.MapChecker
	for _, lf := range leaves[:last-1] { // all but the last link
		hiding.Add(lf)
	}
	for _, tc := range []struct {
		desc string
		leaf []byte
	}{
		{"a link hidden from the map", translog.MapLeaf(last, hiding.Map().Root())},
		{"another index", func() []byte { _, r, _ := translog.ParseMapLeaf(leaves[last]); return translog.MapLeaf(last+1, r) }()},
		{"the empty map", translog.MapLeaf(last, smap.EmptyHash)},
		{"not a map leaf's spelling", append([]byte(translog.MapLeafPrefix), "x\n"...)},
	} {
		bad := append(leaves[:last:last], tc.leaf)
		if err := translog.CheckMapLeaves(bad); !errors.Is(err, translog.ErrMapMismatch) {
			t.Errorf("%s: %v, want ErrMapMismatch", tc.desc, err)
		}
	}
}

// TestMapTakesLeavesSequencedDuringIntegration: links that commit while
// an integration runs, before it numbers its map leaf, are taken into
// that map leaf's map, so the map leaf reflects every leaf before it.
func TestMapTakesLeavesSequencedDuringIntegration(t *testing.T) {
	w := newWorld(t, 2, 1)
	late := translogtest.NewChain(t, "late")
	w.st.Add(w.chains[0].Next(t).Bytes())
	w.st.BeforeSequence = func() {
		w.st.BeforeSequence = nil
		w.st.Add(late.Links[0].Bytes())
	}
	cp := w.integrate(t)
	if cp.Size != 3+1+1+1 {
		t.Fatalf("checkpoint of %d leaves, want 6 (2 links, map, link, late genesis, map)", cp.Size)
	}
	if v := check(t, w.l, cp, late.ID); v == nil || *v != *valueOf(late.Head()) {
		t.Fatalf("the account created during the integration: %v", v)
	}
	leaves, _ := w.st.Leaves(context.Background(), 0, cp.Size)
	if err := translog.CheckMapLeaves(leaves); err != nil {
		t.Fatal(err)
	}
	// The stored map has the late account too (a restart loads it).
	var stored smap.Value
	var ok bool
	w.st.Edit(func(c *translogtest.MemContents) { stored, ok = c.Map[smap.Key(late.ID)] })
	if !ok || stored != *valueOf(late.Head()) {
		t.Fatalf("the stored map lacks the account created during the integration: %v", stored)
	}
	// The checkpoints were signed in transactions that did not hold the
	// sequence (on PostgreSQL: appends never wait for a signature).
	if n := w.st.SignedUnderSeq(); n != 0 {
		t.Fatalf("%d checkpoints signed while holding the sequence", n)
	}
}

// TestMapRebuiltFromLeaves: a Log with no map in memory, over a storage
// whose stored map reflects fewer leaves than it holds (a log from
// before the map), rebuilds it from the leaves, stores it, and proves
// the same heads.
func TestMapRebuiltFromLeaves(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, 3, 3)
	cp := w.integrate(t)
	w.st.Edit(func(c *translogtest.MemContents) {
		c.Map = map[smap.Key]smap.Value{}
		c.State.MapSize = 0
	})
	l := translog.New(w.st, w.s)
	for _, c := range w.chains {
		if v := check(t, l, cp, c.ID); v == nil || *v != *valueOf(c.Head()) {
			t.Fatalf("%s after the rebuild: %v", c, v)
		}
	}
	var stored map[smap.Key]smap.Value
	var size uint64
	w.st.Edit(func(c *translogtest.MemContents) { stored, size = maps.Clone(c.Map), c.State.MapSize })
	if len(stored) != 3 || size != cp.Size {
		t.Fatalf("the rebuilt map was not stored: %d entries as of %d leaves", len(stored), size)
	}
	// And the next integration goes on from it.
	w.st.Add(w.chains[0].Next(t).Bytes())
	cp2, err := l.Integrate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v := check(t, l, cp2, w.chains[0].ID); *v != *valueOf(w.chains[0].Head()) {
		t.Fatal("the integration after the rebuild lost the new head")
	}
}

// TestMapLeafForLogFromBeforeTheMap: a log integrated before the map
// existed (its checkpoint ends in a link, its stored map is empty) gets
// its map built from its leaves and a map leaf at the next integration,
// even with no new link; from then on freshness proofs verify.
func TestMapLeafForLogFromBeforeTheMap(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, 3, 2)
	// Make it a log of the 6 links alone, as the code before the map
	// integrated it: drop the map leaf, its hash from tile 0/0, and the
	// stored map; sign the tree of the links.
	var links [][]byte
	w.st.Edit(func(c *translogtest.MemContents) {
		links = c.Leaves[:6]
		c.Leaves = links
		c.Tiles[[2]uint64{0, 0}] = c.Tiles[[2]uint64{0, 0}][:6*32]
	})
	rf := &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	r := rf.NewEmptyRange(0)
	for _, lf := range links {
		if err := r.Append(rfc6962.DefaultHasher.HashLeaf(lf), nil); err != nil {
			t.Fatal(err)
		}
	}
	root, _ := r.GetRootHash(nil)
	old := translog.Checkpoint{Origin: testOrigin, Size: 6}
	copy(old.Hash[:], root)
	signed, err := w.s.Sign(old)
	if err != nil {
		t.Fatal(err)
	}
	w.st.Edit(func(c *translogtest.MemContents) {
		c.State = translog.State{Size: 6, Range: bytes.Join(r.Hashes(), nil), Checkpoint: signed}
		c.Map = map[smap.Key]smap.Value{}
	})

	l := translog.New(w.st, w.s)
	if _, err := l.Freshness(ctx, smap.Key(w.chains[0].ID)); !errors.Is(err, translog.ErrNotFound) {
		t.Fatalf("freshness of a checkpoint without a map leaf: %v, want ErrNotFound", err)
	}
	cp, err := l.Integrate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != 7 {
		t.Fatalf("after the first integration: %d leaves, want the 6 links and a map leaf", cp.Size)
	}
	p, err := l.ConsistencyProof(ctx, 6, 7)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, 6, 7, p, old.Hash[:], cp.Hash[:]); err != nil {
		t.Fatalf("the checkpoint with the map leaf does not extend the old one: %v", err)
	}
	for _, c := range w.chains {
		if v := check(t, l, cp, c.ID); v == nil || *v != *valueOf(c.Head()) {
			t.Fatalf("%s: %v", c, v)
		}
	}
	if cp2, _ := l.Integrate(ctx); cp2 != cp {
		t.Fatal("a second integration with nothing new added another map leaf")
	}
}

// TestFreshnessConcurrent: freshness proofs read while links are added
// and integrated (run with -race) always verify against the checkpoint
// they carry, and prove a head the account had.
func TestFreshnessConcurrent(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, 3, 1)
	var more []*chain.Link
	for range 30 {
		more = append(more, w.chains[0].Next(t))
	}
	done := make(chan struct{})
	errs := make(chan error, 1)
	go func() {
		defer close(done)
		for _, l := range more {
			w.st.Add(l.Bytes())
			if _, err := w.l.Integrate(ctx); err != nil {
				errs <- err
				return
			}
		}
	}()
	key := smap.Key(w.chains[0].ID)
	for {
		select {
		case <-done:
			select {
			case err := <-errs:
				t.Fatal(err)
			default:
			}
			return
		default:
		}
		f, err := w.l.Freshness(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		cp, err := translog.VerifyCheckpoint(f.Checkpoint, testOrigin, w.s.VerifierKeys())
		if err != nil {
			t.Fatal(err)
		}
		if err := translog.VerifyFreshness(cp, key, f); err != nil {
			t.Fatal(err)
		}
		if f.Value == nil || w.chains[0].Links[f.Value.Seq].Hash() != f.Value.Head {
			t.Fatalf("a head the account never had: %v", f.Value)
		}
	}
}
