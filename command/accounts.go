package command

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/command/store"
)

// ValidName reports whether s is a valid account name: 1–64 of [a-z0-9._-].
func ValidName(s string) bool { return api.ValidName(s) }

func (s *Server) handleName(w http.ResponseWriter, r *http.Request) *apiError {
	name := r.PathValue("name")
	if !ValidName(name) {
		return badRequest("an account name is 1-64 of [a-z0-9._-]")
	}
	a, err := s.store.AccountByName(r.Context(), name)
	if err != nil {
		return missingAs(err, notFound("no account named %q", name))
	}
	writeJSON(w, http.StatusOK, api.Name{AccountID: a.ID})
	return nil
}

// invite looks up an invite by code and checks it can still be used.
func (s *Server) invite(r *http.Request, code string) (store.Invite, store.Org, *apiError) {
	if !api.ValidInviteCode(code) {
		return store.Invite{}, store.Org{}, badRequest("malformed invite code")
	}
	inv, err := s.store.Invite(r.Context(), secretHash([]byte(code)))
	if err != nil {
		return inv, store.Org{}, missingAs(err, notFound("unknown invite code"))
	}
	if !inv.UsedAt.IsZero() {
		return inv, store.Org{}, expired("the invite was used already")
	}
	if !s.now().Before(inv.ExpiresAt) {
		return inv, store.Org{}, expired("the invite expired at %s", rfc3339(inv.ExpiresAt))
	}
	o, err := s.store.Org(r.Context(), inv.OrgID)
	if err != nil {
		return inv, o, storeErr(err)
	}
	return inv, o, nil
}

func orgPolicy(o store.Org) (Policy, error) {
	var p Policy
	err := json.Unmarshal([]byte(o.Policy), &p)
	return p, err
}

func (s *Server) handleInvite(w http.ResponseWriter, r *http.Request) *apiError {
	inv, o, e := s.invite(r, r.PathValue("code"))
	if e != nil {
		return e
	}
	p, err := orgPolicy(o)
	if err != nil {
		return internal(err)
	}
	writeJSON(w, http.StatusOK, api.Invite{OrgID: o.ID, OrgName: o.Name, AccountName: inv.AccountName, AdminKey: o.AdminKey, Policy: p})
	return nil
}

func (s *Server) handleCreateAccount(w http.ResponseWriter, r *http.Request) *apiError {
	var req api.CreateAccount
	if e := decode(w, r, &req); e != nil {
		return e
	}
	l, e := parseLink("genesis", req.Genesis)
	if e != nil {
		return e
	}
	if l.Type() != chain.TypeGenesis {
		return badRequest("genesis is a %s link", l.Type())
	}
	if e := s.limit(r, "account", s.cfg.RateLimits.AccountPerAddr, Rate{}); e != nil {
		return e
	}
	g := l.Body().(*chain.Genesis)
	if g.Policy.RecoveryDelay < s.cfg.MinRecoveryDelay {
		return policyRejected("recovery delay %v is below this server's minimum %v", g.Policy.RecoveryDelay, s.cfg.MinRecoveryDelay)
	}
	now := s.now()
	var (
		orgID   string
		invHash []byte
		orgKey  string
	)
	if req.Invite == "" {
		if g.Org != nil {
			return policyRejected("a genesis naming an organisation needs that organisation's invite")
		}
	} else {
		inv, o, e := s.invite(r, req.Invite)
		if e != nil {
			return e
		}
		if inv.AccountName != req.Name {
			return forbidden("the invite is for the account name %q", inv.AccountName)
		}
		p, err := orgPolicy(o)
		if err != nil {
			return internal(err)
		}
		switch {
		case g.Org == nil:
			return policyRejected("the genesis names no organisation; an invited account is managed by %q", o.Name)
		case g.Org.ID != o.ID:
			return policyRejected("the genesis names organisation %q, the invite is from %q", g.Org.ID, o.ID)
		case !equalBytes(g.Org.AdminKey.Bytes(), o.AdminKey):
			return policyRejected("the genesis names another admin key than organisation %q's", o.ID)
		case g.Policy != p.ChainPolicy():
			return policyRejected("the genesis policy differs from organisation %q's policy", o.ID)
		}
		orgID, invHash, orgKey = o.ID, inv.CodeHash, o.AdminKeyID
		// The invite code is the credential that lets Command counter-sign
		// this genesis with the organisation key.
		err = s.keys.withSigner(r.Context(), orgKey, "invite", func(k chain.Signer) error {
			var err error
			l, err = l.Cosign(chain.RoleOrg, k)
			return err
		})
		if err != nil {
			return s.keyErr(err)
		}
	}
	st, err := chain.Apply(nil, l, now, append(s.verifyOpts(), s.maxAge(), s.maxSkew())...)
	if err != nil {
		return chainRejected(err)
	}
	id := st.Account().String()
	head := store.Head{Seq: 0, Hash: st.Head().Hash.String()}
	first := g.Device.ID.String()
	audit := []store.AuditEntry{{Time: now, Actor: "anonymous", Action: "account.create", OrgID: orgID, AccountID: id, DeviceID: first,
		Detail: "account " + req.Name + " created with device " + first}}
	t := s.heads.begin()
	err = s.store.CreateAccount(r.Context(), store.NewAccount{
		Account:    store.Account{ID: id, Name: req.Name, OrgID: orgID, Head: head, CreatedAt: now},
		Genesis:    store.Link{Seq: 0, Hash: head.Hash, Type: l.Type().String(), Data: l.Bytes(), CreatedAt: now},
		InviteHash: invHash,
	}, audit...)
	switch {
	case errors.Is(err, store.ErrNameTaken):
		return errorf(http.StatusConflict, "name_taken", "the account name %q is taken", req.Name)
	case errors.Is(err, store.ErrExists):
		return errorf(http.StatusConflict, "conflict", "account %s exists already", id)
	case errors.Is(err, store.ErrChanged):
		return expired("the invite was used already")
	case err != nil:
		return storeErr(err)
	}
	s.count(audit)
	s.metrics.linksAppended.inc("genesis")
	v := &verified{account: store.Account{ID: id, Name: req.Name, OrgID: orgID, Head: head, CreatedAt: now}, state: st, hashes: []chain.Hash{l.Hash()}}
	v.see(t)
	s.cache.put(id, v)
	respond(w, r, http.StatusCreated, api.AccountCreated{AccountID: id, Head: headOf(head)})
	return nil
}

