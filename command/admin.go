package command

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/command/store"
)

func adminActor(o store.Org) string { return "admin:" + o.ID }

// orgAccount loads an account of the admin's organisation.
func (s *Server) orgAccount(r *http.Request, o store.Org, id string) (*verified, *apiError) {
	if _, e := accountID("account id", id); e != nil {
		return nil, e
	}
	acct, err := s.store.Account(r.Context(), id)
	if err != nil {
		return nil, missingAs(err, notFound("no account %s", id))
	}
	if acct.OrgID != o.ID {
		return nil, forbidden("account %s is not managed by organisation %s", id, o.ID)
	}
	v, err := s.loadAt(r.Context(), acct)
	if err != nil {
		return nil, storeErr(err)
	}
	return v, nil
}

// orgSign runs fn with the organisation's key from Command's keystore.
// The verified admin request is the user authentication that allows it.
func (s *Server) orgSign(r *http.Request, o store.Org, v *verified, fn func(chain.Signer) error) *apiError {
	if org, ok := v.state.Org(); !ok || org.ID != o.ID || !equalBytes(org.AdminKey.Bytes(), o.AdminKey) {
		return forbidden("account %s does not name organisation %s's admin key", v.account.ID, o.ID)
	}
	if err := s.keys.withSigner(r.Context(), o.AdminKeyID, "admin_token", fn); err != nil {
		return s.keyErr(err)
	}
	return nil
}

func (s *Server) handleAdminAccounts(w http.ResponseWriter, r *http.Request) *apiError {
	o, e := s.authAdmin(r)
	if e != nil {
		return e
	}
	list, err := s.store.AccountsByOrg(r.Context(), o.ID)
	if err != nil {
		return storeErr(err)
	}
	out := []api.AccountSummary{}
	for _, a := range list {
		out = append(out, api.AccountSummary{AccountID: a.ID, Name: a.Name, Head: headOf(a.Head)})
	}
	writeJSON(w, http.StatusOK, api.AccountList{Accounts: out})
	return nil
}

func (s *Server) handleAdminDevices(w http.ResponseWriter, r *http.Request) *apiError {
	o, e := s.authAdmin(r)
	if e != nil {
		return e
	}
	after, e := queryInt(r, "after", -1, -1, chain.MaxSeq)
	if e != nil {
		return e
	}
	v, e := s.orgAccount(r, o, r.PathValue("id"))
	if e != nil {
		return e
	}
	return s.writeChain(w, r, v, after, true)
}

func (s *Server) handleAdminEnrollments(w http.ResponseWriter, r *http.Request) *apiError {
	o, e := s.authAdmin(r)
	if e != nil {
		return e
	}
	list, err := s.store.Enrollments(r.Context(), store.EnrollmentFilter{OrgID: o.ID, States: []string{store.EnrollDeviceApproved}})
	if err != nil {
		return storeErr(err)
	}
	out := []api.Enrollment{}
	for _, en := range list {
		if en = s.effective(r.Context(), en, o.ID); en.State == store.EnrollDeviceApproved {
			out = append(out, enrollmentOf(en))
		}
	}
	writeJSON(w, http.StatusOK, api.EnrollmentList{Enrollments: out})
	return nil
}

// adminEnrollment loads the request in the path, of the admin's
// organisation, with the account's verified state.
func (s *Server) adminEnrollment(r *http.Request, o store.Org) (store.Enrollment, *verified, *apiError) {
	en, e := s.enrollment(r)
	if e != nil {
		return en, nil, e
	}
	v, e := s.orgAccount(r, o, en.AccountID)
	return en, v, e
}

