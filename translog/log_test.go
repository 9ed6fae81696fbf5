package translog_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"

	"github.com/enigm/enigm/translog"
	"github.com/enigm/enigm/translog/smap"
)

// TestIntegrateMatchesReference grows a log in uneven steps across tile
// boundaries and checks, at every step, its root against the reference
// tree of transparency-dev/merkle (testonly) over the leaves the storage
// holds: the ones added, in order, each step's followed by the map leaf
// the integration appended (none for the first, empty, step), whose root
// is the map of the links before it; and its inclusion and consistency
// proofs (built from our tiles) against the reference proofs and the
// library's verifier.
func TestIntegrateMatchesReference(t *testing.T) {
	ctx := context.Background()
	st := newMemStorage()
	l := translog.New(st, newSigner(t))
	ref := testonly.New(rfc6962.DefaultHasher)
	var sizes []uint64
	n := 0
	for _, step := range []int{0, 1, 1, 5, 248, 1, 255, 256, 257, 3, 65536 - 1033, 1, 300} {
		for range step {
			st.Add(leaf(n))
			ref.AppendData(leaf(n))
			n++
		}
		c, err := l.Integrate(ctx)
		if err != nil {
			t.Fatalf("at %d leaves: %v", n, err)
		}
		if step > 0 {
			ref.AppendData(translog.MapLeaf(ref.Size(), smap.EmptyHash)) // no leaf here is a chain link
		}
		if c.Size != ref.Size() || !bytes.Equal(c.Hash[:], ref.Hash()) {
			t.Fatalf("at %d leaves: checkpoint size %d root %x, reference size %d root %x", n, c.Size, c.Hash, ref.Size(), ref.Hash())
		}
		sizes = append(sizes, c.Size)
	}
	size := ref.Size()
	root := ref.Hash()
	for _, i := range []uint64{0, 1, 255, 256, 257, 65535, 65536, size - 1} {
		got, err := l.InclusionProof(ctx, i, size)
		if err != nil {
			t.Fatalf("inclusion %d: %v", i, err)
		}
		want, _ := ref.InclusionProof(i, size)
		if !equalProofs(got, want) {
			t.Fatalf("inclusion %d in %d: proof differs from the reference", i, size)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, size, ref.LeafHash(i), got, root); err != nil {
			t.Fatalf("inclusion %d: %v", i, err)
		}
	}
	for _, s1 := range sizes {
		for _, s2 := range []uint64{s1, size} {
			got, err := l.ConsistencyProof(ctx, s1, s2)
			if err != nil {
				t.Fatalf("consistency %d→%d: %v", s1, s2, err)
			}
			want, _ := ref.ConsistencyProof(s1, s2)
			if !equalProofs(got, want) {
				t.Fatalf("consistency %d→%d: proof differs from the reference", s1, s2)
			}
			if err := proof.VerifyConsistency(rfc6962.DefaultHasher, s1, s2, got, ref.HashAt(s1), ref.HashAt(s2)); err != nil {
				t.Fatalf("consistency %d→%d: %v", s1, s2, err)
			}
		}
	}
	if _, err := l.InclusionProof(ctx, 0, size+1); !errors.Is(err, translog.ErrNotFound) {
		t.Fatalf("proof in a tree larger than the log: %v, want ErrNotFound", err)
	}
}

func equalProofs(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// TestIntegrateRefusesCorruptTiles: a stored tile that does not line up
// with the tree stops integration with ErrCorrupt and writes nothing.
func TestIntegrateRefusesCorruptTiles(t *testing.T) {
	ctx := context.Background()
	l, st, _ := newLog(t, 10)
	before, _ := st.State(ctx)
	// Cut the level-0 tile short: the next leaf hash would land at the
	// wrong position.
	tile, _ := st.Tile(ctx, 0, 0)
	st.SetTile(0, 0, tile[:5*sha256.Size])
	st.Add(leaf(10))
	if _, err := l.Integrate(ctx); !errors.Is(err, translog.ErrCorrupt) {
		t.Fatalf("integrating over a cut tile: %v, want ErrCorrupt", err)
	}
	after, _ := st.State(ctx)
	if after.Size != before.Size || !bytes.Equal(after.Checkpoint, before.Checkpoint) {
		t.Fatal("a failed integration changed the state")
	}
}

// TestIntegrateIdempotent: with nothing new, Integrate writes nothing and
// returns the stored checkpoint; a new log signs the empty tree.
func TestIntegrateIdempotent(t *testing.T) {
	ctx := context.Background()
	l, st, _ := newLog(t, 0)
	s0, _ := st.State(ctx)
	if s0.Checkpoint == nil || s0.Size != 0 {
		t.Fatalf("a new log after Integrate: size %d, checkpoint %q", s0.Size, s0.Checkpoint)
	}
	c, err := l.Integrate(ctx)
	if err != nil || c.Size != 0 || !bytes.Equal(c.Hash[:], rfc6962.DefaultHasher.EmptyRoot()) {
		t.Fatalf("empty log: %+v, %v", c, err)
	}
	s1, _ := st.State(ctx)
	if !bytes.Equal(s0.Checkpoint, s1.Checkpoint) {
		t.Fatal("Integrate with nothing new signed again")
	}
}
