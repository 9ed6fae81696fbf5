package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/translog"
)

// ErrRecoveryNotWitnessed: a recover link this device was asked to accept
// does not meet the waiting period by witnessed time (translog.md,
// "Recovery on witnessed time"): the server offers no valid evidence that
// the recovery request was public under a checkpoint cosigned by the
// device's witness quorum, or the checkpoint that includes the recover
// link was witnessed before that time plus the waiting period. The error
// names both times.
var ErrRecoveryNotWitnessed = errors.New("client: the recovery's waiting period has not passed by witnessed time")

// WitnessPolicySource is implemented by a LogStore whose device requires
// witness cosignatures (LogPolicy.Witnesses). SyncLogged then accepts a
// recover link only on witnessed time (CheckRecoverWitnessed); without it,
// or with a policy that requires no witness, only the chain's link times
// bound the waiting period.
type WitnessPolicySource interface {
	WitnessPolicy() (LogPolicy, error)
}

// QuorumTimes returns the two times a signed checkpoint's cosignatures
// give under pol, from the cosignatures that verify under its witness
// keys (the log's signatures are not checked here):
//
//   - first: the earliest time t such that the witnesses that cosigned
//     at or before t meet the quorum (for k of n, the k-th oldest). Every
//     set of witnesses meeting the quorum holds an honest one, so the
//     checkpoint was public at first; a witness that backdates its
//     cosignature cannot move it earlier (it can only make it later);
//   - last: the latest time t such that the witnesses that cosigned at
//     or after t meet the quorum (for k of n, the k-th newest), at most
//     now; a witness that postdates cannot move it later.
//
// A checkpoint without the quorum is a *WitnessError.
func QuorumTimes(signed []byte, cp translog.Checkpoint, pol *translog.Policy, now time.Time) (first, last time.Time, err error) {
	if !pol.RequiresWitnesses() {
		return time.Time{}, time.Time{}, errors.New("client: the witness policy requires no witness, so no time is witnessed")
	}
	if err := (LogPolicy{Witnesses: pol, MaxAge: -1}).CheckWitnesses(signed, cp); err != nil {
		return time.Time{}, time.Time{}, err
	}
	keys := make([]string, len(pol.Witnesses))
	for i, w := range pol.Witnesses {
		keys[i] = w.Key
	}
	cos, err := translog.Cosignatures(signed, keys)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("%w: %v", ErrWitness, err)
	}
	var times []time.Time
	for _, c := range cos {
		if c.Valid {
			times = append(times, c.Time)
		}
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	for _, t := range times {
		if pol.Satisfied(func(i int) bool { return cos[i].Valid && !cos[i].Time.After(t) }) {
			first = t
			break
		}
	}
	for _, t := range slices.Backward(times) {
		if pol.Satisfied(func(i int) bool { return cos[i].Valid && !cos[i].Time.Before(t) }) {
			last = t
			break
		}
	}
	if last.After(now) {
		last = now
	}
	return first, last, nil
}

