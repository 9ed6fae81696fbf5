package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/translog"
)

// Errors of the transparency-log checks (SyncLog). Each is wrapped with
// the sizes and hashes involved; keep the refused checkpoint as evidence.
var (
	// ErrLogKeys: the server's checkpoint does not verify under the log
	// keys this device pinned (or was configured with), or the server now
	// advertises other keys.
	ErrLogKeys = errors.New("client: the log checkpoint is not signed by the pinned log keys")
	// ErrLogRollback: the server's newest checkpoint is smaller than the
	// one this device verified before.
	ErrLogRollback = errors.New("client: the server rolled the transparency log back")
	// ErrLogFork: the server's checkpoint is not consistent with the one
	// this device verified before (another history).
	ErrLogFork = errors.New("client: the server forked the transparency log")
	// ErrNotLogged: the server gave no valid inclusion proof of a link in
	// the checkpoint this device verified.
	ErrNotLogged = errors.New("client: the link is not in the transparency log this device verified")
	// ErrNotLoggedYet: the server says the link is newer than the
	// checkpoint this device verified. Command integrates new links
	// within about a second: SyncLog, then ask again.
	ErrNotLoggedYet = errors.New("client: not in the transparency log yet")
)

// maxProofFetches bounds the inclusion proofs SyncLogged asks for at once.
const maxProofFetches = 8

// LogPin names the transparency log a device trusts: its origin and note
// verifier keys (GET /v1/info log, or `enigm-command log public-key`).
type LogPin struct {
	Origin     string   `json:"origin"`
	PublicKeys []string `json:"public_keys"`
}

// LogState is what a device keeps of the log: the pinned keys and the
// newest checkpoint it verified (the signed note, kept as evidence).
type LogState struct {
	LogPin
	Size       uint64 `json:"size"`
	Hash       []byte `json:"hash"`
	Checkpoint []byte `json:"checkpoint"`
}

// LogStore persists a device's LogState. LogState returns nil before the
// first checkpoint; SetLogState must be durable when it returns.
type LogStore interface {
	LogState() (*LogState, error)
	SetLogState(*LogState) error
}

// SyncLog fetches the server's newest checkpoint (GET /log/checkpoint),
// verifies its signatures under the pinned keys, and accepts it only if it
// is consistent with the checkpoint st holds: the same tree, or a larger
// one with a valid RFC 6962 consistency proof (GET /v1/log/consistency),
// checked with transparency-dev/merkle. The accepted checkpoint replaces
// the stored one. A smaller tree is ErrLogRollback, another tree
// ErrLogFork, a bad signature ErrLogKeys; st is left unchanged then.
//
// The keys are pin when given; otherwise those st pinned; otherwise, at
// first contact, those GET /v1/info advertises (trust on first use). A pin
// that differs from the stored one is ErrLogKeys.
func (c *Client) SyncLog(ctx context.Context, st LogStore, pin *LogPin) (translog.Checkpoint, error) {
	return c.SyncLogPolicy(ctx, st, LogPolicy{Pin: pin})
}

// SyncLogPolicy is SyncLog that also requires what p requires of a
// checkpoint's witnesses (CheckWitnesses): a checkpoint that lacks the
// quorum or is older than the maximum age is refused with a
// *WitnessError, and not stored. When st also implements LogEvidence,
// every refused checkpoint that the log signed (a rollback, a fork, one
// without the quorum or too old) is kept there.
func (c *Client) SyncLogPolicy(ctx context.Context, st LogStore, p LogPolicy) (translog.Checkpoint, error) {
	prev, err := st.LogState()
	if err != nil {
		return translog.Checkpoint{}, err
	}
	keys, err := c.logPin(ctx, prev, p.Pin)
	if err != nil {
		return translog.Checkpoint{}, err
	}
	signed, err := c.rawGet(ctx, "/log/checkpoint", translog.MaxCheckpointSize)
	if err != nil {
		return translog.Checkpoint{}, fmt.Errorf("client: fetching the log checkpoint: %w", err)
	}
	same := prev != nil && prev.Size > 0 && bytes.Equal(signed, prev.Checkpoint) && samePin(keys, prev.LogPin)
	var cp translog.Checkpoint
	if same {
		// The very note this device verified and stored: its signatures
		// and consistency were checked then; its age is checked below.
		cp = translog.Checkpoint{Origin: prev.Origin, Size: prev.Size}
		copy(cp.Hash[:], prev.Hash)
	} else {
		if cp, err = translog.VerifyCheckpoint(signed, keys.Origin, keys.PublicKeys); err != nil {
			return translog.Checkpoint{}, fmt.Errorf("%w: %v", ErrLogKeys, err)
		}
		if prev != nil && prev.Size > 0 {
			if err := c.checkConsistent(ctx, prev, cp); err != nil {
				keepEvidence(st, signed, err)
				return translog.Checkpoint{}, err
			}
		}
	}
	if err := p.CheckWitnesses(signed, cp); err != nil {
		keepEvidence(st, signed, err)
		return translog.Checkpoint{}, err
	}
	if same {
		return cp, nil
	}
	next := &LogState{LogPin: keys, Size: cp.Size, Hash: cp.Hash[:], Checkpoint: signed}
	if err := st.SetLogState(next); err != nil {
		return translog.Checkpoint{}, fmt.Errorf("client: storing the verified log checkpoint: %w", err)
	}
	return cp, nil
}

