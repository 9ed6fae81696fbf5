package command

import (
	"bytes"
	"encoding/hex"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strconv"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/command/store"
	"github.com/enigm/enigm/envelope"
)

// handleSend queues a message for the devices that are active at their
// account's current verified head, and only for those: a message form
// (application/cbor, handleSendMessage) or, from older clients, one
// ciphertext per device (JSON, handleSendEnvelopes).
func (s *Server) handleSend(w http.ResponseWriter, r *http.Request) *apiError {
	if api.MediaType(r.Header.Get("Content-Type")) == api.MediaCBOR {
		return s.handleSendMessage(w, r)
	}
	return s.handleSendEnvelopes(w, r)
}

// handleSendMessage takes one message form, splits it into each device's
// envelope (envelope.Split: no key, no signature check — the devices
// verify the one signature) and queues them like handleSendEnvelopes. It
// refuses the whole message, queueing nothing, when the form is
// malformed, names another sender, names a head that is not on its
// account's chain, or names an account or device no chain here has; an
// entry for a device that is in its chain but no longer active (revoked
// after the sender looked) is rejected and the others are queued.
func (s *Server) handleSendMessage(w http.ResponseWriter, r *http.Request) *apiError {
	a, req, e := authedBody[api.SendMessage](w, r, s.authDevice)
	if e != nil {
		return e
	}
	dels, err := envelope.Split(req.Message)
	if err != nil {
		return errorf(http.StatusBadRequest, api.CodeMalformedMessage, "%v (nothing of the message was queued)", err)
	}
	// The shared header, as every device will read it (Split checked it).
	p, err := envelope.Parse(dels[0].Bytes)
	if err != nil {
		return errorf(http.StatusBadRequest, api.CodeMalformedMessage, "%v (nothing of the message was queued)", err)
	}
	// The accounts in the header's order (sorted), so that a refusal names
	// the same one every time.
	accts := slices.SortedFunc(maps.Keys(p.Heads), func(x, y chain.AccountID) int { return bytes.Compare(x[:], y[:]) })
	if hex.EncodeToString(p.FromAccount[:]) != a.account || p.FromDevice != a.device {
		return errorf(http.StatusForbidden, api.CodeSenderMismatch, "the message names device %s of account %x as its sender, not the device that sends it (%s)",
			p.FromDevice, p.FromAccount[:], a.device)
	}
	now := s.now()
	res, e := s.queue(r, "message_form", func() (*batch, *apiError) {
		b := &batch{heads: make(map[string]uint64, len(p.Heads)), envs: make([]store.Envelope, 0, len(dels))}
		states := make(map[chain.AccountID]*verified, len(p.Heads))
		for _, acct := range accts {
			h, id := p.Heads[acct], hex.EncodeToString(acct[:])
			v, err := s.load(r.Context(), id)
			if errors.Is(err, store.ErrNotFound) {
				return nil, errorf(http.StatusUnprocessableEntity, api.CodeUnknownRecipient, "the message names account %s, which this server does not hold", id)
			}
			if err != nil {
				return nil, storeErr(err)
			}
			if e := onChain(v, api.ChainQuery{After: int64(h.Seq), Hash: h.Hash.String()}); e != nil {
				return nil, e
			}
			states[acct], b.heads[id] = v, v.account.Head.Seq
		}
		for i, d := range dels {
			v := states[d.Account] // Split took every entry's account from the header's heads
			if _, ok := v.state.Device(d.Device); !ok {
				return nil, errorf(http.StatusUnprocessableEntity, api.CodeUnknownRecipient, "entry %d names device %s, which is not in the chain of account %s: seal to the devices of a verified chain",
					i, d.Device, v.account.ID)
			}
			b.decide(v, d.Device.String(), store.Envelope{AccountID: v.account.ID, DeviceID: d.Device.String(), FromAccount: a.account, FromDevice: a.device.String(),
				Kind: p.Kind.String(), CallID: p.CallID, SentAt: now, Ciphertext: d.Bytes})
		}
		return b, nil
	})
	if e != nil {
		return e
	}
	respond(w, r, http.StatusAccepted, api.SendResult{Accepted: res.accepted, Rejected: res.rejected})
	return nil
}

