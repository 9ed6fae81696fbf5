package load

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/chain"
)

// RevokeResult is the revocation scenario's outcome, over several rounds.
// In each round an account has devices A, B and C; senders keep sending
// envelopes to B and C, B keeps fetching (and acknowledging) its envelopes,
// C keeps syncing its device list, and A revokes B in the middle.
type RevokeResult struct {
	Rounds  int `json:"rounds"`
	Senders int `json:"senders"`
	// Instances the round used: A's revocation goes to the first, B's
	// fetches and C's syncs to the last.
	Instances int     `json:"instances"`
	Sends     int64   `json:"sends"`
	SendsPS   float64 `json:"sends_per_second"`

	// Before the revocation was accepted.
	AcceptedForB int64 `json:"envelopes_accepted_for_b"`
	DeliveredToB int64 `json:"envelopes_delivered_to_b"`
	// After: both must be zero.
	AcceptedAfter  int64 `json:"envelopes_accepted_for_b_after_revocation"`
	DeliveredAfter int64 `json:"envelopes_delivered_to_b_after_revocation"`
	// B's fetches that started after the revocation was accepted, and how
	// the server answered them (all refused).
	FetchesAfter int64            `json:"b_fetches_after_revocation"`
	FetchAnswers map[string]int64 `json:"b_fetch_answers_after_revocation"`
	LoginRefused int              `json:"b_logins_refused_after_revocation"`

	// Revocation: the time from sending the revoke link to its acceptance.
	RevokeMs []float64 `json:"revoke_ms"`
	// Sync: the time from the acceptance to the end of C's first sync
	// that lists B as revoked (C syncs back to back), and C's syncs that
	// started after the acceptance but still listed B as active.
	SyncMs     []float64 `json:"sync_visible_ms"`
	StaleSyncs int64     `json:"stale_syncs"`
	Syncs      int64     `json:"syncs"`

	CPU      CPU      `json:"cpu"`
	ErrorLog []string `json:"error_log,omitempty"`
}

// Zero reports whether nothing reached B after its revocation.
func (r *RevokeResult) Zero() bool { return r.AcceptedAfter == 0 && r.DeliveredAfter == 0 }

type revokeRound struct {
	acct       *account
	a, b, c    *device
	tokA, tokB string
	tokC       string
	revoke     []byte // A's revoke_device link for B, signed ahead
}

type sender struct {
	acct *account
	dev  *device
	tok  string
}

func (r *run) runRevoke(ctx context.Context) (*RevokeResult, error) {
	first := r.apis[0]
	last := r.apis[len(r.apis)-1]
	res := &RevokeResult{Rounds: r.opt.Rounds, Senders: r.opt.Senders, Instances: len(r.apis), FetchAnswers: map[string]int64{}}
	var cnt counters
	p := startProgress(r.stderr, r.tty, "revoke/setup", "accounts", &cnt)
	senders := make([]*sender, r.opt.Senders)
	err := parallel(ctx, len(senders), &cnt.done, func(ctx context.Context, i int) error {
		a, d, tok, err := signedIn(ctx, first, r.name(fmt.Sprintf("s%d", i)), "sender", r.recovery)
		senders[i] = &sender{acct: a, dev: d, tok: tok}
		return err
	})
	if err != nil {
		p.finish()
		return nil, err
	}
	rounds := make([]*revokeRound, r.opt.Rounds)
	err = parallel(ctx, len(rounds), &cnt.done, func(ctx context.Context, i int) error {
		rd, err := r.setupRound(ctx, first, i)
		rounds[i] = rd
		return err
	})
	p.finish()
	if err != nil {
		return nil, err
	}

	var elog errorLog
	m := &cpuMeter{servers: r.serverPIDs(), postgres: r.postgres}
	m.begin()
	cnt = counters{}
	p = startProgress(r.stderr, r.tty, "revoke", "sends", &cnt)
	for _, rd := range rounds {
		if err := r.revokeRound(ctx, rd, senders, first, last, res, &cnt, &elog); err != nil {
			p.finish()
			return nil, err
		}
	}
	res.CPU = m.end()
	p.finish()
	res.SendsPS = float64(res.Sends) / res.CPU.Wall
	res.ErrorLog = elog.list()
	return res, nil
}

