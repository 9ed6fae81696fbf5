package command

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/command/store"
)

var openEnrollment = []string{store.EnrollPending, store.EnrollDeviceApproved, store.EnrollApproved}

func isOpen(state string) bool {
	return state == store.EnrollPending || state == store.EnrollDeviceApproved || state == store.EnrollApproved
}

// effective returns e with its expiry applied: an open request past its
// expiry time is expired (and stored so, best effort; the janitor also
// sweeps).
func (s *Server) effective(ctx context.Context, e store.Enrollment, orgID string) store.Enrollment {
	if !isOpen(e.State) || s.now().Before(e.ExpiresAt) {
		return e
	}
	x := e
	x.State = store.EnrollExpired
	audit := []store.AuditEntry{{Time: s.now(), Actor: "system", Action: "enrollment.expire", OrgID: orgID, AccountID: e.AccountID, DeviceID: e.DeviceID,
		Detail: "request " + e.ID + " expired"}}
	if err := s.store.UpdateEnrollment(ctx, x, audit...); err == nil {
		s.count(audit)
		x.Version++
	}
	return x
}

func enrollType(s string) (chain.LinkType, bool) { return api.EnrollType(s) }

// enrollBody returns the request's device, nonce, pairing hash and (for
// replace_device) replaced device.
func enrollBody(b chain.Body) (dev chain.Device, nonce [chain.NonceSize]byte, pairing [chain.PairingHashSize]byte, old *chain.DeviceID) {
	switch v := b.(type) {
	case *chain.AddDevice:
		return v.Device, v.Nonce, v.PairingHash, nil
	case *chain.ReplaceDevice:
		return v.Device, v.Nonce, v.PairingHash, &v.Old
	}
	return
}

func (s *Server) handleEnroll(w http.ResponseWriter, r *http.Request) *apiError {
	var req api.EnrollRequest
	if e := decode(w, r, &req); e != nil {
		return e
	}
	t, _ := enrollType(req.Type)
	raw := req.Body
	body, err := chain.DecodeBody(t, raw)
	if err != nil {
		e := badRequest("body: %v", err)
		e.chain = chainErrorName(err)
		return e
	}
	id := r.PathValue("id")
	if _, e := accountID("account id", id); e != nil {
		return e
	}
	if e := s.limit(r, "enroll", s.cfg.RateLimits.EnrollPerAddr, s.cfg.RateLimits.EnrollGlobal); e != nil {
		return e
	}
	// A request only records the body; the completion's append is checked
	// against the database's head, so a cached head known fresh will do.
	v, e := s.accountFresh(r)
	if e != nil {
		return e
	}
	dev, nonce, _, old := enrollBody(body)
	st := v.state
	if rec, ok := st.Device(dev.ID); ok {
		if rec.Status == chain.StatusActive {
			return chainRejected(fmt.Errorf("%w: device %s", chain.ErrDeviceExists, dev.ID))
		}
		return chainRejected(fmt.Errorf("%w: device %s was %s", chain.ErrDeviceIDReused, dev.ID, rec.Status))
	}
	if old != nil && !st.IsActive(*old) {
		return chainRejected(fmt.Errorf("%w: the device to replace, %s, is not active", chain.ErrDeviceNotActive, old))
	}
	p := st.Policy()
	if p.MinLevel != "" && dev.Level.Rank() < p.MinLevel.Rank() {
		return policyRejected("device protection %q is below the account's minimum %q", dev.Level, p.MinLevel)
	}
	if p.RequireVerifiedAttestation {
		if s.cfg.AttestationVerifier == nil {
			return policyRejected("the account requires verified attestation, and this server has no attestation verifier")
		}
		if dev.Evidence == nil {
			return policyRejected("the account requires verified attestation, and device %s carries no evidence", dev.ID)
		}
		// Judge the evidence now, for a clear early answer; the link is
		// judged again when it is appended.
		in := chain.AttestationInput{Account: st.Account(), Type: t, Prev: st.Head().Hash, Nonce: nonce[:], Device: &dev}
		if err := s.cfg.AttestationVerifier.VerifyAttestation(in); err != nil {
			return policyRejected("device %s's attestation evidence is not accepted: %v", dev.ID, err)
		}
	}
	now := s.now()
	en := store.Enrollment{
		ID: hex.EncodeToString(randomBytes(16)), AccountID: id, Type: req.Type, State: store.EnrollPending, Body: raw,
		DeviceID: dev.ID.String(), DeviceName: dev.Name, Protection: string(dev.Level),
		CreatedAt: now, ExpiresAt: now.Add(s.cfg.EnrollmentTTL),
	}
	audit := []store.AuditEntry{{Time: now, Actor: "anonymous", Action: "enrollment.request", OrgID: v.account.OrgID, AccountID: id, DeviceID: en.DeviceID,
		Detail: fmt.Sprintf("%s request %s for device %s (%s, %s)", req.Type, en.ID, en.DeviceID, dev.Name, dev.Level)}}
	if err := s.store.CreateEnrollment(r.Context(), en, audit...); err != nil {
		return storeErr(err)
	}
	s.count(audit)
	respond(w, r, http.StatusCreated, enrollmentOf(en))
	return nil
}

