package command

import (
	"encoding/hex"
	"errors"
	"net/http"
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
		return errorf(http.StatusBadRequest, api.CodeMalformedMessage, "%v", err)
	}
	// The shared header, as every device will read it (Split checked it).
	p, err := envelope.Parse(dels[0].Bytes)
	if err != nil {
		return errorf(http.StatusBadRequest, api.CodeMalformedMessage, "%v", err)
	}
	if hex.EncodeToString(p.FromAccount[:]) != a.account || p.FromDevice != a.device {
		return errorf(http.StatusForbidden, api.CodeSenderMismatch, "the message names device %s of account %x as its sender, not the device that sends it (%s)",
			p.FromDevice, p.FromAccount[:], a.device)
	}
	now := s.now()
	for attempt := 0; ; attempt++ {
		heads := make(map[string]uint64, len(p.Heads))
		states := make(map[chain.AccountID]*verified, len(p.Heads))
		for acct, h := range p.Heads {
			id := hex.EncodeToString(acct[:])
			v, err := s.load(r.Context(), id)
			if errors.Is(err, store.ErrNotFound) {
				return errorf(http.StatusUnprocessableEntity, api.CodeUnknownRecipient, "the message names account %s, which this server does not hold", id)
			}
			if err != nil {
				return storeErr(err)
			}
			if e := onChain(v, api.ChainQuery{After: int64(h.Seq), Hash: h.Hash.String()}); e != nil {
				return e
			}
			states[acct], heads[id] = v, v.account.Head.Seq
		}
		accepted := []string{}
		rej := []api.Rejected{}
		envs := make([]store.Envelope, 0, len(dels))
		for i, d := range dels {
			v := states[d.Account] // Split took every entry's account from the header's heads
			if _, ok := v.state.Device(d.Device); !ok {
				return errorf(http.StatusUnprocessableEntity, api.CodeUnknownRecipient, "entry %d names device %s, which is not in the chain of account %s: seal to the devices of a verified chain",
					i, d.Device, v.account.ID)
			}
			if !v.state.IsActive(d.Device) {
				rej = append(rej, api.Rejected{DeviceID: d.Device.String(), Reason: "not_active"})
				continue
			}
			accepted = append(accepted, d.Device.String())
			envs = append(envs, store.Envelope{AccountID: v.account.ID, DeviceID: d.Device.String(), FromAccount: a.account, FromDevice: a.device.String(),
				Kind: p.Kind.String(), CallID: p.CallID, SentAt: now, Ciphertext: d.Bytes})
		}
		if len(envs) > 0 {
			err := s.store.PutEnvelopes(r.Context(), heads, envs)
			if errors.Is(err, store.ErrConflict) && attempt < 4 {
				continue
			}
			if err != nil {
				return storeErr(err)
			}
		}
		s.metrics.envelopesAccepted.Add(uint64(len(envs)))
		s.metrics.envelopesRejected.Add(uint64(len(rej)))
		s.metrics.sends.inc("message_form")
		respond(w, r, http.StatusAccepted, api.SendResult{Accepted: accepted, Rejected: rej})
		return nil
	}
}

// handleSendEnvelopes takes one ciphertext per device (the JSON body of
// older clients) and queues those for active devices.
func (s *Server) handleSendEnvelopes(w http.ResponseWriter, r *http.Request) *apiError {
	a, req, e := authedBody[api.SendRequest](w, r, s.authDevice)
	if e != nil {
		return e
	}
	now := s.now()
	// Eligibility is decided at each account's verified head, and the
	// envelopes are stored only if no account moved meanwhile (a revocation
	// that commits first makes this store fail, and the check runs again).
	for attempt := 0; ; attempt++ {
		heads := map[string]uint64{}
		states := map[string]*verified{}
		var accepted []string
		rej := []api.Rejected{}
		var envs []store.Envelope
		for _, env := range req.Envelopes {
			v, ok := states[env.AccountID]
			if !ok {
				var err error
				v, err = s.load(r.Context(), env.AccountID)
				if errors.Is(err, store.ErrNotFound) {
					v = nil
				} else if err != nil {
					return storeErr(err)
				}
				states[env.AccountID] = v
				if v != nil {
					heads[env.AccountID] = v.account.Head.Seq
				}
			}
			if v == nil {
				rej = append(rej, api.Rejected{DeviceID: env.DeviceID, Reason: "unknown_account"})
				continue
			}
			dev, _ := deviceID("", env.DeviceID)
			if !v.state.IsActive(dev) {
				rej = append(rej, api.Rejected{DeviceID: env.DeviceID, Reason: "not_active"})
				continue
			}
			accepted = append(accepted, env.DeviceID)
			envs = append(envs, store.Envelope{AccountID: env.AccountID, DeviceID: env.DeviceID, FromAccount: a.account, FromDevice: a.device.String(),
				Kind: req.Kind, CallID: req.CallID, SentAt: now, Ciphertext: env.Ciphertext})
		}
		if len(envs) > 0 {
			err := s.store.PutEnvelopes(r.Context(), heads, envs)
			if errors.Is(err, store.ErrConflict) && attempt < 4 {
				continue
			}
			if err != nil {
				return storeErr(err)
			}
		}
		s.metrics.envelopesAccepted.Add(uint64(len(envs)))
		s.metrics.envelopesRejected.Add(uint64(len(rej)))
		s.metrics.sends.inc("envelopes")
		if accepted == nil {
			accepted = []string{}
		}
		writeJSON(w, http.StatusAccepted, api.SendResult{Accepted: accepted, Rejected: rej})
		return nil
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
