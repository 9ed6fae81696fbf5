package command

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/command/store"
	"github.com/enigm/enigm/hybrid"
)

// handleRecoveryRequest appends a recovery_request link (signed by the
// recovery key and the new device) and opens the recovery.
func (s *Server) handleRecoveryRequest(w http.ResponseWriter, r *http.Request) *apiError {
	l, e := decodeLink(w, r)
	if e != nil {
		return e
	}
	id := r.PathValue("id")
	if _, e := accountID("account id", id); e != nil {
		return e
	}
	b, ok := l.Body().(*chain.RecoveryRequest)
	if !ok {
		return badRequest("the link is a %s link, not recovery_request", l.Type())
	}
	if e := s.limit(r, "recovery", s.cfg.RateLimits.RecoveryPerAddr, s.cfg.RateLimits.RecoveryGlobal); e != nil {
		return e
	}
	v, e := s.account(r)
	if e != nil {
		return e
	}
	// The waiting period counts from when this server accepted the
	// request, never from the time the link claims; and the link may not
	// claim a time more than MaxLinkSkew from this server's clock in
	// either direction (appendLink bounds the future, the age option the
	// past), so a backdated request cannot shorten the waiting period as
	// devices verifying the chain measure it either.
	// In whole seconds, like link times and the API's times: the waiting
	// period ends at the time the API shows.
	accepted := s.now().Truncate(time.Second)
	delay := v.state.Policy().RecoveryDelay
	rec := store.Recovery{
		ID: l.Hash().String(), AccountID: id, DeviceID: b.Device.ID.String(), State: store.RecoveryWaiting,
		RequestedAt: accepted, NotBefore: accepted.Add(delay),
	}
	ap := store.Append{NewRecovery: &rec, Audit: []store.AuditEntry{{Time: accepted, Actor: "recovery-key", Action: "recovery.request", DeviceID: rec.DeviceID,
		Detail: fmt.Sprintf("recovery %s requested for new device %s (%s); waiting period %v, not before %s", rec.ID, rec.DeviceID, b.Device.Name, delay, rfc3339(rec.NotBefore))}}}
	if _, e := s.appendLink(r, v, l, ap, chain.WithMaxAge(s.cfg.MaxLinkSkew)); e != nil {
		return e
	}
	respond(w, r, http.StatusCreated, recoveryOf(rec, s.now()))
	return nil
}

// recovery loads the recovery named in the path.
func (s *Server) recovery(r *http.Request) (store.Recovery, *apiError) {
	rid := r.PathValue("rid")
	if _, e := hexID("recovery id", rid, chain.HashSize); e != nil {
		return store.Recovery{}, e
	}
	rec, err := s.store.Recovery(r.Context(), rid)
	if err != nil {
		return rec, missingAs(err, notFound("no recovery %s", rid))
	}
	return rec, nil
}

func (s *Server) handleGetRecovery(w http.ResponseWriter, r *http.Request) *apiError {
	rec, e := s.recovery(r)
	if e != nil {
		return e
	}
	respond(w, r, http.StatusOK, recoveryOf(rec, s.now()))
	return nil
}

// handleRecoveryComplete appends the recover link, or keeps it for the
// organisation's review when the policy requires one.
func (s *Server) handleRecoveryComplete(w http.ResponseWriter, r *http.Request) *apiError {
	l, e := decodeLink(w, r)
	if e != nil {
		return e
	}
	b, ok := l.Body().(*chain.Recover)
	if !ok {
		return badRequest("the link is a %s link, not recover", l.Type())
	}
	rec, e := s.recovery(r)
	if e != nil {
		return e
	}
	if b.Request.String() != rec.ID || l.Account().String() != rec.AccountID {
		return badRequest("the link completes another recovery (or account) than %s", rec.ID)
	}
	if e := s.limit(r, "recovery", s.cfg.RateLimits.RecoveryPerAddr, s.cfg.RateLimits.RecoveryGlobal); e != nil {
		return e
	}
	v, err := s.load(r.Context(), rec.AccountID)
	if err != nil {
		return storeErr(err)
	}
	head := v.account.Head
	switch rec.State {
	case store.RecoveryDenied:
		return forbidden("recovery %s was denied by the organisation: %s", rec.ID, rec.Reason)
	case store.RecoveryPendingReview:
		return conflict(head, "recovery %s is awaiting the organisation's review", rec.ID)
	case store.RecoveryWaiting:
	default:
		// vetoed or completed: the chain says why.
		_, err := chain.Apply(v.state, l, s.now(), s.verifyOpts()...)
		if err == nil {
			err = fmt.Errorf("%w: recovery %s is %s", chain.ErrRecoveryVetoed, rec.ID, rec.State)
		}
		return chainRejected(err)
	}
	if nb := s.notBefore(v, rec); s.now().Before(nb) {
		return errorf(http.StatusConflict, "too_early", "the waiting period of recovery %s ends at %s", rec.ID, rfc3339(nb))
	}
	if e := s.holdUntilWitnessed(r, v, rec); e != nil {
		return e
	}
	done := rec
	done.State = store.RecoveryCompleted
	st := v.state
	if st.Managed() && st.Policy().RequireAdminReview {
		return s.holdForReview(w, r, v, l, rec)
	}
	ap := store.Append{Recovery: &done, Audit: []store.AuditEntry{{Actor: "device:" + rec.AccountID + "/" + rec.DeviceID, Action: "recovery.complete", DeviceID: rec.DeviceID,
		Detail: fmt.Sprintf("recovery %s completed: device %s added", rec.ID, rec.DeviceID)}}}
	ns, e := s.appendLink(r, v, l, ap, s.maxAge())
	if e != nil {
		return e
	}
	respond(w, r, http.StatusCreated, api.HeadResponse{Head: api.HeadOf(ns.Head())})
	return nil
}

