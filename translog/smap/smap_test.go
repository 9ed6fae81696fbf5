package smap_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/translog/smap"
)

// refRoot is the map's root computed the slow, obvious way, without the
// tree: the entries of a subtree sorted by key, split by the bit of the
// depth, an empty subtree EmptyHash, a single entry its leaf hash.
func refRoot(es []smap.Entry, d int) smap.Hash {
	switch len(es) {
	case 0:
		return smap.EmptyHash
	case 1:
		return smap.LeafHash(es[0].Key, es[0].Value)
	}
	i := 0 // sorted keys with one prefix: those with bit d 0 come first
	for i < len(es) && es[i].Key[d/8]>>(7-d%8)&1 == 0 {
		i++
	}
	return smap.NodeHash(refRoot(es[:i], d+1), refRoot(es[i:], d+1))
}

func key(i int) smap.Key { return smap.Key(sha256.Sum256(fmt.Appendf(nil, "account %d", i))) }

func value(i, seq int) smap.Value {
	return smap.Value{Seq: uint64(seq), Head: sha256.Sum256(fmt.Appendf(nil, "head %d/%d", i, seq))}
}

// TestTreeMatchesReference: after every batch of sets (new keys and new
// values of old keys, keys close together), the tree's root is the
// reference root of its entries, every entry proves, and absent keys prove
// absent.
func TestTreeMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var tr smap.Tree
	want := map[smap.Key]smap.Value{}
	// Keys that share long prefixes: they split deep in the tree.
	close := func(i int) smap.Key {
		k := key(0)
		k[31] ^= byte(i)
		return k
	}
	for step := range 40 {
		for range r.IntN(30) + 1 {
			var k smap.Key
			switch r.IntN(3) {
			case 0:
				k = key(r.IntN(200))
			case 1:
				k = close(r.IntN(8))
			default:
				k = key(1000 + step)
			}
			v := value(int(k[0]), r.IntN(1000))
			tr.Set(k, v)
			want[k] = v
		}
		var es []smap.Entry
		for k, v := range want {
			es = append(es, smap.Entry{Key: k, Value: v})
		}
		slices.SortFunc(es, func(a, b smap.Entry) int { return bytes.Compare(a.Key[:], b.Key[:]) })
		root := tr.Root()
		if ref := refRoot(es, 0); root != ref {
			t.Fatalf("step %d, %d entries: root %x, reference %x", step, len(es), root, ref)
		}
		if tr.Len() != len(es) {
			t.Fatalf("Len %d, %d entries", tr.Len(), len(es))
		}
		for _, e := range es {
			if v, ok := tr.Get(e.Key); !ok || v != e.Value {
				t.Fatalf("Get %x: %v %v", e.Key, v, ok)
			}
			p := tr.Prove(e.Key)
			if err := smap.Verify(root, e.Key, &e.Value, p); err != nil {
				t.Fatalf("member %x: %v", e.Key[:4], err)
			}
			if err := smap.Verify(root, e.Key, nil, p); !errors.Is(err, smap.ErrBadProof) {
				t.Fatalf("a membership proof proves absence: %v", err)
			}
			older := e.Value
			older.Seq--
			if err := smap.Verify(root, e.Key, &older, p); !errors.Is(err, smap.ErrBadProof) {
				t.Fatalf("member %x proves an older seq: %v", e.Key[:4], err)
			}
		}
		for i := range 20 {
			k := key(-1 - i)
			if i%2 == 1 {
				k = close(100 + i) // shares the path of the close keys
			}
			p := tr.Prove(k)
			if err := smap.Verify(root, k, nil, p); err != nil {
				t.Fatalf("absent %x: %v", k[:4], err)
			}
			v := value(0, 1)
			if err := smap.Verify(root, k, &v, p); !errors.Is(err, smap.ErrBadProof) {
				t.Fatalf("an absence proof proves a value: %v", err)
			}
		}
	}
}