func (s *Server) handleListEnrollments(w http.ResponseWriter, r *http.Request) *apiError {
	a, e := s.authOwnAccount(r, "a device lists its own account's enrollments only")
	if e != nil {
		return e
	}
	list, err := s.store.Enrollments(r.Context(), store.EnrollmentFilter{AccountID: a.account, States: openEnrollment})
	if err != nil {
		return storeErr(err)
	}
	out := []api.Enrollment{}
	for _, en := range list {
		if en = s.effective(r.Context(), en, a.v.account.OrgID); isOpen(en.State) {
			out = append(out, enrollmentOf(en))
		}
	}
	writeJSON(w, http.StatusOK, api.EnrollmentList{Enrollments: out})
	return nil
}

// enrollment loads the request named in the path, with expiry applied.
func (s *Server) enrollment(r *http.Request) (store.Enrollment, *apiError) {
	rid := r.PathValue("rid")
	if e := requestID("request id", rid); e != nil {
		return store.Enrollment{}, e
	}
	en, err := s.store.Enrollment(r.Context(), rid)
	if err != nil {
		return en, missingAs(err, notFound("no enrollment request %s", rid))
	}
	// The organisation of an account never changes: a cached state names
	// it as well as the database.
	var orgID string
	if c := s.cache.get(en.AccountID); c != nil {
		orgID = c.account.OrgID
	} else {
		acct, err := s.store.Account(r.Context(), en.AccountID)
		if err != nil {
			return en, storeErr(err)
		}
		orgID = acct.OrgID
	}
	return s.effective(r.Context(), en, orgID), nil
}

func (s *Server) handleGetEnrollment(w http.ResponseWriter, r *http.Request) *apiError {
	en, e := s.enrollment(r)
	if e != nil {
		return e
	}
	respond(w, r, http.StatusOK, enrollmentOf(en))
	return nil
}

// approval is the statement every approval of en signs, at head.
func approval(en store.Enrollment, head store.Head) (chain.Approval, chain.LinkType, chain.Body, error) {
	t, _ := enrollType(en.Type)
	body, err := chain.DecodeBody(t, en.Body)
	if err != nil {
		return chain.Approval{}, 0, nil, err
	}
	acct, err := hex.DecodeString(en.AccountID)
	if err != nil || len(acct) != chain.HashSize {
		return chain.Approval{}, 0, nil, fmt.Errorf("stored enrollment names account %q", en.AccountID)
	}
	hh, err := hex.DecodeString(head.Hash)
	if err != nil || len(hh) != chain.HashSize {
		return chain.Approval{}, 0, nil, fmt.Errorf("head hash %q", head.Hash)
	}
	_, nonce, pairing, _ := enrollBody(body)
	return chain.Approval{
		Account: chain.AccountID(acct), Head: chain.Head{Seq: head.Seq, Hash: chain.Hash(hh)},
		Nonce: nonce, PairingHash: pairing, Body: chain.BodyHash(en.Body),
	}, t, body, nil
}

// stateError reports a request that is not in the state an action needs.
func stateError(en store.Enrollment, head store.Head, action string) *apiError {
	switch en.State {
	case store.EnrollExpired:
		return expired("enrollment request %s expired at %s", en.ID, rfc3339(en.ExpiresAt))
	case store.EnrollDenied:
		return forbidden("enrollment request %s was denied: %s", en.ID, en.Reason)
	}
	return conflict(head, "enrollment request %s is %s; it cannot be %s", en.ID, en.State, action)
}

func (s *Server) handleApprove(w http.ResponseWriter, r *http.Request) *apiError {
	a, req, e := authedBody[api.ApproveRequest](w, r, s.authDevice)
	if e != nil {
		return e
	}
	sig := req.Signature
	en, e := s.enrollment(r)
	if e != nil {
		return e
	}
	if en.AccountID != a.account {
		return forbidden("the request is for another account")
	}
	head := a.v.account.Head
	if en.State != store.EnrollPending {
		return stateError(en, head, "approved by a device")
	}
	st, t, body, err := approval(en, head)
	if err != nil {
		return internal(err)
	}
	if _, _, _, old := enrollBody(body); old != nil && *old != a.device {
		return forbidden("a replace_device request is approved by the device it replaces (%s)", old)
	}
	if req.Head.Seq != head.Seq || req.Head.Hash != head.Hash {
		return conflict(head, "the approval is against head %d, the account's head is %d; approve again against the current head", req.Head.Seq, head.Seq)
	}
	rec, _ := a.v.state.Device(a.device)
	if err := chain.VerifyApproval(st, t, chain.RoleDevice, rec.Identity, sig); err != nil {
		return chainRejected(err)
	}
	p := a.v.state.Policy()
	en.State = store.EnrollApproved
	if a.v.state.Managed() && p.RequireAdminApproval {
		en.State = store.EnrollDeviceApproved
	}
	en.Head = &head
	en.Approvals = []store.Approval{{Role: "device", Signer: a.device.String(), Signature: sig}}
	audit := []store.AuditEntry{{Time: s.now(), Actor: a.actor(), Action: "enrollment.approve", OrgID: a.v.account.OrgID, AccountID: a.account, DeviceID: en.DeviceID,
		Detail: fmt.Sprintf("request %s approved by device %s at head %d; now %s", en.ID, a.device, head.Seq, en.State)}}
	return s.saveEnrollment(w, r, en, head, " (another approval won)", audit, respond)
}