func (s *Server) handleAdminApprove(w http.ResponseWriter, r *http.Request) *apiError {
	o, e := s.authAdmin(r)
	if e != nil {
		return e
	}
	en, v, e := s.adminEnrollment(r, o)
	if e != nil {
		return e
	}
	head := v.account.Head
	if en.State != store.EnrollDeviceApproved {
		return stateError(en, head, "approved by the organisation")
	}
	if *en.Head != head {
		s.resetStale(r.Context(), en, o.ID, head)
		return conflict(head, "the chain head moved since the device approved; the request is pending again")
	}
	st, t, _, err := approval(en, head)
	if err != nil {
		return internal(err)
	}
	var sig chain.Signature
	if e := s.orgSign(r, o, v, func(k chain.Signer) error {
		var err error
		sig, err = chain.SignApproval(st, t, chain.RoleOrg, chain.DeviceID{}, k)
		return err
	}); e != nil {
		return e
	}
	en.State = store.EnrollApproved
	en.Approvals = append(en.Approvals, store.Approval{Role: "org", Signature: sig.Sig})
	audit := []store.AuditEntry{{Time: s.now(), Actor: adminActor(o), Action: "enrollment.admin_approve", OrgID: o.ID, AccountID: en.AccountID, DeviceID: en.DeviceID,
		Detail: fmt.Sprintf("request %s approved by the organisation at head %d", en.ID, head.Seq)}}
	return s.saveEnrollment(w, r, en, head, "", audit, jsonAnswer)
}

func (s *Server) handleAdminDeny(w http.ResponseWriter, r *http.Request) *apiError {
	o, req, e := authedBody[api.Reason](w, r, s.authAdmin)
	if e != nil {
		return e
	}
	en, v, e := s.adminEnrollment(r, o)
	if e != nil {
		return e
	}
	if !isOpen(en.State) {
		return stateError(en, v.account.Head, "denied")
	}
	en.State, en.Reason = store.EnrollDenied, req.Reason
	if en.Reason == "" {
		en.Reason = "denied by the organisation"
	}
	audit := []store.AuditEntry{{Time: s.now(), Actor: adminActor(o), Action: "enrollment.deny", OrgID: o.ID, AccountID: en.AccountID, DeviceID: en.DeviceID,
		Detail: fmt.Sprintf("request %s denied: %s", en.ID, en.Reason)}}
	return s.saveEnrollment(w, r, en, v.account.Head, "", audit, jsonAnswer)
}

// orgLink builds a link with body at the account's head, signed by the
// organisation key alone (revocation, policy). It is dated no earlier than
// the head, so that a server clock behind the last link's signer cannot
// make the chain's time regress.
func (s *Server) orgLink(r *http.Request, o store.Org, v *verified, body chain.Body) (*chain.Link, *apiError) {
	at := s.now()
	if ht := v.state.Time(); at.Before(ht) {
		at = ht
	}
	var l *chain.Link
	e := s.orgSign(r, o, v, func(k chain.Signer) error {
		d, err := chain.NewDraft(v.state, at, body)
		if err != nil {
			return err
		}
		if err := d.Sign(chain.RoleOrg, k); err != nil {
			return err
		}
		l, err = d.Link()
		return err
	})
	return l, e
}

// handleAdminRevoke builds and signs a revoke_device link with the
// organisation key, and appends it.
func (s *Server) handleAdminRevoke(w http.ResponseWriter, r *http.Request) *apiError {
	o, req, e := authedBody[api.RevokeRequest](w, r, s.authAdmin)
	if e != nil {
		return e
	}
	dev, _ := deviceID("device_id", req.DeviceID) // checked by Validate
	v, e := s.orgAccount(r, o, r.PathValue("id"))
	if e != nil {
		return e
	}
	if !v.state.IsActive(dev) {
		if _, ok := v.state.Device(dev); !ok {
			return notFound("device %s is not in account %s", dev, v.account.ID)
		}
		return chainRejected(fmt.Errorf("%w: device %s", chain.ErrDeviceNotActive, dev))
	}
	l, e := s.orgLink(r, o, v, &chain.RevokeDevice{ID: dev, Reason: chain.ReasonAdmin})
	if e != nil {
		return e
	}
	reason := req.Reason
	if reason == "" {
		reason = "revoked by the organisation"
	}
	ap := store.Append{DropEnvelopes: []string{dev.String()}, DropTokens: []string{dev.String()},
		Audit: []store.AuditEntry{{Actor: adminActor(o), Action: "device.admin_revoke", DeviceID: dev.String(), Detail: "device " + dev.String() + " revoked: " + reason}}}
	st, e := s.appendLink(r, v, l, ap, s.maxAge())
	if e != nil {
		return e
	}
	writeJSON(w, http.StatusCreated, api.HeadResponse{Head: api.HeadOf(st.Head())})
	return nil
}