// setupRound creates the round's account: A first, then B and C enrolled
// with A's approval; tokens for all three; A's revocation of B, signed.
func (r *run) setupRound(ctx context.Context, c *endpoint, i int) (*revokeRound, error) {
	rd := &revokeRound{}
	var err error
	if rd.acct, rd.a, rd.tokA, err = signedIn(ctx, c, r.name(fmt.Sprintf("r%d", i)), "A", r.recovery); err != nil {
		return nil, err
	}
	if rd.b, err = newDevice("B"); err != nil {
		return nil, err
	}
	if rd.c, err = newDevice("C"); err != nil {
		return nil, err
	}
	for _, d := range []*device{rd.b, rd.c} {
		en, err := prepareAdd(rd.acct, d, rd.a)
		if err != nil {
			return nil, err
		}
		en.token = rd.tokA
		if err := enroll(ctx, c, en); err != nil {
			return nil, err
		}
	}
	if rd.tokB, err = login(ctx, c, rd.acct, rd.b); err != nil {
		return nil, err
	}
	if rd.tokC, err = login(ctx, c, rd.acct, rd.c); err != nil {
		return nil, err
	}
	d, err := chain.NewDraft(rd.acct.st, time.Now(), &chain.RevokeDevice{ID: rd.b.rec.ID, Reason: chain.ReasonLost})
	if err != nil {
		return nil, err
	}
	if err := d.SignDevice(rd.a.rec.ID, rd.a.key); err != nil {
		return nil, err
	}
	l, err := d.Link()
	if err != nil {
		return nil, err
	}
	rd.revoke = encode(&api.LinkRequest{Link: l.Bytes()})
	return rd, nil
}

// Phases of a round: traffic before the revocation and after it.
const (
	defaultRevokeWarm = 700 * time.Millisecond
	defaultRevokeTail = time.Second
)

