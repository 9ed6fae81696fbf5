package command

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/command/store"
)

// handleSend accepts envelopes for the devices that are active at their
// account's current verified head, and only for those.
func (s *Server) handleSend(w http.ResponseWriter, r *http.Request) *apiError {
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
