package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/enigm/enigm/chain"
)

// Store keeps the links a device verified, per account. What it holds was
// verified before it was stored, and is verified again when loaded.
type Store interface {
	// Links returns the stored links of acct in order (none if unknown).
	Links(acct chain.AccountID) ([][]byte, error)
	// Append stores links that extend the stored ones.
	Append(acct chain.AccountID, links [][]byte) error
}

// Sync verifies the server's view of acct's chain against what this device
// verified before, stores the extension and returns the new verified state.
// The first sync of an account trusts its genesis (the account id is the
// genesis hash, so the server cannot substitute another account); after
// that, a view that ends before the stored head is ErrRollback, and one that
// differs at or before it, or does not connect to it, is ErrFork. A link that
// does not verify is refused with the chain error. Nothing unverified is
// stored.
func (c *Client) Sync(ctx context.Context, acct chain.AccountID, st Store, now time.Time, opts ...chain.Option) (*chain.State, error) {
	return c.SyncFrom(ctx, acct, st, nil, now, opts...)
}

// SyncFrom is Sync starting from prev, the state of exactly the links st
// holds for acct (as a previous Sync returned it), instead of verifying them
// again; nil means load and verify them.
func (c *Client) SyncFrom(ctx context.Context, acct chain.AccountID, st Store, prev *chain.State, now time.Time, opts ...chain.Option) (*chain.State, error) {
	return c.syncFrom(ctx, acct, st, prev, nil, now, opts...)
}

// SyncLogged is SyncFrom for a device that follows the transparency log:
// it accepts only links that are leaves of the checkpoint ls holds (the
// newest this device verified; run SyncLog first). It verifies the
// server's view with the chain package as SyncFrom does, then checks an
// inclusion proof of every new link in that checkpoint (VerifyInclusion;
// the proofs are fetched concurrently, and links accepted before are not
// asked for again), and stores the longest prefix of the view that is
// logged.
//
// When a link is not logged the error says which and why: ErrNotLoggedYet
// when the server says it is newer than the checkpoint (it is integrated
// within about a second: SyncLog, then sync again), ErrNotLogged when it
// is not a leaf at all. With that error the state returned is the one of
// the links stored now, the logged prefix included (nil when acct has
// none); with any other error it is nil and nothing was stored.
func (c *Client) SyncLogged(ctx context.Context, acct chain.AccountID, st Store, prev *chain.State, ls LogStore, now time.Time, opts ...chain.Option) (*chain.State, error) {
	if ls == nil {
		return nil, errors.New("client: SyncLogged needs the device's log state")
	}
	return c.syncFrom(ctx, acct, st, prev, ls, now, opts...)
}

func (c *Client) syncFrom(ctx context.Context, acct chain.AccountID, st Store, prev *chain.State, ls LogStore, now time.Time, opts ...chain.Option) (*chain.State, error) {
	state := prev
	if state == nil {
		var err error
		if state, err = Load(acct, st, now, opts...); err != nil {
			return nil, err
		}
	}
	var view View
	var err error
	if state != nil {
		view, err = c.ChainAfter(ctx, acct, state.Head())
	} else {
		view, err = c.Chain(ctx, acct, -1)
	}
	if err != nil {
		return nil, err
	}
	next, err := Extend(acct, state, view, now, opts...)
	if err != nil {
		return nil, err
	}
	var logErr error
	if ls != nil && len(view.Links) > 0 {
		first := uint64(0)
		if state != nil {
			first = state.Head().Seq + 1
		}
		n, err := c.loggedPrefix(ctx, acct, first, view.Links, ls)
		if err != nil {
			if n == 0 {
				return state, err
			}
			// Accept the logged prefix: its links verified above.
			l, perr := chain.ParseLink(view.Links[n-1])
			if perr != nil {
				return nil, perr
			}
			view = View{Head: chain.Head{Seq: l.Seq(), Hash: l.Hash()}, Links: view.Links[:n]}
			if next, perr = Extend(acct, state, view, now, opts...); perr != nil {
				return nil, perr
			}
			logErr = fmt.Errorf("%w (this device accepted the links up to %d, which are in the log)", err, l.Seq())
		}
		// A recover link waits on witnessed time (recovery_log.go).
		if v, n, err := c.witnessedRecovers(ctx, acct, st, state, next, view, ls, now, opts...); err != nil {
			if len(v.Links) == 0 {
				return n, err
			}
			view, next, logErr = v, n, err
		}
		// And each link waits for a checkpoint that meets the account's
		// witness policy in force before it (account_policy.go).
		if v, n, err := accountWitnessed(acct, state, next, view, ls, now, opts...); err != nil {
			if len(v.Links) == 0 {
				return n, err
			}
			view, next, logErr = v, n, err
		}
	}
	if len(view.Links) > 0 {
		if err := st.Append(acct, view.Links); err != nil {
			return nil, fmt.Errorf("client: storing verified links: %w", err)
		}
	}
	return next, logErr
}