// samePin reports whether two pins name the same log: the same origin
// and the same set of keys (in any order).
func samePin(a, b LogPin) bool {
	ka, kb := slices.Clone(a.PublicKeys), slices.Clone(b.PublicKeys)
	slices.Sort(ka)
	slices.Sort(kb)
	return a.Origin == b.Origin && slices.Equal(ka, kb)
}

// Same reports whether p and q name the same log (origin and keys, in
// any order).
func (p LogPin) Same(q LogPin) bool { return samePin(p, q) }

// logPin picks the keys to verify with.
func (c *Client) logPin(ctx context.Context, prev *LogState, pin *LogPin) (LogPin, error) {
	switch {
	case pin != nil && prev != nil && !samePin(*pin, prev.LogPin):
		return LogPin{}, fmt.Errorf("%w: the configured log %q differs from the log %q this device pinned", ErrLogKeys, pin.Origin, prev.Origin)
	case pin != nil:
		return *pin, nil
	case prev != nil:
		return prev.LogPin, nil
	}
	info, err := c.Info(ctx)
	if err != nil {
		return LogPin{}, err
	}
	if info.Log == nil {
		return LogPin{}, fmt.Errorf("%w: the server publishes no transparency log (GET /v1/info has no log)", ErrLogKeys)
	}
	return LogPin{Origin: info.Log.Origin, PublicKeys: slices.Clone(info.Log.PublicKeys)}, nil
}

// consistencyProof fetches the server's proof that the tree of to
// leaves extends the one of from, checked to be for those sizes (the
// caller verifies it against the roots it holds).
func (c *Client) consistencyProof(ctx context.Context, from, to uint64) ([][]byte, error) {
	var p api.ConsistencyProof
	if err := c.do(ctx, "GET", fmt.Sprintf("/v1/log/consistency?from=%d&to=%d", from, to), false, nil, &p); err != nil {
		return nil, fmt.Errorf("client: fetching the consistency proof %d → %d: %w", from, to, err)
	}
	if p.From != from || p.To != to {
		return nil, fmt.Errorf("%w: asked for the consistency proof %d → %d, got %d → %d", ErrLogFork, from, to, p.From, p.To)
	}
	return p.Proof, nil
}

// checkConsistent checks cp against the stored checkpoint prev.
func (c *Client) checkConsistent(ctx context.Context, prev *LogState, cp translog.Checkpoint) error {
	switch {
	case cp.Size < prev.Size:
		return fmt.Errorf("%w: its checkpoint has %d leaves, this device verified %d (root %s)", ErrLogRollback, cp.Size, prev.Size, hex.EncodeToString(prev.Hash))
	case cp.Size == prev.Size:
		if !bytes.Equal(cp.Hash[:], prev.Hash) {
			return fmt.Errorf("%w: two roots for %d leaves: %x now, %s verified before", ErrLogFork, cp.Size, cp.Hash, hex.EncodeToString(prev.Hash))
		}
		return nil
	}
	p, err := c.consistencyProof(ctx, prev.Size, cp.Size)
	if err != nil {
		return err
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, prev.Size, cp.Size, p, prev.Hash, cp.Hash[:]); err != nil {
		return fmt.Errorf("%w: the checkpoint of %d leaves does not extend the one of %d this device verified (root %s): %v",
			ErrLogFork, cp.Size, prev.Size, hex.EncodeToString(prev.Hash), err)
	}
	return nil
}