// TestForgedProofs: a server that changes anything in a proof, or proves
// a key absent with another key's leaf that is off its path, or proves
// the key's own leaf as "another", is refused.
func TestForgedProofs(t *testing.T) {
	var tr smap.Tree
	for i := range 1000 {
		tr.Set(key(i), value(i, i))
	}
	root := tr.Root()
	k, v := key(7), value(7, 7)
	p := tr.Prove(k)
	if err := smap.Verify(root, k, &v, p); err != nil {
		t.Fatal(err)
	}
	for d := range p.Siblings {
		q := p
		q.Siblings = slices.Clone(p.Siblings)
		q.Siblings[d][0] ^= 1
		if smap.Verify(root, k, &v, q) == nil {
			t.Fatalf("sibling %d changed, still verifies", d)
		}
	}
	// Cut: the leaf placed higher up.
	q := p
	q.Siblings = p.Siblings[:len(p.Siblings)-1]
	if smap.Verify(root, k, &v, q) == nil {
		t.Fatal("a shortened proof verifies")
	}
	// Hide k: claim its position is empty, or holds its own leaf as another's.
	q = p
	q.End = smap.EndEmpty
	if smap.Verify(root, k, nil, q) == nil {
		t.Fatal("absence of a present key verifies")
	}
	q.End, q.Other = smap.EndOther, smap.Entry{Key: k, Value: v}
	if err := smap.Verify(root, k, nil, q); err == nil {
		t.Fatal("the key's own leaf passed as another's")
	}
	// Absence by another key's genuine proof: its path is not k's.
	other := key(8)
	po := tr.Prove(other)
	po.End, po.Other = smap.EndOther, smap.Entry{Key: other, Value: value(8, 8)}
	if err := smap.Verify(root, k, nil, po); err == nil {
		t.Fatal("absence proven with a leaf off the key's path")
	}
	// Another root.
	if smap.Verify(smap.EmptyHash, k, &v, p) == nil {
		t.Fatal("verifies under the empty root")
	}
}

// TestCloneIndependent: sets on a clone leave the original's root and
// values alone, and the reverse.
func TestCloneIndependent(t *testing.T) {
	var a smap.Tree
	for i := range 100 {
		a.Set(key(i), value(i, 1))
	}
	ra := a.Root()
	b := a.Clone()
	b.Set(key(5), value(5, 2))
	b.Set(key(500), value(500, 1))
	if a.Root() != ra || a.Len() != 100 {
		t.Fatal("a set on the clone changed the original")
	}
	if v, _ := a.Get(key(5)); v != value(5, 1) {
		t.Fatal("the original's value changed")
	}
	if b.Root() == ra || b.Len() != 101 {
		t.Fatal("the clone did not change")
	}
	var empty smap.Tree
	if empty.Root() != smap.EmptyHash {
		t.Fatal("the empty map's root is not EmptyHash")
	}
}

// TestGolden pins the hashing and the proof encoding, against values
// computed independently of this code (Python's hashlib over the byte
// layouts of the package doc).
func TestGolden(t *testing.T) {
	if got := hex.EncodeToString(smap.EmptyHash[:]); got != "76d0a1a911829fc0e2242f5c77df29218cccf12a0f91f0c2012ab57e0ec0f51b" {
		t.Fatalf("EmptyHash %s", got)
	}
	k1 := smap.Key{31: 0x01}
	k2 := smap.Key{0: 0x80}
	k3 := smap.Key{0: 0x40}
	fill := func(b byte) (h [32]byte) {
		for i := range h {
			h[i] = b
		}
		return h
	}
	v1, v2, v3 := smap.Value{Seq: 1, Head: fill(0x11)}, smap.Value{Seq: 2, Head: fill(0x22)}, smap.Value{Seq: 3, Head: fill(0x33)}
	if got := smap.LeafHash(k1, v1); hex.EncodeToString(got[:]) != "cfd5b41eb36990f87a1b99f5ac349520bd050b9d3cd33ae6117f93c6e26e72fb" {
		t.Fatalf("LeafHash %x", got)
	}
	var tr smap.Tree
	tr.Set(k1, v1)
	tr.Set(k2, v2)
	tr.Set(k3, v3)
	if got := tr.Root(); hex.EncodeToString(got[:]) != "13bea306cdd43bbebfc3d0f4af7d9b3c1d7b54e672d7ad1070caba1c1ea6bf4f" {
		t.Fatalf("root %x", got)
	}
	want := testkit.Unannotate(t, `
		0002                      // depth 2: k1 is the left child of the left child
		c0                        // bitmap: both siblings not empty
		fcb7923e8be679278454ff6a027010c10ad8840a5c237e69843b79cd9056af9c // depth 1: leaf of k2
		efa6745aaf2872afdbf8a61d7435446e9e641646569f78c203dce1e108945b36 // depth 2: leaf of k3
		00                        // end: k1's own leaf
	`)
	p := tr.Prove(k1)
	if got := p.Bytes(); !bytes.Equal(got, want) {
		t.Fatalf("proof of k1:\n got %x\nwant %x", got, want)
	}
	// An absent key on k3's path (bits 01…) ends in k3's leaf.
	k4 := smap.Key{0: 0x60}
	want4 := testkit.Unannotate(t, `
		0002 c0                   // depth 2, both siblings not empty
		fcb7923e8be679278454ff6a027010c10ad8840a5c237e69843b79cd9056af9c // depth 1: leaf of k2
		cfd5b41eb36990f87a1b99f5ac349520bd050b9d3cd33ae6117f93c6e26e72fb // depth 2: leaf of k1
		02                        // end: another key's leaf
		40 00*31                  // its key, k3
		0000000000000003          // its seq
		33*32                     // its head hash
	`)
	p4 := tr.Prove(k4)
	if got := p4.Bytes(); !bytes.Equal(got, want4) {
		t.Fatalf("absence proof of k4:\n got %x\nwant %x", got, want4)
	}
	if err := smap.Verify(tr.Root(), k4, nil, p4); err != nil {
		t.Fatal(err)
	}
}