// Load verifies the stored links of acct (nil state when there are none).
func Load(acct chain.AccountID, st Store, now time.Time, opts ...chain.Option) (*chain.State, error) {
	raw, err := st.Links(acct)
	if err != nil {
		return nil, err
	}
	if len(raw) == 0 {
		return nil, nil
	}
	links, err := chain.ParseChain(raw)
	if err != nil {
		return nil, fmt.Errorf("client: the locally stored chain of %s does not parse: %w", acct, err)
	}
	state, err := chain.VerifyChain(nil, links, now, opts...)
	if err != nil {
		return nil, fmt.Errorf("client: the locally stored chain of %s does not verify: %w", acct, err)
	}
	if state.Account() != acct {
		return nil, fmt.Errorf("client: the locally stored chain is of account %s, not %s", state.Account(), acct)
	}
	return state, nil
}

// Extend verifies a server view (links after the head of state) and
// returns the extended state.
func Extend(acct chain.AccountID, state *chain.State, view View, now time.Time, opts ...chain.Option) (*chain.State, error) {
	if state != nil {
		old := state.Head()
		switch {
		case view.Head.Seq < old.Seq:
			return nil, fmt.Errorf("%w: account %s: the server's head is seq %d, this device verified seq %d", ErrRollback, acct, view.Head.Seq, old.Seq)
		case view.Head.Seq == old.Seq && view.Head.Hash != old.Hash:
			return nil, fmt.Errorf("%w: account %s: the server's link %d differs from the one this device verified", ErrFork, acct, old.Seq)
		}
	}
	links, err := chain.ParseChain(view.Links)
	if err != nil {
		return nil, fmt.Errorf("client: the server sent a malformed link for %s: %w", acct, err)
	}
	for i, l := range links {
		if state == nil && i == 0 && l.Hash() != chain.Hash(acct) {
			return nil, fmt.Errorf("%w: the server's genesis is not the genesis of account %s", ErrFork, acct)
		}
		next, err := chain.Apply(state, l, now, opts...)
		if err != nil {
			if state != nil && (errors.Is(err, chain.ErrPrevHash) || errors.Is(err, chain.ErrAccount)) {
				return nil, fmt.Errorf("%w: account %s: link %d does not follow the head this device verified", ErrFork, acct, l.Seq())
			}
			if state != nil && l.Seq() != state.Head().Seq+1 {
				return nil, fmt.Errorf("%w: account %s: the server sent link %d after %d", ErrFork, acct, l.Seq(), state.Head().Seq)
			}
			return nil, fmt.Errorf("client: account %s: the server sent link %d that does not verify: %w", acct, l.Seq(), err)
		}
		state = next
	}
	if state == nil {
		return nil, fmt.Errorf("%w: the server has no chain for %s", ErrNotFound, acct)
	}
	if state.Head() != view.Head {
		return nil, fmt.Errorf("%w: account %s: the server claims head seq %d but its links end at seq %d", ErrFork, acct, view.Head.Seq, state.Head().Seq)
	}
	return state, nil
}
