package translog

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/translog/smap"
)

// MapLeafPrefix starts every map leaf: the leaf the integrator appends as
// the last leaf of every checkpoint, committing to the map of every
// account's newest link (smap) over all the leaves before it.
const MapLeafPrefix = "enigm.map/v1\n"

// ErrMapMismatch: a map leaf does not commit to the map of the links
// before it (another root, or another index than its own). Monitors
// report it; it is evidence that the log's operator lied about heads.
var ErrMapMismatch = errors.New("translog: the map leaf does not match the links before it")

// MapLeaf returns the bytes of the map leaf at index n (n leaves before
// it) committing to root:
//
//	"enigm.map/v1\n" ‖ decimal n ‖ "\n" ‖ base64(root, standard, padded) ‖ "\n"
func MapLeaf(n uint64, root smap.Hash) []byte {
	return fmt.Appendf(nil, "%s%d\n%s\n", MapLeafPrefix, n, base64.StdEncoding.EncodeToString(root[:]))
}

// IsMapLeaf reports whether a leaf is a map leaf by its prefix (it may
// still be malformed: ParseMapLeaf). No chain link starts with it:
// chain.ParseLink refuses it, a link being a CBOR map.
func IsMapLeaf(leaf []byte) bool { return bytes.HasPrefix(leaf, []byte(MapLeafPrefix)) }

// ParseMapLeaf reads a map leaf: the index it names and the map root. It
// has one spelling (no leading zeros, strict padded base64).
func ParseMapLeaf(leaf []byte) (uint64, smap.Hash, error) {
	rest, ok := bytes.CutPrefix(leaf, []byte(MapLeafPrefix))
	if !ok {
		return 0, smap.Hash{}, fmt.Errorf("translog: a map leaf starts with %q", MapLeafPrefix)
	}
	num, rest, ok1 := bytes.Cut(rest, []byte("\n"))
	b64, rest, ok2 := bytes.Cut(rest, []byte("\n"))
	if !ok1 || !ok2 || len(rest) != 0 {
		return 0, smap.Hash{}, fmt.Errorf("translog: a map leaf has three lines (prefix, index, root)")
	}
	n, err := strconv.ParseUint(string(num), 10, 64)
	if err != nil || (len(num) > 1 && num[0] == '0') {
		return 0, smap.Hash{}, fmt.Errorf("translog: map leaf index %q is not a decimal number without leading zeros", num)
	}
	var root smap.Hash
	h, err := base64.StdEncoding.Strict().DecodeString(string(b64))
	if err != nil || len(h) != len(root) {
		return 0, smap.Hash{}, fmt.Errorf("translog: map leaf root %q is not 32 bytes of base64", b64)
	}
	copy(root[:], h)
	return n, root, nil
}

// LinkEntry returns the map entry a link leaf sets: key the account id
// (the link's own hash for a genesis link), value its sequence number and
// hash. A leaf that is not a chain link (chain.ParseLink refuses it) sets
// nothing: ok is false.
func LinkEntry(leaf []byte) (e smap.Entry, ok bool) {
	if IsMapLeaf(leaf) {
		return smap.Entry{}, false
	}
	l, err := chain.ParseLink(leaf)
	if err != nil {
		return smap.Entry{}, false
	}
	h := l.Hash()
	e.Key = smap.Key(l.Account())
	if l.Seq() == 0 {
		e.Key = smap.Key(h)
	}
	e.Value = smap.Value{Seq: l.Seq(), Head: h}
	return e, true
}

// MapChecker recomputes the map from a log's leaves, in order, and checks
// every map leaf against it: what a monitor runs over the leaves it
// fetches. The map holds, for every account, its link that comes last in
// log order (each account's links being in sequence order, its newest).
// Leaves that are neither chain links nor map leaves change nothing; a
// monitor reports them itself. The zero MapChecker starts at leaf 0.
type MapChecker struct {
	tree smap.Tree
	n    uint64
}

// Add takes the next leaf. It returns whether it was a map leaf, and
// ErrMapMismatch (naming the index and both roots) when a map leaf does
// not commit to the links before it, or names another index.
func (c *MapChecker) Add(leaf []byte) (isMap bool, err error) {
	idx := c.n
	c.n++
	if !IsMapLeaf(leaf) {
		if e, ok := LinkEntry(leaf); ok {
			c.tree.Set(e.Key, e.Value)
		}
		return false, nil
	}
	n, root, err := ParseMapLeaf(leaf)
	if err != nil {
		return true, fmt.Errorf("%w: leaf %d: %v", ErrMapMismatch, idx, err)
	}
	if n != idx {
		return true, fmt.Errorf("%w: leaf %d names index %d", ErrMapMismatch, idx, n)
	}
	if want := c.tree.Root(); root != want {
		return true, fmt.Errorf("%w: leaf %d commits to map root %x, the %d leaves before it give %x", ErrMapMismatch, idx, root, idx, want)
	}
	return true, nil
}

// Size returns the number of leaves taken.
func (c *MapChecker) Size() uint64 { return c.n }

// Map returns the map of the leaves taken so far (a clone).
func (c *MapChecker) Map() *smap.Tree { c.tree.Root(); return c.tree.Clone() }

// CheckMapLeaves checks every map leaf of leaves, the log's leaves from
// index 0: each must commit to the map of the links before it.
func CheckMapLeaves(leaves [][]byte) error {
	var c MapChecker
	for _, l := range leaves {
		if _, err := c.Add(l); err != nil {
			return err
		}
	}
	return nil
}

// CheckCheckpointLeaf checks that last, the leaf at index c.Size-1, is the
// map leaf a checkpoint must end in: a map leaf naming its own index. A
// monitor runs it for every checkpoint it sees (and MapChecker for the
// root); the empty tree has no leaf and passes.
func CheckCheckpointLeaf(c Checkpoint, last []byte) error {
	if c.Size == 0 {
		return nil
	}
	if !IsMapLeaf(last) {
		return fmt.Errorf("%w: the checkpoint of %d leaves does not end in a map leaf", ErrMapMismatch, c.Size)
	}
	n, _, err := ParseMapLeaf(last)
	if err != nil {
		return fmt.Errorf("%w: the last leaf of the checkpoint of %d leaves: %v", ErrMapMismatch, c.Size, err)
	}
	if n != c.Size-1 {
		return fmt.Errorf("%w: the last leaf of the checkpoint of %d leaves names index %d", ErrMapMismatch, c.Size, n)
	}
	return nil
}