// notBefore is when the waiting period of rec ends, counted from when
// this server accepted the request (RequestedAt), by the longer of the
// delay recorded then and the account's current policy, as the chain
// measures it on link times.
func (s *Server) notBefore(v *verified, rec store.Recovery) time.Time {
	nb := rec.NotBefore
	if p := rec.RequestedAt.Add(v.state.Policy().RecoveryDelay); p.After(nb) {
		nb = p
	}
	return nb
}

// holdForReview checks everything the recover link must satisfy except
// the organisation's counter-signature, and keeps it for the admin.
func (s *Server) holdForReview(w http.ResponseWriter, r *http.Request, v *verified, l *chain.Link, rec store.Recovery) *apiError {
	head := v.account.Head
	if l.Seq() != head.Seq+1 || l.Prev().String() != head.Hash {
		return conflict(head, "the link follows seq %d, the head is seq %d", l.Seq()-1, head.Seq)
	}
	p, ok := v.state.PendingRecovery()
	if !ok || p.Request.String() != rec.ID {
		return chainRejected(fmt.Errorf("%w: recovery %s is not pending in the chain", chain.ErrNoPendingRecovery, rec.ID))
	}
	if age := s.now().Sub(l.Time()); age > s.cfg.MaxLinkAge {
		return chainRejected(fmt.Errorf("%w: link time %s", chain.ErrStale, rfc3339(l.Time())))
	}
	if ahead := l.Time().Sub(s.now()); ahead > s.cfg.MaxLinkSkew {
		return chainRejected(fmt.Errorf("%w: link time %s is %v after this server's clock (at most %v; check the device's clock)", chain.ErrFutureTimestamp, rfc3339(l.Time()), ahead, s.cfg.MaxLinkSkew))
	}
	if l.Time().Before(v.state.Time()) {
		return chainRejected(fmt.Errorf("%w: link time %s is before the head's %s", chain.ErrTimeRegression, rfc3339(l.Time()), rfc3339(v.state.Time())))
	}
	if l.Time().Sub(p.Time) < max(p.Delay, v.state.Policy().RecoveryDelay) {
		return chainRejected(fmt.Errorf("%w: the link is dated before the waiting period ends", chain.ErrRecoveryTooEarly))
	}
	var subject *chain.Signature
	for _, sg := range l.Signatures() {
		switch sg.Role {
		case chain.RoleSubject:
			if subject != nil {
				return chainRejected(fmt.Errorf("%w: two subject signatures", chain.ErrUnexpectedSignature))
			}
			sg := sg
			subject = &sg
		default:
			return chainRejected(fmt.Errorf("%w: a recover link awaiting review carries only the recovering device's signature, not %s", chain.ErrUnexpectedSignature, sg.Role))
		}
	}
	if subject == nil {
		return chainRejected(fmt.Errorf("%w: the recovering device's signature", chain.ErrMissingSignature))
	}
	hs, err := hybrid.ParseSignature(subject.Sig)
	if err == nil {
		err = hybrid.Verify(p.Device.Identity, chain.SigningContext(chain.TypeRecover, chain.RoleSubject), l.Payload(), hs)
	}
	if err != nil {
		return chainRejected(fmt.Errorf("%w: recovering device's signature: %v", chain.ErrBadSignature, err))
	}
	held := rec
	held.State, held.Link = store.RecoveryPendingReview, l.Bytes()
	audit := []store.AuditEntry{{Time: s.now(), Actor: "device:" + rec.AccountID + "/" + rec.DeviceID, Action: "recovery.review_requested", OrgID: v.account.OrgID,
		AccountID: rec.AccountID, DeviceID: rec.DeviceID, Detail: fmt.Sprintf("recovery %s awaits the organisation's review", rec.ID)}}
	err = s.store.UpdateRecovery(r.Context(), held, audit...)
	if errors.Is(err, store.ErrChanged) {
		return conflict(head, "recovery %s changed meanwhile; read it again", rec.ID)
	}
	if err != nil {
		return storeErr(err)
	}
	s.count(audit)
	respond(w, r, http.StatusAccepted, recoveryOf(held, s.now()))
	return nil
}