// account loads the verified state of the account in the path, at the
// head read from the database.
func (s *Server) account(r *http.Request) (*verified, *apiError) {
	return s.accountFrom(r, s.load)
}

// accountFresh is account for requests that may use a cached head known
// fresh from the database's announcements (loadFresh).
func (s *Server) accountFresh(r *http.Request) (*verified, *apiError) {
	return s.accountFrom(r, s.loadFresh)
}

func (s *Server) accountFrom(r *http.Request, load func(context.Context, string) (*verified, error)) (*verified, *apiError) {
	id := r.PathValue("id")
	if _, e := accountID("account id", id); e != nil {
		return nil, e
	}
	v, err := load(r.Context(), id)
	if err != nil {
		return nil, missingAs(err, notFound("no account %s", id))
	}
	return v, nil
}

// chainView is the body of the chain and devices endpoints: an
// api.Chain of links (read by storedLinks), or an api.DeviceList with
// devices.
func chainView(v *verified, links [][]byte, withDevices bool) any {
	c := api.Chain{AccountID: v.account.ID, Head: headOf(v.account.Head), Links: links}
	if !withDevices {
		return c
	}
	devs := []api.Device{}
	for _, d := range v.state.Devices() {
		devs = append(devs, api.DeviceOf(d))
	}
	return api.DeviceList{Chain: c, Devices: devs}
}

func (s *Server) handleChain(w http.ResponseWriter, r *http.Request) *apiError {
	return s.serveChain(w, r, false)
}

func (s *Server) handleDevices(w http.ResponseWriter, r *http.Request) *apiError {
	return s.serveChain(w, r, true)
}

// serveChain answers from the verified state and the links read again
// from the store: the state cache keeps no links (cache.go).
func (s *Server) serveChain(w http.ResponseWriter, r *http.Request, devices bool) *apiError {
	q, e := chainQuery(r)
	if e != nil {
		return e
	}
	v, e := s.accountFresh(r)
	if e != nil {
		return e
	}
	if q.Hash != "" {
		if e := onChain(v, q); e != nil {
			return e
		}
	}
	return s.writeChain(w, r, v, q.After, devices)
}

// chainQuery reads the after and hash parameters (api.ChainQuery).
func chainQuery(r *http.Request) (api.ChainQuery, *apiError) {
	after, e := queryInt(r, "after", -1, -1, chain.MaxSeq)
	if e != nil {
		return api.ChainQuery{}, e
	}
	q := api.ChainQuery{After: after, Hash: r.URL.Query().Get("hash")}
	if err := q.Validate(); err != nil {
		return q, badRequest("%v", err)
	}
	return q, nil
}

// onChain answers 409 not_on_chain, with the server's head, unless the
// link at seq q.After of v has hash q.Hash: a caller that verified that
// head is told plainly that this chain does not extend it.
func onChain(v *verified, q api.ChainQuery) *apiError {
	head := v.account.Head
	notOn := func(format string, args ...any) *apiError {
		e := conflict(head, format, args...)
		e.code = api.CodeNotOnChain
		return e
	}
	if uint64(q.After) > head.Seq {
		return notOn("the chain of account %s ends at seq %d, before the head seq %d you verified", v.account.ID, head.Seq, q.After)
	}
	if q.After >= int64(len(v.hashes)) {
		return internal(fmt.Errorf("the verified state of account %s records %d link hashes, its head is seq %d", v.account.ID, len(v.hashes), head.Seq))
	}
	hash := v.hashes[q.After].String() // recorded when verified: no read, no parse
	if hash != q.Hash {
		return notOn("the link at seq %d of account %s is not the one you verified (hash %s)", q.After, v.account.ID, q.Hash)
	}
	return nil
}