func (r *run) revokeRound(parent context.Context, rd *revokeRound, senders []*sender, first, last *endpoint, res *RevokeResult, cnt *counters, elog *errorLog) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	var (
		sent     atomic.Int64 // UnixNano when the revocation was sent; 0 before
		accepted atomic.Int64 // UnixNano of its acceptance; 0 before
	)
	// inFlight: t is after the revocation was sent (it may have committed).
	inFlight := func(t time.Time) bool {
		s := sent.Load()
		return s != 0 && t.UnixNano() > s
	}
	after := func(t time.Time) bool {
		a := accepted.Load()
		return a != 0 && t.UnixNano() > a
	}
	bID := rd.b.id()
	// One message form per sender, as a device sends it (message.go).
	sendBodies := make([][]byte, len(senders))
	for i, s := range senders {
		form, err := messageForm(s.acct, s.dev, rd.acct.st, []*device{rd.b, rd.c})
		if err != nil {
			return err
		}
		sendBodies[i] = encode(&api.SendMessage{Message: form})
	}

	var (
		wg                                       sync.WaitGroup
		sends, accB, accAfter, deliv, delivAfter atomic.Int64
		fetchesAfter                             atomic.Int64
		amu                                      sync.Mutex
		answers                                  = map[string]int64{}
		syncs, stale                             atomic.Int64
		visible                                  atomic.Int64 // UnixNano of the end of the first sync listing B revoked
	)
	for i, s := range senders {
		c := r.apis[i%len(r.apis)]
		repeatAs(ctx, &wg, c, api.MediaCBOR, "POST", "/v1/messages", s.tok, sendBodies[i], func(t0 time.Time, status int, resp []byte, err error) {
			if err != nil || status != 202 {
				cnt.errors.Add(1)
				elog.add("send: " + describe(status, resp, err))
				return
			}
			var out api.SendResult
			if err := api.UnmarshalCBOR(resp, &out); err != nil {
				cnt.errors.Add(1)
				elog.add("send: the answer: " + err.Error())
				return
			}
			if slices.Contains(out.Accepted, bID) {
				accB.Add(1)
				if after(t0) {
					accAfter.Add(1)
				}
			}
			sends.Add(1)
			cnt.done.Add(1)
		})
	}
	// B fetches and acknowledges back to back.
	var ackBuf bytes.Buffer
	repeat(ctx, &wg, last, "GET", "/v1/messages?limit=1000", rd.tokB, nil, func(t0 time.Time, status int, resp []byte, err error) {
		late := after(t0)
		if late {
			fetchesAfter.Add(1)
		}
		if err != nil {
			elog.add("fetch: " + describe(status, resp, err))
			return
		}
		if status != 200 {
			switch {
			case late:
				amu.Lock()
				answers[describe(status, resp, nil)]++
				amu.Unlock()
			case !inFlight(t0):
				elog.add("fetch before the revocation: " + describe(status, resp, nil))
			}
			return
		}
		if late {
			amu.Lock()
			answers["200 ok"]++
			amu.Unlock()
		}
		var out api.Envelopes
		json.Unmarshal(resp, &out)
		n := int64(len(out.Envelopes))
		deliv.Add(n)
		if late {
			delivAfter.Add(n)
		}
		if n > 0 {
			ids := make([]string, n)
			for i, e := range out.Envelopes {
				ids[i] = e.ID
			}
			last.raw(ctx, "POST", "/v1/messages/ack", rd.tokB, encode(&api.AckRequest{IDs: ids}), &ackBuf)
		}
	})
	// C syncs its device list back to back, as far as the head it knows.
	path := fmt.Sprintf("/v1/accounts/%s/devices?after=%d", rd.acct.id, rd.acct.st.Head().Seq)
	repeat(ctx, &wg, last, "GET", path, rd.tokC, nil, func(t0 time.Time, status int, resp []byte, err error) {
		if err != nil || status != 200 {
			elog.add("sync: " + describe(status, resp, err))
			return
		}
		syncs.Add(1)
		var out api.DeviceList
		json.Unmarshal(resp, &out)
		revoked := false
		for _, d := range out.Devices {
			if d.DeviceID == bID && d.State == "revoked" {
				revoked = true
			}
		}
		switch {
		case revoked:
			visible.CompareAndSwap(0, time.Now().UnixNano())
		case after(t0):
			stale.Add(1)
		}
	})

	// A revokes B in the middle of the traffic.
	warm, tail := r.opt.RevokeWarm, r.opt.RevokeTail
	if warm <= 0 {
		warm = defaultRevokeWarm
	}
	if tail <= 0 {
		tail = defaultRevokeTail
	}
	select {
	case <-time.After(warm):
	case <-ctx.Done():
		return ctx.Err()
	}
	var buf bytes.Buffer
	t0 := time.Now()
	sent.Store(t0.UnixNano())
	status, err := first.rawCBOR(ctx, "POST", "/v1/accounts/"+rd.acct.id+"/links", rd.tokA, rd.revoke, &buf)
	t1 := time.Now()
	if err != nil || status != 201 {
		cancel()
		wg.Wait()
		return fmt.Errorf("revoking B: %s", describe(status, buf.Bytes(), err))
	}
	accepted.Store(t1.UnixNano())
	select {
	case <-time.After(tail):
	case <-ctx.Done():
	}
	cancel()
	wg.Wait()

	// B can no longer log in.
	lctx, lcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer lcancel()
	if _, err := login(lctx, last, rd.acct, rd.b); err != nil {
		res.LoginRefused++
	}

	res.Sends += sends.Load()
	res.AcceptedForB += accB.Load() - accAfter.Load()
	res.AcceptedAfter += accAfter.Load()
	res.DeliveredToB += deliv.Load() - delivAfter.Load()
	res.DeliveredAfter += delivAfter.Load()
	res.FetchesAfter += fetchesAfter.Load()
	for k, v := range answers {
		res.FetchAnswers[k] += v
	}
	res.RevokeMs = append(res.RevokeMs, ms(t1.Sub(t0)))
	if v := visible.Load(); v != 0 {
		res.SyncMs = append(res.SyncMs, max(0, ms(time.Duration(v-t1.UnixNano()))))
	} else {
		elog.add("no sync listed B as revoked within the round")
	}
	res.Syncs += syncs.Load()
	res.StaleSyncs += stale.Load()
	return parent.Err()
}

// repeat makes one request back to back in a goroutine of wg until ctx
// ends, handing f each answer and when its request was sent; an answer
// that comes after the end is dropped.
func repeat(ctx context.Context, wg *sync.WaitGroup, c *endpoint, method, path, token string, body []byte, f func(t0 time.Time, status int, resp []byte, err error)) {
	repeatAs(ctx, wg, c, api.MediaJSON, method, path, token, body, f)
}

// repeatAs is repeat with a body of the given media type (a CBOR body
// asks for a CBOR answer).
func repeatAs(ctx context.Context, wg *sync.WaitGroup, c *endpoint, media, method, path, token string, body []byte, f func(t0 time.Time, status int, resp []byte, err error)) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		var buf bytes.Buffer
		for ctx.Err() == nil {
			t0 := time.Now()
			status, err := c.send(ctx, method, path, token, media, body, &buf)
			if ctx.Err() != nil {
				return
			}
			f(t0, status, buf.Bytes(), err)
		}
	}()
}
