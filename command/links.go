package command

import (
	"errors"
	"net/http"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/command/store"
)

// handleAppendLink appends a device-signed revoke_device, rotate_keys,
// recovery_veto or rotate_recovery link.
func (s *Server) handleAppendLink(w http.ResponseWriter, r *http.Request) *apiError {
	a, e := s.authOwnAccount(r, "a device appends to its own account only")
	if e != nil {
		return e
	}
	l, e := decodeLink(w, r)
	if e != nil {
		return e
	}
	switch l.Body().(type) {
	case *chain.RotateKeys, *chain.RotateRecovery:
		if e := s.limitKey("link-device", a.account+"|"+a.device.String(), s.cfg.RateLimits.LinkPerDevice); e != nil {
			return e
		}
	}
	ap := store.Append{}
	actor := a.actor()
	switch b := l.Body().(type) {
	case *chain.RevokeDevice:
		id := b.ID.String()
		// The revocation deletes the device's queue and tokens in its own
		// transaction: nothing queued for it is delivered afterwards.
		ap.DropEnvelopes, ap.DropTokens = []string{id}, []string{id}
		ap.Audit = []store.AuditEntry{{Actor: actor, Action: "device.revoke", DeviceID: id, Detail: "device " + id + " revoked (link signed by the account)"}}
	case *chain.RotateKeys:
		ap.Audit = []store.AuditEntry{{Actor: actor, Action: "device.rotate_keys", DeviceID: b.ID.String(), Detail: "keys of device " + b.ID.String() + " rotated"}}
	case *chain.RecoveryVeto:
		rec, e := s.openRecovery(r, b.Request.String(), a.account)
		if e != nil {
			return e
		}
		if rec != nil {
			rec.State, rec.Reason = store.RecoveryVetoed, "vetoed by device "+a.device.String()
			ap.Recovery = rec
		}
		ap.Audit = []store.AuditEntry{{Actor: actor, Action: "recovery.veto", DeviceID: a.device.String(), Detail: "recovery " + b.Request.String() + " vetoed"}}
	case *chain.RotateRecovery:
		ap.Audit = []store.AuditEntry{{Actor: actor, Action: "account.rotate_recovery", DeviceID: a.device.String(), Detail: "recovery key rotated"}}
		if p, ok := a.v.state.PendingRecovery(); ok {
			rec, e := s.openRecovery(r, p.Request.String(), a.account)
			if e != nil {
				return e
			}
			if rec != nil {
				rec.State, rec.Reason = store.RecoveryVetoed, "cancelled by a recovery key rotation"
				ap.Recovery = rec
				ap.Audit = append(ap.Audit, store.AuditEntry{Actor: actor, Action: "recovery.cancel", Detail: "recovery " + rec.ID + " cancelled by the rotation"})
			}
		}
	default:
		return badRequest("%s links are not appended here (enrollment, recovery and account endpoints take them)", l.Type())
	}
	st, e := s.appendLink(r, a.v, l, ap, s.maxAge())
	if e != nil {
		return e
	}
	respond(w, r, http.StatusCreated, api.HeadResponse{Head: api.HeadOf(st.Head())})
	return nil
}

// openRecovery returns the stored recovery of account if it is still open
// (waiting or pending review), nil if it is unknown or closed.
func (s *Server) openRecovery(r *http.Request, id, account string) (*store.Recovery, *apiError) {
	rec, err := s.store.Recovery(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, storeErr(err)
	}
	if rec.AccountID != account || (rec.State != store.RecoveryWaiting && rec.State != store.RecoveryPendingReview) {
		return nil, nil
	}
	return &rec, nil
}