// saveEnrollment stores a changed enrollment request with its audit
// entries, compare-and-swap on its version (a concurrent change is 409), and
// answers with the request through answer (respond for the device's
// approval, which may travel as CBOR; jsonAnswer for the admin's).
func (s *Server) saveEnrollment(w http.ResponseWriter, r *http.Request, en store.Enrollment, head store.Head, why string, audit []store.AuditEntry,
	answer func(http.ResponseWriter, *http.Request, int, any)) *apiError {
	err := s.store.UpdateEnrollment(r.Context(), en, audit...)
	if errors.Is(err, store.ErrChanged) {
		return conflict(head, "enrollment request %s changed meanwhile%s; read it again", en.ID, why)
	}
	if err != nil {
		return storeErr(err)
	}
	s.count(audit)
	en.Version++
	answer(w, r, http.StatusOK, enrollmentOf(en))
	return nil
}

// resetStale returns an approved request whose head moved back to pending:
// its approvals no longer verify and must be made again.
func (s *Server) resetStale(ctx context.Context, en store.Enrollment, orgID string, head store.Head) {
	was := en.Head
	en.State, en.Head, en.Approvals = store.EnrollPending, nil, nil
	detail := fmt.Sprintf("request %s returned to pending: the head moved from %d to %d since its approval", en.ID, was.Seq, head.Seq)
	audit := []store.AuditEntry{{Time: s.now(), Actor: "system", Action: "enrollment.reset", OrgID: orgID, AccountID: en.AccountID, DeviceID: en.DeviceID, Detail: detail}}
	if err := s.store.UpdateEnrollment(ctx, en, audit...); err == nil {
		s.count(audit)
	}
}

func (s *Server) handleComplete(w http.ResponseWriter, r *http.Request) *apiError {
	l, e := decodeLink(w, r)
	if e != nil {
		return e
	}
	en, e := s.enrollment(r)
	if e != nil {
		return e
	}
	// The append is compare-and-append in the database, so a cached head
	// known fresh will do; but the request is reset only on a head read
	// from the database.
	v, err := s.loadFresh(r.Context(), en.AccountID)
	if err == nil && en.Head != nil && *en.Head != v.account.Head {
		v, err = s.load(r.Context(), en.AccountID)
	}
	if err != nil {
		return storeErr(err)
	}
	head := v.account.Head
	if en.State != store.EnrollApproved {
		return stateError(en, head, "completed")
	}
	if l.Type().String() != en.Type || l.Account().String() != en.AccountID {
		return badRequest("the link is not a %s link of account %s", en.Type, en.AccountID)
	}
	if b, err := chain.EncodeBody(l.Body()); err != nil || !equalBytes(b, en.Body) {
		return badRequest("the link's body differs from the enrollment request's body")
	}
	if *en.Head != head {
		s.resetStale(r.Context(), en, v.account.OrgID, head)
		return conflict(head, "the chain head moved since the approval; the request is pending again and must be approved against the new head")
	}
	done := en
	done.State = store.EnrollCompleted
	dev, _, _, old := enrollBody(l.Body())
	detail := fmt.Sprintf("device %s (%s, %s) added by request %s", dev.ID, dev.Name, dev.Level, en.ID)
	if old != nil {
		detail = fmt.Sprintf("device %s (%s, %s) replaced device %s by request %s", dev.ID, dev.Name, dev.Level, old, en.ID)
	}
	ap := store.Append{Enrollment: &done, Audit: []store.AuditEntry{{Actor: "device:" + en.AccountID + "/" + en.DeviceID, Action: "enrollment.complete", DeviceID: en.DeviceID, Detail: detail}}}
	if old != nil {
		ap.DropEnvelopes, ap.DropTokens = []string{old.String()}, []string{old.String()}
	}
	st, e := s.appendLink(r, v, l, ap, s.maxAge())
	if e != nil {
		if e.code == "conflict" && e.head != nil && (e.head.Seq != head.Seq || e.head.Hash != head.Hash) {
			s.resetStale(r.Context(), en, v.account.OrgID, store.Head{Seq: e.head.Seq, Hash: e.head.Hash})
		}
		return e
	}
	respond(w, r, http.StatusCreated, api.HeadResponse{Head: api.HeadOf(st.Head())})
	return nil
}