// writeChain writes v's links with seq > after (all when after is
// negative), with its devices when devices is set. Whole chains are
// encoded once per head while they stay in the response cache.
func (s *Server) writeChain(w http.ResponseWriter, r *http.Request, v *verified, after int64, devices bool) *apiError {
	k := respKey{id: v.account.ID, devices: devices}
	if after < 0 {
		if b := s.resp.get(k, v.account.Head); b != nil {
			writeBody(w, b)
			return nil
		}
	}
	links, err := s.storedLinks(r.Context(), v, after)
	if err != nil {
		return storeErr(err)
	}
	if after >= 0 {
		writeJSON(w, http.StatusOK, chainView(v, links, devices))
		return nil
	}
	b, err := json.Marshal(chainView(v, links, devices))
	if err != nil {
		return internal(err)
	}
	b = append(b, '\n')
	s.resp.put(k, v.account.Head, b)
	writeBody(w, b)
	return nil
}

func writeBody(w http.ResponseWriter, b []byte) {
	h := w.Header()
	h.Set("Content-Type", api.MediaJSON)
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// appendLink verifies l against the account's current verified state and
// appends it with the side changes a. It returns the new state.
func (s *Server) appendLink(r *http.Request, v *verified, l *chain.Link, a store.Append, opts ...chain.Option) (*chain.State, *apiError) {
	head := v.account.Head
	if l.Seq() != head.Seq+1 || l.Prev().String() != head.Hash {
		return nil, conflict(head, "the link follows seq %d, the head is seq %d", l.Seq()-1, head.Seq)
	}
	st, err := chain.Apply(v.state, l, s.now(), append(s.verifyOpts(), append(opts, s.maxSkew())...)...)
	if err != nil {
		return nil, chainRejected(err)
	}
	now := s.now()
	a.AccountID = v.account.ID
	a.Link = store.Link{Seq: l.Seq(), Hash: l.Hash().String(), Prev: l.Prev().String(), Type: l.Type().String(), Data: l.Bytes(), CreatedAt: now}
	for i := range a.Audit {
		a.Audit[i].OrgID = v.account.OrgID
		a.Audit[i].AccountID = v.account.ID
		if a.Audit[i].Time.IsZero() {
			a.Audit[i].Time = now
		}
	}
	t := s.heads.begin()
	err = s.store.Append(r.Context(), a)
	switch {
	case errors.Is(err, store.ErrConflict):
		cur, err2 := s.store.Account(r.Context(), v.account.ID)
		if err2 != nil {
			cur = v.account
		}
		return nil, conflict(cur.Head, "the chain head moved while the link was appended; rebuild it on the new head")
	case errors.Is(err, store.ErrChanged):
		return nil, errorf(http.StatusConflict, "conflict", "the request changed while the link was appended; read it again")
	case err != nil:
		return nil, storeErr(err)
	}
	s.count(a.Audit)
	s.metrics.linksAppended.inc(l.Type().String())
	acct := v.account
	acct.Head = store.Head{Seq: l.Seq(), Hash: l.Hash().String()}
	nv := &verified{account: acct, state: st, hashes: append(v.hashes[:len(v.hashes):len(v.hashes)], l.Hash())}
	nv.see(t) // this instance wrote the head: current unless announced otherwise
	// The mark is raised before the append is acknowledged: from the
	// response on, this instance refuses any lower head.
	if err := s.accept(r.Context(), nv, &v.account.Head); err != nil {
		return nil, internal(fmt.Errorf("the link was stored but not acknowledged: %w", err))
	}
	return st, nil
}

// maxAge is the option of the appends that bound the age of a link (all
// but the organisation's review of a held recover link, checked when it
// was held, and recovery requests, held to MaxLinkSkew).
func (s *Server) maxAge() chain.Option { return chain.WithMaxAge(s.cfg.MaxLinkAge) }

// maxSkew is the option of every append: no link is accepted dated more
// than MaxLinkSkew after this server's clock, so that no accepted link
// keeps a revocation or a veto out (docs/design/chain.md §3.1).
func (s *Server) maxSkew() chain.Option { return chain.WithMaxSkew(s.cfg.MaxLinkSkew) }

// verifyOpts are the options of every verification: the attestation
// verifier, when configured.
func (s *Server) verifyOpts() []chain.Option {
	if s.cfg.AttestationVerifier == nil {
		return nil
	}
	return []chain.Option{chain.WithAttestationVerifier(s.cfg.AttestationVerifier)}
}
