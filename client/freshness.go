package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/translog"
	"github.com/enigm/enigm/translog/smap"
)

// Errors of the freshness check (VerifyFreshness). Each names the heads,
// the checkpoint and what failed; keep the answer as evidence.
var (
	// ErrStaleHead: the log says the account has a newer link than the
	// head the device holds: the server showed it an old head (hid a
	// link, perhaps a revocation). Fetch the chain again; if the server
	// keeps serving the old head, it is hiding the newer link.
	ErrStaleHead = errors.New("client: the server showed a head older than the newest the log holds")
	// ErrHeadNotLogged: the log's newest checkpoint holds an older head
	// of the account than the device's, or none: the device's head is
	// not in a checkpoint yet. Normal for about a log interval after a
	// link is accepted; if it lasts, the server is keeping the link out
	// of the log (showing it to this device only).
	ErrHeadNotLogged = errors.New("client: the head this device holds is not in the log's newest checkpoint")
	// ErrNotFresh: the server gave no valid freshness proof (its map
	// leaf is not the checkpoint's last leaf or not in it, the map proof
	// does not verify), or the log holds another link at the device's
	// head's sequence number (a fork of the chain).
	ErrNotFresh = errors.New("client: the server gave no valid freshness proof")
)

// VerifyFreshness checks that head, the head of account acct this device
// verified, is the account's newest link in the transparency log: it
// fetches the freshness proof (GET /v1/accounts/{id}/freshness), verifies
// its checkpoint under the keys st pinned, requires that checkpoint to be
// the one st holds or a consistent extension of it (which it then
// stores, as SyncLog would), and checks with transparency-dev/merkle and
// translog/smap that the checkpoint's last leaf is the map leaf and that
// the map gives the account exactly head. It returns the checkpoint the
// proof was checked against.
//
// A newer head in the log is ErrStaleHead; an older one or none is
// ErrHeadNotLogged; a proof that does not verify, or another link at
// head's seq, is ErrNotFresh; a checkpoint that does not verify or
// extend the stored one is ErrLogKeys, ErrLogRollback or ErrLogFork. st
// is only changed when everything verifies, or to the newer checkpoint
// once it is verified consistent.
func (c *Client) VerifyFreshness(ctx context.Context, acct chain.AccountID, head chain.Head, st LogStore) (translog.Checkpoint, error) {
	prev, err := st.LogState()
	if err != nil {
		return translog.Checkpoint{}, err
	}
	if prev == nil || prev.Size == 0 {
		return translog.Checkpoint{}, fmt.Errorf("%w: this device holds no checkpoint to check %s's head against (SyncLog first)", ErrNotFresh, acct)
	}
	var f api.Freshness
	if err := c.do(ctx, "GET", fmt.Sprintf("/v1/accounts/%s/freshness", acct), false, nil, &f); err != nil {
		if errors.Is(err, ErrNotFound) {
			// No map leaf in the newest checkpoint yet (a log from before
			// the map until its next integration), or a server that does
			// not prove freshness: nothing shows the head is the newest.
			return translog.Checkpoint{}, fmt.Errorf("%w: the server gives no freshness proof of %s: %w", ErrHeadNotLogged, acct, err)
		}
		return translog.Checkpoint{}, fmt.Errorf("client: fetching the freshness proof of %s: %w", acct, err)
	}
	cp, err := translog.VerifyCheckpoint([]byte(f.Checkpoint), prev.Origin, prev.PublicKeys)
	if err != nil {
		return translog.Checkpoint{}, fmt.Errorf("%w: the freshness proof's checkpoint: %v", ErrLogKeys, err)
	}
	if err := c.checkConsistent(ctx, prev, cp); err != nil {
		keepEvidence(st, []byte(f.Checkpoint), err)
		return translog.Checkpoint{}, err
	}
	if cp.Size != prev.Size {
		// A newer checkpoint is adopted only under the device's witness
		// policy, as SyncLogPolicy would: the freshness answer is no side
		// door for a checkpoint the witnesses have not seen.
		if ps, ok := st.(WitnessPolicySource); ok {
			pol, err := ps.WitnessPolicy()
			if err != nil {
				return translog.Checkpoint{}, err
			}
			if err := pol.CheckWitnesses([]byte(f.Checkpoint), cp); err != nil {
				return translog.Checkpoint{}, err
			}
		}
		next := &LogState{LogPin: prev.LogPin, Size: cp.Size, Hash: cp.Hash[:], Checkpoint: []byte(f.Checkpoint)}
		if err := st.SetLogState(next); err != nil {
			return translog.Checkpoint{}, fmt.Errorf("client: storing the verified log checkpoint: %w", err)
		}
	}
	if err := checkFreshness(cp, acct, head, &f); err != nil {
		return translog.Checkpoint{}, err
	}
	return cp, nil
}

// checkFreshness checks the answer f against the verified checkpoint cp
// and the device's head.
func checkFreshness(cp translog.Checkpoint, acct chain.AccountID, head chain.Head, f *api.Freshness) error {
	if f.TreeSize != cp.Size {
		return fmt.Errorf("%w: the proof is for a tree of %d leaves, its checkpoint has %d", ErrNotFresh, f.TreeSize, cp.Size)
	}
	if f.MapIndex != cp.Size-1 {
		return fmt.Errorf("%w: the map leaf it names is leaf %d, not the checkpoint's last leaf %d: a map that does not reflect every leaf of the checkpoint", ErrNotFresh, f.MapIndex, cp.Size-1)
	}
	p, err := smap.ParseProof(f.MapProof)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotFresh, err)
	}
	tf := translog.Freshness{Size: f.TreeSize, Inclusion: f.Inclusion, Proof: p}
	copy(tf.MapRoot[:], f.MapRoot)
	var shown *chain.Head
	if f.Head != nil {
		h, err := f.Head.Chain()
		if err != nil {
			return fmt.Errorf("%w: %v", ErrNotFresh, err)
		}
		shown = &h
		tf.Value = &smap.Value{Seq: h.Seq, Head: h.Hash}
	}
	if err := translog.VerifyFreshness(cp, smap.Key(acct), tf); err != nil {
		return fmt.Errorf("%w: account %s in the checkpoint of %d leaves (root %x): %v", ErrNotFresh, acct, cp.Size, cp.Hash, err)
	}
	switch {
	case shown == nil:
		return fmt.Errorf("%w: the log's checkpoint of %d leaves has no link of account %s; the device holds seq %d", ErrHeadNotLogged, cp.Size, acct, head.Seq)
	case shown.Seq > head.Seq:
		return fmt.Errorf("%w: the server showed head seq %d of account %s, but the log says seq %d (%s) is the newest (checkpoint of %d leaves)",
			ErrStaleHead, head.Seq, acct, shown.Seq, shown.Hash, cp.Size)
	case shown.Seq < head.Seq:
		return fmt.Errorf("%w: the log's checkpoint of %d leaves has seq %d of account %s as the newest, the device holds seq %d", ErrHeadNotLogged, cp.Size, shown.Seq, acct, head.Seq)
	case !bytes.Equal(shown.Hash[:], head.Hash[:]):
		return fmt.Errorf("%w: the log holds link %s at seq %d of account %s, the device holds %s: the chain was forked",
			ErrNotFresh, shown.Hash, head.Seq, acct, hex.EncodeToString(head.Hash[:]))
	}
	return nil
}
