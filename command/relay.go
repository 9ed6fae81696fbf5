package command

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/enigm/enigm/command/store"
)

type envelopeIn struct {
	AccountID  string `json:"account_id"`
	DeviceID   string `json:"device_id"`
	Ciphertext string `json:"ciphertext"`
}

type sendRequest struct {
	Kind      string       `json:"kind"`
	CallID    string       `json:"call_id,omitempty"`
	Envelopes []envelopeIn `json:"envelopes"`
}

type rejected struct {
	DeviceID string `json:"device_id"`
	Reason   string `json:"reason"`
}

func callIDOK(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// handleSend accepts envelopes for the devices that are active at their
// account's current verified head, and only for those.
func (s *Server) handleSend(w http.ResponseWriter, r *http.Request) *apiError {
	a, e := s.authDevice(r)
	if e != nil {
		return e
	}
	var req sendRequest
	if e := decode(w, r, &req); e != nil {
		return e
	}
	switch req.Kind {
	case "message":
		if req.CallID != "" {
			return badRequest("call_id goes with kind call only")
		}
	case "call":
		if !callIDOK(req.CallID) {
			return badRequest("a call envelope needs call_id: 1-64 of [A-Za-z0-9_-]")
		}
	default:
		return badRequest(`kind must be "message" or "call"`)
	}
	if len(req.Envelopes) == 0 || len(req.Envelopes) > MaxEnvelopes {
		return badRequest("1-%d envelopes per request", MaxEnvelopes)
	}
	cts := make([][]byte, len(req.Envelopes))
	for i, env := range req.Envelopes {
		if _, e := accountID("envelopes[].account_id", env.AccountID); e != nil {
			return e
		}
		if _, e := deviceID("envelopes[].device_id", env.DeviceID); e != nil {
			return e
		}
		ct, e := b64dec("envelopes[].ciphertext", env.Ciphertext, MaxCiphertext)
		if e != nil {
			return e
		}
		cts[i] = ct
	}
	now := s.now()
	// Eligibility is decided at each account's verified head, and the
	// envelopes are stored only if no account moved meanwhile (a revocation
	// that commits first makes this store fail, and the check runs again).
	for attempt := 0; ; attempt++ {
		heads := map[string]uint64{}
		states := map[string]*verified{}
		var accepted []string
		rej := []rejected{}
		var envs []store.Envelope
		for i, env := range req.Envelopes {
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
				rej = append(rej, rejected{env.DeviceID, "unknown_account"})
				continue
			}
			dev, _ := deviceID("", env.DeviceID)
			if !v.state.IsActive(dev) {
				rej = append(rej, rejected{env.DeviceID, "not_active"})
				continue
			}
			accepted = append(accepted, env.DeviceID)
			envs = append(envs, store.Envelope{AccountID: env.AccountID, DeviceID: env.DeviceID, FromAccount: a.account, FromDevice: a.device.String(),
				Kind: req.Kind, CallID: req.CallID, SentAt: now, Ciphertext: cts[i]})
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
		writeJSON(w, http.StatusAccepted, map[string]any{"accepted": accepted, "rejected": rej})
		return nil
	}
}

type envelopeOut struct {
	ID          string `json:"id"`
	FromAccount string `json:"from_account"`
	FromDevice  string `json:"from_device"`
	Kind        string `json:"kind"`
	CallID      string `json:"call_id,omitempty"`
	SentAt      string `json:"sent_at"`
	Ciphertext  string `json:"ciphertext"`
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
	out := make([]envelopeOut, 0, len(envs))
	for _, e := range envs {
		out = append(out, envelopeOut{ID: strconv.FormatInt(e.ID, 10), FromAccount: e.FromAccount, FromDevice: e.FromDevice, Kind: e.Kind,
			CallID: e.CallID, SentAt: rfc3339(e.SentAt), Ciphertext: b64enc(e.Ciphertext)})
	}
	s.metrics.envelopesFetched.Add(uint64(len(out)))
	writeJSON(w, http.StatusOK, map[string]any{"envelopes": out})
	return nil
}

type ackRequest struct {
	IDs []string `json:"ids"`
}

func (s *Server) handleAck(w http.ResponseWriter, r *http.Request) *apiError {
	a, e := s.authDevice(r)
	if e != nil {
		return e
	}
	var req ackRequest
	if e := decode(w, r, &req); e != nil {
		return e
	}
	if len(req.IDs) > 1000 {
		return badRequest("at most 1000 ids per acknowledgement")
	}
	ids := make([]int64, 0, len(req.IDs))
	for _, s := range req.IDs {
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil || id <= 0 {
			return badRequest("envelope id %q is not one this server issued", s)
		}
		ids = append(ids, id)
	}
	n, err := s.store.AckEnvelopes(r.Context(), a.account, a.device.String(), ids)
	if err != nil {
		return storeErr(err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"deleted": n})
	return nil
}