func (s *Server) handleAdminRecoveries(w http.ResponseWriter, r *http.Request) *apiError {
	o, e := s.authAdmin(r)
	if e != nil {
		return e
	}
	list, err := s.store.Recoveries(r.Context(), store.RecoveryFilter{OrgID: o.ID})
	if err != nil {
		return storeErr(err)
	}
	out := []api.Recovery{}
	for _, rec := range list {
		out = append(out, recoveryOf(rec, s.now()))
	}
	writeJSON(w, http.StatusOK, api.RecoveryList{Recoveries: out})
	return nil
}

// handleAdminReview approves (counter-signs and appends the held recover
// link) or denies a recovery awaiting review.
func (s *Server) handleAdminReview(w http.ResponseWriter, r *http.Request) *apiError {
	o, req, e := authedBody[api.ReviewRequest](w, r, s.authAdmin)
	if e != nil {
		return e
	}
	rec, e := s.recovery(r)
	if e != nil {
		return e
	}
	v, e := s.orgAccount(r, o, rec.AccountID)
	if e != nil {
		return e
	}
	head := v.account.Head
	if rec.State != store.RecoveryPendingReview {
		return conflict(head, "recovery %s is %s, not awaiting review", rec.ID, recoveryOf(rec, s.now()).State)
	}
	if !*req.Approve {
		rec.State, rec.Reason, rec.Link = store.RecoveryDenied, req.Reason, nil
		if rec.Reason == "" {
			rec.Reason = "denied by the organisation"
		}
		audit := []store.AuditEntry{{Time: s.now(), Actor: adminActor(o), Action: "recovery.deny", OrgID: o.ID, AccountID: rec.AccountID, DeviceID: rec.DeviceID,
			Detail: fmt.Sprintf("recovery %s denied: %s", rec.ID, rec.Reason)}}
		err := s.store.UpdateRecovery(r.Context(), rec, audit...)
		if errors.Is(err, store.ErrChanged) {
			return conflict(head, "recovery %s changed meanwhile; read it again", rec.ID)
		}
		if err != nil {
			return storeErr(err)
		}
		s.count(audit)
		rec.Version++
		writeJSON(w, http.StatusOK, recoveryOf(rec, s.now()))
		return nil
	}
	held, err := chain.ParseLink(rec.Link)
	if err != nil {
		return internal(fmt.Errorf("held recover link of %s: %w", rec.ID, err))
	}
	if held.Seq() != head.Seq+1 || held.Prev().String() != head.Hash {
		// The chain moved since the device built the link: it must build
		// it again on the new head.
		back := rec
		back.State, back.Link = store.RecoveryWaiting, nil
		audit := []store.AuditEntry{{Time: s.now(), Actor: "system", Action: "recovery.reset", OrgID: o.ID, AccountID: rec.AccountID, DeviceID: rec.DeviceID,
			Detail: fmt.Sprintf("recovery %s: the held link no longer follows the head (%d); the device must complete it again", rec.ID, head.Seq)}}
		if err := s.store.UpdateRecovery(r.Context(), back, audit...); err == nil {
			s.count(audit)
		}
		return conflict(head, "the chain head moved since the recovering device built its link; it must complete the recovery again")
	}
	var l *chain.Link
	if e := s.orgSign(r, o, v, func(k chain.Signer) error {
		var err error
		l, err = held.Cosign(chain.RoleOrg, k)
		return err
	}); e != nil {
		return e
	}
	done := rec
	done.State, done.Link = store.RecoveryCompleted, nil
	if req.Reason != "" {
		done.Reason = req.Reason
	}
	ap := store.Append{Recovery: &done, Audit: []store.AuditEntry{{Actor: adminActor(o), Action: "recovery.approve", DeviceID: rec.DeviceID,
		Detail: fmt.Sprintf("recovery %s approved by the organisation: device %s added", rec.ID, rec.DeviceID)}}}
	// The held link was checked for age when the device sent it; the
	// review may come later than the append age bound.
	if _, e := s.appendLink(r, v, l, ap); e != nil {
		return e
	}
	done.Version++
	writeJSON(w, http.StatusOK, recoveryOf(done, s.now()))
	return nil
}