// TestParseProofRefuses: the decoder's refusals, each one change from a
// valid proof.
func TestParseProofRefuses(t *testing.T) {
	var tr smap.Tree
	for i := range 50 {
		tr.Set(key(i), value(i, i))
	}
	good := tr.Prove(key(3)).Bytes()
	absent := tr.Prove(key(-1))
	if absent.End != smap.EndOther {
		absent = tr.Prove(key(-2))
	}
	for _, c := range []struct {
		desc string
		b    []byte
	}{
		{"empty", nil},
		{"depth 257", binary.BigEndian.AppendUint16(nil, 257)},
		{"cut bitmap", good[:2]},
		{"bit beyond depth", func() []byte {
			b := binary.BigEndian.AppendUint16(nil, 1)
			return append(b, 0x40, 0)
		}()},
		{"cut sibling", good[:len(good)-2]},
		{"trailing byte", append(slices.Clone(good), 0)},
		{"unknown end", append(slices.Clone(good[:len(good)-1]), 3)},
		{"empty sibling spelled out", func() []byte {
			b := binary.BigEndian.AppendUint16(nil, 1)
			b = append(b, 0x80)
			b = append(b, smap.EmptyHash[:]...)
			return append(b, 1)
		}()},
		{"other leaf cut", func() []byte { b := absent.Bytes(); return b[:len(b)-1] }()},
		{"too large", make([]byte, smap.MaxProofSize+1)},
	} {
		if _, err := smap.ParseProof(c.b); !errors.Is(err, smap.ErrBadProof) {
			t.Errorf("%s: %v, want ErrBadProof", c.desc, err)
		}
	}
	for _, b := range [][]byte{good, absent.Bytes(), tr.Prove(key(-3)).Bytes()} {
		p, err := smap.ParseProof(b)
		if err != nil || !bytes.Equal(p.Bytes(), b) {
			t.Fatalf("round trip of %x: %v", b, err)
		}
	}
}

// FuzzParseProof: a proof that parses has exactly one encoding (parse then
// Bytes gives back the input), and verifying it never panics.
func FuzzParseProof(f *testing.F) {
	var tr smap.Tree
	for i := range 20 {
		tr.Set(key(i), value(i, i))
	}
	f.Add(tr.Prove(key(1)).Bytes())
	f.Add(tr.Prove(key(-1)).Bytes())
	f.Add(tr.Prove(key(-2)).Bytes())
	f.Add([]byte{0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := smap.ParseProof(b)
		if err != nil {
			return
		}
		if !bytes.Equal(p.Bytes(), b) {
			t.Fatalf("%x parses to a proof encoded as %x", b, p.Bytes())
		}
		v := value(1, 1)
		_ = smap.Verify(tr.Root(), key(1), &v, p)
		_ = smap.Verify(tr.Root(), key(1), nil, p)
	})
}
