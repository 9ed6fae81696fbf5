package client

import (
	"fmt"
	"slices"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/translog"
)

// An organisation's witness policy (chain.Policy.WitnessPolicy) binds the
// checkpoints under which a device accepts its account's links. The
// policy comes from the chain, and the chain is accepted under the log, so
// the order matters: each link is accepted only under a checkpoint that
// meets the policy in force before it. A set_policy that removes or
// weakens the policy is therefore itself accepted only under a checkpoint
// the policy it replaces has witnessed, and the links after a set_policy
// that tightens it wait for a checkpoint that meets the new one.

// AccountPolicySource is implemented by a LogStore whose device holds the
// checkpoints under which it accepts an account's links to the witness
// policy that account's chain carries: device.Agent, for its own account.
type AccountPolicySource interface {
	// BindsAccount reports whether acct's chain policy binds this device.
	BindsAccount(acct chain.AccountID) bool
	// AccountLogPolicy returns what a checkpoint must meet for the links
	// of acct (an account it binds) accepted while its chain policy is p:
	// the device's own policy and p's witness policy (LogPolicy.Org). A
	// witness policy that does not parse is an error: the device syncs
	// nothing under it.
	AccountLogPolicy(acct chain.AccountID, p chain.Policy) (LogPolicy, error)
}

// OrgPolicy returns the parsed witness policy p carries (nil without one)
// with its maximum age, for LogPolicy.Org and OrgMaxAge.
func OrgPolicy(p chain.Policy) (*translog.Policy, time.Duration, error) {
	if p.WitnessPolicy == "" {
		return nil, 0, nil
	}
	pol, err := translog.ParsePolicy([]byte(p.WitnessPolicy))
	if err != nil {
		return nil, 0, fmt.Errorf("client: the witness policy the account's organisation set in its chain: %w", err)
	}
	return pol, p.WitnessMaxAge, nil
}

// accountWitnessed is SyncLogged's step after the logged prefix: when ls
// is an AccountPolicySource, every link of view (the links after state,
// verified and logged) must be in the stored checkpoint under the policy
// in force before it: state's, or the one the last genesis or set_policy
// before it in view sets (a genesis is accepted under the device's own
// policy, which SyncLog applied). It returns the longest acceptable
// prefix of view with its state, and the *WitnessError of the first link
// refused.
func accountWitnessed(acct chain.AccountID, state, next *chain.State, view View, ls LogStore, now time.Time, opts ...chain.Option) (View, *chain.State, error) {
	src, ok := ls.(AccountPolicySource)
	if !ok || len(view.Links) == 0 || !src.BindsAccount(acct) {
		return view, next, nil
	}
	links, err := chain.ParseChain(view.Links)
	if err != nil {
		return View{}, nil, err
	}
	var prev *LogState
	var cp translog.Checkpoint
	var checked []chain.Policy // policies the stored checkpoint meets
	var in chain.Policy        // the policy in force before links[i]
	have := state != nil
	if have {
		in = state.Policy()
	}
	for i, l := range links {
		if have && !slices.Contains(checked, in) {
			pol, err := src.AccountLogPolicy(acct, in)
			if err != nil {
				return View{}, nil, err
			}
			if prev == nil {
				if prev, err = ls.LogState(); err != nil {
					return View{}, nil, err
				}
				if prev == nil {
					return View{}, nil, fmt.Errorf("%w: no verified checkpoint to accept the links of %s under", ErrNotLoggedYet, acct)
				}
				cp = translog.Checkpoint{Origin: prev.Origin, Size: prev.Size}
				copy(cp.Hash[:], prev.Hash)
			}
			if err := pol.CheckWitnesses(prev.Checkpoint, cp); err != nil {
				err = fmt.Errorf("%w (link %d of account %s and those after it wait for a checkpoint witnessed as its policy requires)", err, l.Seq(), acct)
				if i == 0 {
					return View{}, state, err
				}
				pre := View{Head: chain.Head{Seq: links[i-1].Seq(), Hash: links[i-1].Hash()}, Links: view.Links[:i]}
				st, perr := Extend(acct, state, pre, now, opts...)
				if perr != nil {
					return View{}, nil, perr
				}
				return pre, st, err
			}
			checked = append(checked, in)
		}
		switch b := l.Body().(type) {
		case *chain.Genesis:
			in = b.Policy
		case *chain.SetPolicy:
			in = b.Policy
		}
		have = true
	}
	return view, next, nil
}
