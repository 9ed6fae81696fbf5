package device

import (
	"context"
	"errors"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/client"
)

// linkTime dates a link that follows st: this device's clock, or the head's
// time when the head is dated later (this clock is behind, or the head was
// dated ahead within Command's skew). A later link may not be older than
// its predecessor, so dating at max(now, head time) keeps a revocation or a
// veto appendable after any link the chain accepted (docs/design/chain.md
// §3.1).
func (a *Agent) linkTime(st *chain.State) time.Time {
	now := a.now()
	if ht := st.Time(); now.Before(ht) {
		return ht
	}
	return now
}

// conflictRetries is how often a revocation or veto is rebuilt on a newer
// head after losing the compare-and-append to another link: a device that
// keeps appending (Command bounds how fast, RateLimits.LinkPerDevice)
// cannot keep the owner's revocation or veto out.
const conflictRetries = 5

// retryOnConflict runs build on this account's freshly synced, verified
// state (own), and again on a newer one each time Command answers that the
// head moved (409 conflict), at most conflictRetries more times.
func (a *Agent) retryOnConflict(ctx context.Context, build func(st *chain.State) (chain.Head, error)) (chain.Head, error) {
	for try := 0; ; try++ {
		_, st, err := a.own(ctx)
		if err != nil {
			return chain.Head{}, err
		}
		head, err := build(st)
		if !errors.Is(err, client.ErrConflict) || try == conflictRetries {
			return head, err
		}
	}
}

// appendSigned builds a link with body at the head of st, signs it with
// this device's identity key (and with extra, when not nil) and appends it
// through Command.
func (a *Agent) appendSigned(ctx context.Context, st *chain.State, body chain.Body, extra func(*chain.Draft) error) (chain.Head, error) {
	if err := a.unlock(ctx); err != nil {
		return chain.Head{}, err
	}
	k, err := a.identity()
	if err != nil {
		return chain.Head{}, err
	}
	signer, err := newSigner(k, false)
	if err != nil {
		return chain.Head{}, err
	}
	d, err := chain.NewDraft(st, a.linkTime(st), body)
	if err != nil {
		return chain.Head{}, err
	}
	if err := d.SignDevice(a.deviceID(), signer); err != nil {
		return chain.Head{}, err
	}
	if extra != nil {
		if err := extra(d); err != nil {
			return chain.Head{}, err
		}
	}
	l, err := d.Link()
	if err != nil {
		return chain.Head{}, err
	}
	cl, _ := a.client()
	head, err := cl.AppendLink(ctx, l)
	if err != nil {
		return head, a.checkServerRevoked(ctx, err)
	}
	return head, nil
}