// VerifyInclusion checks that link, the canonical bytes of link seq of
// account acct, is a leaf of the checkpoint st holds (the newest this
// device verified, SyncLog): it asks for the inclusion proof in that
// tree (GET /v1/accounts/{id}/links/{seq}/proof?size=) and checks it with
// transparency-dev/merkle against the stored root. A link that is not
// there, or a proof that does not verify, is ErrNotLogged. A link newer
// than the stored checkpoint is not in it yet: the server answers 503,
// which is ErrNotLoggedYet; SyncLog, then ask again.
func (c *Client) VerifyInclusion(ctx context.Context, acct chain.AccountID, seq uint64, link []byte, st LogStore) error {
	prev, err := st.LogState()
	if err != nil {
		return err
	}
	return c.verifyInclusion(ctx, acct, seq, link, prev)
}

func (c *Client) verifyInclusion(ctx context.Context, acct chain.AccountID, seq uint64, link []byte, prev *LogState) error {
	if prev == nil {
		return fmt.Errorf("%w: this device holds no checkpoint to check link %d of %s against (SyncLog first)", ErrNotLogged, seq, acct)
	}
	if prev.Size == 0 {
		return fmt.Errorf("%w: link %d of account %s: the checkpoint this device verified is of the empty log; retry in a second", ErrNotLoggedYet, seq, acct)
	}
	var p api.InclusionProof
	err := c.do(ctx, "GET", fmt.Sprintf("/v1/accounts/%s/links/%d/proof?size=%d", acct, seq, prev.Size), false, nil, &p)
	var ae *APIError
	switch {
	case errors.Is(err, ErrNotFound):
		return fmt.Errorf("%w: the server says link %d of account %s was never logged: %v", ErrNotLogged, seq, acct, err)
	case errors.As(err, &ae) && ae.Status == http.StatusServiceUnavailable:
		return fmt.Errorf("%w: link %d of account %s is not in the checkpoint of %d leaves this device verified; retry in a second", ErrNotLoggedYet, seq, acct, prev.Size)
	case err != nil:
		return fmt.Errorf("client: fetching the inclusion proof of link %d of %s: %w", seq, acct, err)
	}
	if p.TreeSize != prev.Size {
		return fmt.Errorf("%w: asked for a proof of link %d of %s in the tree of %d leaves, got one for %d", ErrNotLogged, seq, acct, prev.Size, p.TreeSize)
	}
	h := rfc6962.DefaultHasher
	if err := proof.VerifyInclusion(h, p.LeafIndex, p.TreeSize, h.HashLeaf(link), p.Proof, prev.Hash); err != nil {
		return fmt.Errorf("%w: link %d of %s is not leaf %d of the checkpoint of %d leaves (root %s): %v",
			ErrNotLogged, seq, acct, p.LeafIndex, prev.Size, hex.EncodeToString(prev.Hash), err)
	}
	return nil
}

// loggedPrefix checks the inclusion of links (links first, first+1, … of
// acct) in the checkpoint st holds, at most maxProofFetches at a time,
// and returns how many of them, from the first, are logged, and the
// error of the first that is not.
func (c *Client) loggedPrefix(ctx context.Context, acct chain.AccountID, first uint64, links [][]byte, st LogStore) (int, error) {
	prev, err := st.LogState()
	if err != nil {
		return 0, err
	}
	errs := make([]error, len(links))
	sem := make(chan struct{}, maxProofFetches)
	var wg sync.WaitGroup
	for i, l := range links {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = c.verifyInclusion(ctx, acct, first+uint64(i), l, prev)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return i, err
		}
	}
	return len(links), nil
}

// rawGet GETs path and returns its body (at most limit bytes), refusing a
// non-200 answer.
func (c *Client) rawGet(ctx context.Context, path string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", c.base.String()+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &APIError{Status: resp.StatusCode, Code: "http_" + fmt.Sprint(resp.StatusCode), Message: "GET " + path + " failed"}
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("client: GET %s: more than %d bytes", path, limit)
	}
	return b, nil
}
