package chain

import "time"

// ParseChain parses a sequence of encoded links (at most MaxLinksPerCall).
func ParseChain(encoded [][]byte) ([]*Link, error) {
	if len(encoded) > MaxLinksPerCall {
		return nil, errorf(ErrChainTooLong, "%d links, limit %d", len(encoded), MaxLinksPerCall)
	}
	links := make([]*Link, len(encoded))
	for i, b := range encoded {
		l, err := ParseLink(b)
		if err != nil {
			return nil, &LinkError{Index: i, Err: err}
		}
		links[i] = l
	}
	return links, nil
}

// VerifyChain applies links in order to from (nil: links[0] must be the
// genesis) and returns the resulting state. It verifies exactly what a
// sequence of Apply calls would, without keeping the intermediate states.
// At most MaxLinksPerCall links per call; continue from the returned state.
// An error is a *LinkError naming the first link that failed.
func VerifyChain(from *State, links []*Link, now time.Time, opts ...Option) (*State, error) {
	if len(links) > MaxLinksPerCall {
		return nil, errorf(ErrChainTooLong, "%d links, limit %d", len(links), MaxLinksPerCall)
	}
	if from == nil && len(links) == 0 {
		return nil, errorf(ErrNoGenesis, "empty chain")
	}
	o := collectOptions(opts)
	s := from
	for i, l := range links {
		// The first step derives a private state from the caller's; later
		// steps change that private state in place (no copies per link).
		next, err := apply(s, l, now, &o, i > 0)
		if err != nil {
			e := &LinkError{Index: i, Err: err}
			if l != nil {
				e.Seq, e.Type = l.seq, l.typ
			}
			return nil, e
		}
		s = next
	}
	return s, nil
}

// CheckView decides whether view, a run of consecutive links that a server
// presents for an account, is consistent with old, the newest head the
// caller verified earlier for that account. It returns nil when view
// contains old's link (or starts right after it) and continues the same
// chain, ErrRollback when view ends before old, and ErrFork when view holds
// another link at old's position or does not connect to it. CheckView
// compares positions and hashes only: verify the new links with Apply or
// VerifyChain as well.
func CheckView(old Head, view []*Link) error {
	if len(view) > MaxLinksPerCall {
		return errorf(ErrChainTooLong, "%d links, limit %d", len(view), MaxLinksPerCall)
	}
	if len(view) == 0 {
		return errorf(ErrRollback, "empty view, verified head is seq %d", old.Seq)
	}
	for i, l := range view {
		if l == nil {
			return errorf(ErrMalformed, "nil link in view")
		}
		if i > 0 && (l.seq != view[i-1].seq+1 || l.prev != view[i-1].hash) {
			return errorf(ErrPrevHash, "view is not a chain at seq %d", l.seq)
		}
	}
	first, last := view[0].seq, view[len(view)-1].seq
	switch {
	case last < old.Seq:
		return errorf(ErrRollback, "view ends at seq %d, verified head is seq %d", last, old.Seq)
	case first <= old.Seq:
		if l := view[old.Seq-first]; l.hash != old.Hash {
			return errorf(ErrFork, "seq %d is %s in the view, %s when verified", old.Seq, l.hash, old.Hash)
		}
	case first == old.Seq+1:
		if view[0].prev != old.Hash {
			return errorf(ErrFork, "seq %d follows %s in the view, verified seq %d is %s", first, view[0].prev, old.Seq, old.Hash)
		}
	default:
		return errorf(ErrFork, "view starts at seq %d and cannot show it continues verified seq %d", first, old.Seq)
	}
	return nil
}
