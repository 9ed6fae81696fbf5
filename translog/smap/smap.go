// Package smap is the sparse Merkle map of Enigm's transparency log: for
// every account, the sequence number and link hash of its newest chain
// link, under one 32-byte root that the log commits to as the last leaf
// of every checkpoint (docs/design/translog.md, "Freshness").
//
// # Tree
//
// A binary tree of depth 256 over 32-byte keys: bit i of the key (most
// significant bit of byte 0 first) chooses the child at depth i+1, 0 the
// left one. The usual compression keeps it small: a subtree that holds no
// entry hashes as [EmptyHash] at every height, and a subtree that holds
// exactly one entry hashes as that entry's leaf node, placed at the top of
// the subtree. So an entry sits at the depth where its key first differs
// from every other key's, about log2(n) for n entries.
//
//	empty    SHA-256("enigm.map/v1 empty" 0x00)
//	leaf     SHA-256("enigm.map/v1 leaf" 0x00 ‖ key ‖ u64be(seq) ‖ head hash)
//	node     SHA-256("enigm.map/v1 node" 0x00 ‖ left ‖ right)
//
// The prefixes start with 'e' (0x65), apart from RFC 6962's 0x00 (leaf)
// and 0x01 (node), so no map hash is a log hash of the same bytes.
//
// # Parts
//
//   - [Tree] is the map in memory: Set, Get, Root, Prove. Its nodes are
//     immutable once hashed and shared between copies, so Clone is O(1)
//     and Set copies only the path it changes.
//   - [Proof] proves what a key maps to (or that it maps to nothing) under
//     a root: the key's depth, a bitmap of which siblings on its path are
//     not empty, those siblings, and for an absent key what the position
//     holds instead. [Verify] checks one; [ParseProof] reads the encoding.
//
// smap does no I/O. translog keeps the map in its storage and the tree in
// memory; a monitor rebuilds it from the log's leaves (translog.MapChecker).
package smap

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// Sizes.
const (
	// KeySize is the size of a key (a chain.AccountID).
	KeySize = 32
	// HashSize is the size of every hash of the map.
	HashSize = sha256.Size
	// Depth is the depth of the full tree: one level per key bit.
	Depth = 8 * KeySize
)

// Domain prefixes of the three hashes.
const (
	prefixEmpty = "enigm.map/v1 empty\x00"
	prefixLeaf  = "enigm.map/v1 leaf\x00"
	prefixNode  = "enigm.map/v1 node\x00"
)

// Key is a map key: an account id.
type Key [KeySize]byte

// Hash is a map hash (a root, a node, a leaf).
type Hash [HashSize]byte

// Value is what the map holds for an account: the sequence number and
// hash (chain.Link.Hash) of its newest link.
type Value struct {
	Seq  uint64
	Head [HashSize]byte
}

// Entry is one key and its value.
type Entry struct {
	Key   Key
	Value Value
}

// EmptyHash is the hash of every subtree without entries, and the root of
// the empty map.
var EmptyHash = Hash(sha256.Sum256([]byte(prefixEmpty)))

// LeafHash returns the hash of the leaf node of one entry.
func LeafHash(k Key, v Value) Hash {
	var b [len(prefixLeaf) + KeySize + 8 + HashSize]byte
	n := copy(b[:], prefixLeaf)
	n += copy(b[n:], k[:])
	binary.BigEndian.PutUint64(b[n:], v.Seq)
	copy(b[n+8:], v.Head[:])
	return sha256.Sum256(b[:])
}

// NodeHash returns the hash of an inner node with the given children.
func NodeHash(left, right Hash) Hash {
	var b [len(prefixNode) + 2*HashSize]byte
	n := copy(b[:], prefixNode)
	n += copy(b[n:], left[:])
	copy(b[n:], right[:])
	return sha256.Sum256(b[:])
}

// bit returns bit i of k (0 = left).
func bit(k *Key, i int) int { return int(k[i/8]>>(7-i%8)) & 1 }

// ErrBadProof: a proof does not prove what it was asked to under the
// root, or its encoding is malformed.
var ErrBadProof = errors.New("smap: the map proof does not verify")

// node is a tree node: a leaf (entry set) or an inner node with at least
// two entries below it. nil is the empty subtree. Once hashed a node never
// changes, so copies of a Tree share it.
type node struct {
	left, right *node
	entry       *Entry
	hash        Hash
	hashed      bool
}

func (n *node) sum() Hash {
	if n == nil {
		return EmptyHash
	}
	if !n.hashed {
		if n.entry != nil {
			n.hash = LeafHash(n.entry.Key, n.entry.Value)
		} else {
			n.hash = NodeHash(n.left.sum(), n.right.sum())
		}
		n.hashed = true
	}
	return n.hash
}

// Tree is a sparse Merkle map in memory. The zero Tree is the empty map.
// A Tree is not safe for concurrent use; a Clone is an independent map,
// but computing hashes (Root, Prove) writes into nodes a clone shares
// with the tree it came from until the first Root: call Root before
// handing clones to other goroutines.
type Tree struct {
	root *node
	n    int
}

// Len returns the number of entries.
func (t *Tree) Len() int { return t.n }

