package monitor

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"iter"
	"strconv"
	"strings"

	"github.com/enigm/enigm/chain"
)

// MapPrefix starts every map-root leaf: "enigm.map/v1\n<N>\n<base64 root>\n",
// the root of the sparse Merkle map account → head over leaves 0..N-1.
const MapPrefix = "enigm.map/v1\n"

// MapChecker compares a map-root leaf with the heads the monitor replayed.
// The monitor calls it for every well-formed map-root leaf whose N is its
// own index; an error is reported as a map_leaf_invalid finding.
type MapChecker interface {
	CheckMapRoot(n uint64, root [32]byte, heads Heads) error
}

// Heads is the monitor's view of every account's head after the leaves
// before a map-root leaf: the last link chain.Apply accepted for each
// (leaves that were invalid or duplicates do not count).
type Heads interface {
	// Len is the number of accounts.
	Len() int
	// Head returns an account's head.
	Head(chain.AccountID) (chain.Head, bool)
	// All yields every account and its head, in no order.
	All() iter.Seq2[chain.AccountID, chain.Head]
	// Changed yields the accounts whose head changed since the previous
	// CheckMapRoot call of this run (all of them on the first call).
	Changed() iter.Seq2[chain.AccountID, chain.Head]
}

// parseMapLeaf parses a map-root leaf strictly: the prefix, N in decimal
// without leading zeros, 32 bytes of standard base64, each line ending
// in a newline, nothing after.
func parseMapLeaf(b []byte) (uint64, [32]byte, error) {
	var root [32]byte
	rest, ok := bytes.CutPrefix(b, []byte(MapPrefix))
	if !ok || !bytes.HasSuffix(rest, []byte("\n")) {
		return 0, root, fmt.Errorf("not %q followed by two lines", MapPrefix)
	}
	lines := strings.Split(string(rest[:len(rest)-1]), "\n")
	if len(lines) != 2 {
		return 0, root, fmt.Errorf("%d lines after the prefix, want the size and the root", len(lines))
	}
	n, err := strconv.ParseUint(lines[0], 10, 64)
	if err != nil || (lines[0] != "0" && lines[0][0] == '0') {
		return 0, root, fmt.Errorf("size %q is not a decimal number without leading zeros", lines[0])
	}
	r, err := base64.StdEncoding.Strict().DecodeString(lines[1])
	if err != nil || len(r) != 32 {
		return 0, root, fmt.Errorf("root %q is not 32 bytes of base64", lines[1])
	}
	copy(root[:], r)
	return n, root, nil
}

// headView is the Heads a MapChecker gets.
type headView struct{ m *Monitor }

func (h headView) Len() int { return len(h.m.accounts) }

func (h headView) Head(id chain.AccountID) (chain.Head, bool) {
	a, ok := h.m.accounts[id]
	if !ok {
		return chain.Head{}, false
	}
	return a.head, true
}

func (h headView) All() iter.Seq2[chain.AccountID, chain.Head] {
	return func(yield func(chain.AccountID, chain.Head) bool) {
		for id, a := range h.m.accounts {
			if !yield(id, a.head) {
				return
			}
		}
	}
}

func (h headView) Changed() iter.Seq2[chain.AccountID, chain.Head] {
	if h.m.sinceMap == nil {
		return h.All()
	}
	return func(yield func(chain.AccountID, chain.Head) bool) {
		for id := range h.m.sinceMap {
			if !yield(id, h.m.accounts[id].head) {
				return
			}
		}
	}
}