// handleSendEnvelopes takes one ciphertext per device (the JSON body of
// older clients) and queues those for active devices.
func (s *Server) handleSendEnvelopes(w http.ResponseWriter, r *http.Request) *apiError {
	a, req, e := authedBody[api.SendRequest](w, r, s.authDevice)
	if e != nil {
		return e
	}
	now := s.now()
	res, e := s.queue(r, "envelopes", func() (*batch, *apiError) {
		b := &batch{heads: map[string]uint64{}}
		states := map[string]*verified{}
		for _, env := range req.Envelopes {
			v, ok := states[env.AccountID]
			if !ok {
				var err error
				v, err = s.load(r.Context(), env.AccountID)
				if errors.Is(err, store.ErrNotFound) {
					v = nil
				} else if err != nil {
					return nil, storeErr(err)
				}
				states[env.AccountID] = v
				if v != nil {
					b.heads[env.AccountID] = v.account.Head.Seq
				}
			}
			if v == nil {
				b.rejected = append(b.rejected, api.Rejected{DeviceID: env.DeviceID, Reason: "unknown_account"})
				continue
			}
			b.decide(v, env.DeviceID, store.Envelope{AccountID: env.AccountID, DeviceID: env.DeviceID, FromAccount: a.account, FromDevice: a.device.String(),
				Kind: req.Kind, CallID: req.CallID, SentAt: now, Ciphertext: env.Ciphertext})
		}
		return b, nil
	})
	if e != nil {
		return e
	}
	writeJSON(w, http.StatusAccepted, api.SendResult{Accepted: res.accepted, Rejected: res.rejected})
	return nil
}

// batch is what one attempt of a send decided: the heads it read and the
// envelopes it queues, with the devices accepted and rejected.
type batch struct {
	heads    map[string]uint64
	envs     []store.Envelope
	accepted []string
	rejected []api.Rejected
}

// decide queues env for device dev if dev is active at v's head, and
// rejects it as not_active otherwise.
func (b *batch) decide(v *verified, dev string, env store.Envelope) {
	id, _ := deviceID("", dev) // checked by Validate or Split
	if !v.state.IsActive(id) {
		b.rejected = append(b.rejected, api.Rejected{DeviceID: dev, Reason: "not_active"})
		return
	}
	b.accepted = append(b.accepted, dev)
	b.envs = append(b.envs, env)
}

// queue runs attempt and stores the envelopes it decided on, only if no
// head it read moved meanwhile: eligibility is decided at each account's
// verified head, and a revocation that commits first makes the store
// fail, so attempt runs again. body labels the send in the metrics.
func (s *Server) queue(r *http.Request, body string, attempt func() (*batch, *apiError)) (*batch, *apiError) {
	for try := 0; ; try++ {
		b, e := attempt()
		if e != nil {
			return nil, e
		}
		if len(b.envs) > 0 {
			err := s.store.PutEnvelopes(r.Context(), b.heads, b.envs)
			if errors.Is(err, store.ErrConflict) && try < 4 {
				continue
			}
			if err != nil {
				return nil, storeErr(err)
			}
		}
		s.metrics.envelopesAccepted.Add(uint64(len(b.envs)))
		s.metrics.envelopesRejected.Add(uint64(len(b.rejected)))
		s.metrics.sends.inc(body)
		if b.accepted == nil {
			b.accepted = []string{}
		}
		if b.rejected == nil {
			b.rejected = []api.Rejected{}
		}
		return b, nil
	}
}

// handleFetch hands a device its own queued envelopes while it is active.
func (s *Server) handleFetch(w http.ResponseWriter, r *http.Request) *apiError {
	a, e := s.authDevice(r)
	if e != nil {
		return e
	}
	limit, e := queryInt(r, "limit", 100, 1, 1000)
	if e != nil {
		return e
	}
	envs, err := s.store.Envelopes(r.Context(), a.account, a.device.String(), int(limit))
	if err != nil {
		return storeErr(err)
	}
	out := make([]api.Envelope, 0, len(envs))
	for _, e := range envs {
		out = append(out, api.Envelope{ID: strconv.FormatInt(e.ID, 10), FromAccount: e.FromAccount, FromDevice: e.FromDevice, Kind: e.Kind,
			CallID: e.CallID, SentAt: api.Seconds(e.SentAt), Ciphertext: e.Ciphertext})
	}
	s.metrics.envelopesFetched.Add(uint64(len(out)))
	writeJSON(w, http.StatusOK, api.Envelopes{Envelopes: out})
	return nil
}

func (s *Server) handleAck(w http.ResponseWriter, r *http.Request) *apiError {
	a, req, e := authedBody[api.AckRequest](w, r, s.authDevice)
	if e != nil {
		return e
	}
	ids := make([]int64, 0, len(req.IDs))
	for _, s := range req.IDs {
		id, _ := strconv.ParseInt(s, 10, 64) // checked by Validate
		ids = append(ids, id)
	}
	n, err := s.store.AckEnvelopes(r.Context(), a.account, a.device.String(), ids)
	if err != nil {
		return storeErr(err)
	}
	writeJSON(w, http.StatusOK, api.AckResult{Deleted: int64(n)})
	return nil
}