// Clone returns a copy of t that later Sets on either do not affect.
func (t *Tree) Clone() *Tree { c := *t; return &c }

// Root returns the map's root hash.
func (t *Tree) Root() Hash { return t.root.sum() }

// Get returns the value of k.
func (t *Tree) Get(k Key) (Value, bool) {
	n := t.root
	for d := 0; n != nil; d++ {
		if n.entry != nil {
			if n.entry.Key == k {
				return n.entry.Value, true
			}
			return Value{}, false
		}
		if bit(&k, d) == 0 {
			n = n.left
		} else {
			n = n.right
		}
	}
	return Value{}, false
}

// Set maps k to v, replacing its value if it had one. It copies the nodes
// on k's path and hashes nothing: Root hashes what changed.
func (t *Tree) Set(k Key, v Value) {
	var added bool
	t.root, added = set(t.root, 0, &Entry{Key: k, Value: v})
	if added {
		t.n++
	}
}

func set(n *node, d int, e *Entry) (*node, bool) {
	switch {
	case n == nil:
		return &node{entry: e}, true
	case n.entry != nil && n.entry.Key == e.Key:
		return &node{entry: e}, false
	case n.entry != nil:
		return split(n, &node{entry: e}, d), true
	}
	c := &node{left: n.left, right: n.right}
	var added bool
	if bit(&e.Key, d) == 0 {
		c.left, added = set(n.left, d+1, e)
	} else {
		c.right, added = set(n.right, d+1, e)
	}
	return c, added
}

// split returns the subtree at depth d holding the two leaves a and b
// (whose keys differ).
func split(a, b *node, d int) *node {
	ba, bb := bit(&a.entry.Key, d), bit(&b.entry.Key, d)
	switch {
	case ba != bb && ba == 0:
		return &node{left: a, right: b}
	case ba != bb:
		return &node{left: b, right: a}
	case ba == 0:
		return &node{left: split(a, b, d+1)}
	default:
		return &node{right: split(a, b, d+1)}
	}
}

// Prove returns the proof of what k maps to in t: its value, or absence.
func (t *Tree) Prove(k Key) Proof {
	t.Root()
	var p Proof
	n := t.root
	for d := 0; ; d++ {
		switch {
		case n == nil:
			p.End = EndEmpty
			return p
		case n.entry != nil && n.entry.Key == k:
			p.End = EndValue
			return p
		case n.entry != nil:
			p.End, p.Other = EndOther, *n.entry
			return p
		}
		sib := n.right
		n = n.left
		if bit(&k, d) == 1 {
			sib, n = n, sib
		}
		p.Siblings = append(p.Siblings, sib.sum())
	}
}

// End says what a proof's path ends in.
type End uint8

// Values are part of the proof encoding: never reorder them.
const (
	// EndValue: the key's own leaf (the verifier supplies its value).
	EndValue End = 0
	// EndEmpty: an empty subtree, so the key is absent.
	EndEmpty End = 1
	// EndOther: the leaf of another key that shares the path so far, so
	// the key is absent.
	EndOther End = 2
)

// Proof is a map proof for one key. Siblings holds the hash of the
// sibling at every depth 1 … d on the key's path, top first (EmptyHash for
// an empty one; the encoding leaves those out), where d = len(Siblings) is
// the depth of the leaf or empty subtree the path ends in.
type Proof struct {
	Siblings []Hash
	End      End
	Other    Entry // EndOther only
}

// Verify checks that p proves, under root, that k maps to *v, or, when v
// is nil, that k is absent. An error wraps ErrBadProof and says what does
// not hold.
func Verify(root Hash, k Key, v *Value, p Proof) error {
	depth := len(p.Siblings)
	if depth > Depth {
		return fmt.Errorf("%w: depth %d, at most %d", ErrBadProof, depth, Depth)
	}
	var h Hash
	switch {
	case v != nil && p.End != EndValue:
		return fmt.Errorf("%w: it proves the key absent, a value was expected", ErrBadProof)
	case v == nil && p.End == EndValue:
		return fmt.Errorf("%w: it proves the key present, absence was expected", ErrBadProof)
	case p.End == EndValue:
		h = LeafHash(k, *v)
	case p.End == EndEmpty:
		h = EmptyHash
	case p.End == EndOther:
		if p.Other.Key == k {
			return fmt.Errorf("%w: the other leaf is the key's own", ErrBadProof)
		}
		for d := range depth {
			if bit(&k, d) != bit(&p.Other.Key, d) {
				return fmt.Errorf("%w: the other leaf's key leaves the path at depth %d", ErrBadProof, d)
			}
		}
		h = LeafHash(p.Other.Key, p.Other.Value)
	default:
		return fmt.Errorf("%w: unknown end %d", ErrBadProof, p.End)
	}
	for d := depth - 1; d >= 0; d-- {
		if bit(&k, d) == 0 {
			h = NodeHash(h, p.Siblings[d])
		} else {
			h = NodeHash(p.Siblings[d], h)
		}
	}
	if h != root {
		return fmt.Errorf("%w: it leads to root %x, not %x", ErrBadProof, h, root)
	}
	return nil
}