// RecoveryWitness asks Command for its evidence that recovery rid was
// public at a witnessed time (GET /v1/recoveries/{rid}/witness). The
// answer is unverified: CheckRecoverWitnessed checks it.
func (c *Client) RecoveryWitness(ctx context.Context, rid string) (*api.RecoveryWitness, error) {
	var w api.RecoveryWitness
	if err := c.do(ctx, "GET", "/v1/recoveries/"+url.PathEscape(rid)+"/witness", false, nil, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

// RecoveryPublic is the verified witnessed time of a recovery request.
type RecoveryPublic struct {
	// WitnessedAt is t1: the request was a leaf of a checkpoint the
	// device's witness quorum had cosigned by then (QuorumTimes first).
	WitnessedAt time.Time
	// NotBefore is t1 plus the waiting period: no recover link is
	// accepted under a checkpoint witnessed earlier.
	NotBefore time.Time
	// Size is the size of that checkpoint.
	Size uint64
}

// VerifyRecoveryPublic checks Command's evidence that the recovery
// request pr of acct (whose canonical bytes are request) was public, and
// returns its witnessed time under p's witness quorum: the evidence's
// checkpoint C1 must verify under the log keys ls pinned, be consistent
// with (a prefix of) the checkpoint ls holds, carry p's quorum, and
// include the request's exact bytes as a leaf. delay is the waiting
// period in force. Anything else is ErrRecoveryNotWitnessed, naming what
// is missing.
func (c *Client) VerifyRecoveryPublic(ctx context.Context, acct chain.AccountID, pr chain.PendingRecovery, request []byte, delay time.Duration, ls *LogState, p LogPolicy) (RecoveryPublic, error) {
	rid := hex.EncodeToString(pr.Request[:])
	fail := func(format string, args ...any) (RecoveryPublic, error) {
		return RecoveryPublic{}, fmt.Errorf("%w: recovery request %s (link %d of account %s): %s", ErrRecoveryNotWitnessed, rid, pr.Seq, acct, fmt.Sprintf(format, args...))
	}
	if ls == nil || ls.Size == 0 {
		return fail("this device holds no verified checkpoint")
	}
	if len(request) == 0 {
		return fail("no request link")
	}
	ev, err := c.RecoveryWitness(ctx, rid)
	if err != nil {
		return fail("the server offers no witnessed checkpoint that includes it: %v", err)
	}
	if ev.RecoveryID != rid {
		return fail("the server's evidence names recovery %s", ev.RecoveryID)
	}
	signed := []byte(ev.Checkpoint)
	c1, err := translog.VerifyCheckpoint(signed, ls.Origin, ls.PublicKeys)
	if err != nil {
		return fail("its checkpoint is not signed by the log this device follows: %v", err)
	}
	if c1.Size > ls.Size {
		// Newer than this device's: sync the log, then check again.
		return fail("its checkpoint (%d leaves) is newer than the one this device verified (%d); sync again", c1.Size, ls.Size)
	}
	if err := c.checkPrefix(ctx, c1, ls); err != nil {
		return fail("%v", err)
	}
	h := rfc6962.DefaultHasher
	if ev.LeafIndex >= c1.Size {
		return fail("leaf %d is not in its checkpoint of %d leaves", ev.LeafIndex, c1.Size)
	}
	if err := proof.VerifyInclusion(h, ev.LeafIndex, c1.Size, h.HashLeaf(request), ev.Proof, c1.Hash[:]); err != nil {
		return fail("the request is not leaf %d of the checkpoint of %d leaves (root %x) the server offers as evidence: the inclusion proof does not verify", ev.LeafIndex, c1.Size, c1.Hash)
	}
	now := time.Now()
	if p.Now != nil {
		now = p.Now()
	}
	t1, _, err := QuorumTimes(signed, c1, p.Witnesses, now)
	if err != nil {
		return fail("the checkpoint of %d leaves the server offers as evidence lacks this device's witness quorum: %v", c1.Size, err)
	}
	return RecoveryPublic{WitnessedAt: t1, NotBefore: t1.Add(delay), Size: c1.Size}, nil
}

// checkPrefix checks that c1 is the tree ls holds or a prefix of it (a
// consistency proof from the server, checked here).
func (c *Client) checkPrefix(ctx context.Context, c1 translog.Checkpoint, ls *LogState) error {
	if c1.Size == ls.Size {
		if !bytes.Equal(c1.Hash[:], ls.Hash) {
			return fmt.Errorf("%w: its checkpoint of %d leaves has another root than the one this device verified", ErrLogFork, c1.Size)
		}
		return nil
	}
	p, err := c.consistencyProof(ctx, c1.Size, ls.Size)
	if err != nil {
		return err
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, c1.Size, ls.Size, p, c1.Hash[:], ls.Hash); err != nil {
		return fmt.Errorf("%w: its checkpoint of %d leaves is not a prefix of the one of %d this device verified: %v", ErrLogFork, c1.Size, ls.Size, err)
	}
	return nil
}

// CheckRecoverWitnessed decides a recover link under the device's
// checkpoint ls (which includes the recover leaf: SyncLogged checked its
// inclusion first). before is the verified state just before the recover
// link, request the canonical bytes of the pending request link. It
// accepts the link only if the witnessed time of ls's checkpoint (its
// quorum's last time, at most now) is at least the request's witnessed
// time plus the waiting period (max of the request's delay and the
// policy's, as chain.Apply uses).
func (c *Client) CheckRecoverWitnessed(ctx context.Context, acct chain.AccountID, before *chain.State, request []byte, recover *chain.Link, ls *LogState, p LogPolicy) (RecoveryPublic, error) {
	recoverSeq := recover.Seq()
	pr, ok := before.PendingRecovery()
	if !ok {
		return RecoveryPublic{}, fmt.Errorf("%w: link %d of account %s is a recover link with no recovery pending", ErrRecoveryNotWitnessed, recoverSeq, acct)
	}
	delay := max(pr.Delay, before.Policy().RecoveryDelay)
	pub, err := c.VerifyRecoveryPublic(ctx, acct, pr, request, delay, ls, p)
	if err != nil {
		return pub, fmt.Errorf("refusing the recover link %d: %w", recoverSeq, err)
	}
	now := time.Now()
	if p.Now != nil {
		now = p.Now()
	}
	cp := translog.Checkpoint{Origin: ls.Origin, Size: ls.Size}
	copy(cp.Hash[:], ls.Hash)
	_, t2, err := QuorumTimes(ls.Checkpoint, cp, p.Witnesses, now)
	if err != nil {
		return pub, fmt.Errorf("%w: the checkpoint that includes the recover link %d of account %s: %v", ErrRecoveryNotWitnessed, recoverSeq, acct, err)
	}
	if t2.Before(pub.NotBefore) {
		return pub, &RecoverEarlyError{msg: fmt.Sprintf("%v: recover link %d of account %s: the recovery request (link %d) was first witnessed at %s; completion allowed after %s by witnessed time (waiting period %s), but the checkpoint that includes the recover link was witnessed at %s (the links claim the request at %s and the recover at %s)",
			ErrRecoveryNotWitnessed, recoverSeq, acct, pr.Seq, rfc3339(pub.WitnessedAt), rfc3339(pub.NotBefore), delay, rfc3339(t2), rfc3339(pr.Time), rfc3339(recover.Time()))}
	}
	return pub, nil
}

// RecoverEarlyError is the ErrRecoveryNotWitnessed of a recover link
// under a checkpoint witnessed before the end of the waiting period: that
// checkpoint, signed by the log and cosigned by the witnesses, is
// evidence against the log (SyncLogged keeps it through LogEvidence).
type RecoverEarlyError struct{ msg string }

func (e *RecoverEarlyError) Error() string { return e.msg }

// Is makes it match ErrRecoveryNotWitnessed.
func (e *RecoverEarlyError) Is(target error) bool { return target == ErrRecoveryNotWitnessed }

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// witnessedRecovers is SyncLogged's last step: when ls's device requires
// witnesses (WitnessPolicySource), each recover link of view (the links
// after state, already verified and logged) must pass
// CheckRecoverWitnessed. It returns the longest acceptable prefix of view
// with its state, and the error of the first refused link.
func (c *Client) witnessedRecovers(ctx context.Context, acct chain.AccountID, st Store, state, next *chain.State, view View, ls LogStore, now time.Time, opts ...chain.Option) (View, *chain.State, error) {
	src, ok := ls.(WitnessPolicySource)
	if !ok || len(view.Links) == 0 {
		return view, next, nil
	}
	p, err := src.WitnessPolicy()
	if err != nil {
		return View{}, nil, err
	}
	if !p.Witnesses.RequiresWitnesses() {
		return view, next, nil
	}
	links, err := chain.ParseChain(view.Links)
	if err != nil {
		return View{}, nil, err
	}
	first := uint64(0)
	if state != nil {
		first = state.Head().Seq + 1
	}
	cur, done := state, 0 // cur is the state after view.Links[:done]
	for i, l := range links {
		if l.Type() != chain.TypeRecover {
			continue
		}
		if i > done {
			pre := View{Head: chain.Head{Seq: links[i-1].Seq(), Hash: links[i-1].Hash()}, Links: view.Links[done:i]}
			if cur, err = Extend(acct, cur, pre, now, opts...); err != nil {
				return View{}, nil, err
			}
			done = i
		}
		pr, ok := cur.PendingRecovery()
		if !ok {
			return View{}, nil, fmt.Errorf("%w: link %d of account %s is a recover link with no recovery pending", ErrRecoveryNotWitnessed, l.Seq(), acct)
		}
		var request []byte
		if pr.Seq >= first {
			request = view.Links[pr.Seq-first]
		} else {
			raw, err := st.Links(acct)
			if err != nil {
				return View{}, nil, err
			}
			if pr.Seq >= uint64(len(raw)) {
				return View{}, nil, fmt.Errorf("client: the stored chain of %s lacks the request link %d", acct, pr.Seq)
			}
			request = raw[pr.Seq]
		}
		prev, err := ls.LogState()
		if err != nil {
			return View{}, nil, err
		}
		if _, err := c.CheckRecoverWitnessed(ctx, acct, cur, request, l, prev, p); err != nil {
			if early := (*RecoverEarlyError)(nil); errors.As(err, &early) {
				keepEvidence(ls, prev.Checkpoint, err)
			}
			if i == 0 {
				return View{}, state, err
			}
			return View{Head: chain.Head{Seq: links[i-1].Seq(), Hash: links[i-1].Hash()}, Links: view.Links[:i]}, cur, err
		}
	}
	return view, next, nil
}