func (s *Server) handleAdminAudit(w http.ResponseWriter, r *http.Request) *apiError {
	o, e := s.authAdmin(r)
	if e != nil {
		return e
	}
	after, e := queryInt(r, "after", 0, 0, 1<<62)
	if e != nil {
		return e
	}
	limit, e := queryInt(r, "limit", 100, 1, 1000)
	if e != nil {
		return e
	}
	entries, err := s.store.Audit(r.Context(), store.AuditFilter{OrgID: o.ID, After: after, Limit: int(limit)})
	if err != nil {
		return storeErr(err)
	}
	out := make([]api.AuditEntry, 0, len(entries))
	for _, en := range entries {
		out = append(out, api.AuditEntry{ID: en.ID, Time: api.Seconds(en.Time), Actor: en.Actor, Action: en.Action, AccountID: en.AccountID, DeviceID: en.DeviceID, Detail: en.Detail})
	}
	writeJSON(w, http.StatusOK, api.AuditLog{Entries: out})
	return nil
}

// handleAdminPolicy changes a managed account's policy: Command builds a
// set_policy link, signs it with the organisation key and appends it. Only
// the organisation can change a managed account's policy; the chain checks
// the signature like any other.
func (s *Server) handleAdminPolicy(w http.ResponseWriter, r *http.Request) *apiError {
	// A partial update: the fields given change, the others keep the
	// policy of the head the new link builds on (the append fails with a
	// conflict if the head moved meanwhile).
	o, u, e := authedBody[api.PolicyUpdate](w, r, s.authAdmin)
	if e != nil {
		return e
	}
	v, e := s.orgAccount(r, o, r.PathValue("id"))
	if e != nil {
		return e
	}
	before := PolicyFromChain(v.state.Policy())
	p := u.Apply(before)
	if err := checkPolicy(p); err != nil {
		return badRequest("%v", err)
	}
	if time.Duration(p.RecoveryDelaySeconds)*time.Second < s.cfg.MinRecoveryDelay {
		return policyRejected("recovery delay %ds is below this server's minimum %v (set recovery_delay_seconds)", p.RecoveryDelaySeconds, s.cfg.MinRecoveryDelay)
	}
	if p.RequireVerifiedAttestation && s.cfg.AttestationVerifier == nil {
		return policyRejected("verified attestation cannot be required: this server has no attestation verifier")
	}
	l, e := s.orgLink(r, o, v, &chain.SetPolicy{Policy: p.ChainPolicy()})
	if e != nil {
		return e
	}
	ap := store.Append{Audit: []store.AuditEntry{{Actor: adminActor(o), Action: "account.set_policy",
		Detail: fmt.Sprintf("policy of %s changed from %+v to %+v", v.account.ID, before, p)}}}
	st, e := s.appendLink(r, v, l, ap, s.maxAge())
	if e != nil {
		return e
	}
	writeJSON(w, http.StatusCreated, api.PolicyChange{Head: api.HeadOf(st.Head()), Previous: before, Policy: PolicyFromChain(st.Policy())})
	return nil
}
