package command

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/command/store"
	"github.com/enigm/enigm/hybrid"
)

// AuthContext is the signing context of the token challenge signature.
const AuthContext = "enigm/v1/auth/token"

// AuthMessage returns what a device signs to obtain a token:
// "enigm-auth-token-v1" || account id || device id || challenge.
func AuthMessage(account chain.AccountID, device chain.DeviceID, challenge []byte) []byte {
	m := make([]byte, 0, 19+32+16+32)
	m = append(m, "enigm-auth-token-v1"...)
	m = append(m, account[:]...)
	m = append(m, device[:]...)
	return append(m, challenge...)
}

func secretHash(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:]
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// Token prefixes tell device tokens from admin tokens at a glance (and in
// a secret scanner); the server looks each up in its own table.
const (
	deviceTokenPrefix = "edt_"
	adminTokenPrefix  = "eat_"
)

func newToken(prefix string) string {
	return prefix + base64.RawURLEncoding.EncodeToString(randomBytes(32))
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	const p = "Bearer "
	if len(h) <= len(p) || !strings.EqualFold(h[:len(p)], p) || len(h) > 256 {
		return "", false
	}
	return strings.TrimSpace(h[len(p):]), true
}

type deviceAuth struct {
	account string
	device  chain.DeviceID
	v       *verified
}

func (a *deviceAuth) actor() string { return "device:" + a.account + "/" + a.device.String() }

// authDevice checks the bearer token and that its device is active at the
// account's current verified head.
func (s *Server) authDevice(r *http.Request) (*deviceAuth, *apiError) {
	tok, ok := bearer(r)
	if !ok || !strings.HasPrefix(tok, deviceTokenPrefix) {
		return nil, unauthorized("a device token is required (Authorization: Bearer …; POST /v1/auth/token)")
	}
	t, acct, err := s.store.TokenAccount(r.Context(), secretHash([]byte(tok)))
	if errors.Is(err, store.ErrNotFound) {
		return nil, unauthorized("unknown or expired token")
	}
	if err != nil {
		return nil, storeErr(err)
	}
	if !s.now().Before(t.ExpiresAt) {
		return nil, unauthorized("token expired; obtain a new one")
	}
	dev, e := deviceID("token device", t.DeviceID)
	if e != nil {
		return nil, internal(e)
	}
	// The head read with the token: eligibility is decided at the
	// database's head, never a cached one.
	s.metrics.headReads[headFromDatabase].Add(1)
	v, err := s.loadAt(r.Context(), acct)
	if err != nil {
		return nil, storeErr(err)
	}
	if !v.state.IsActive(dev) {
		return nil, errorf(http.StatusForbidden, "device_revoked", "device %s is not active in account %s", dev, t.AccountID)
	}
	return &deviceAuth{account: t.AccountID, device: dev, v: v}, nil
}

// authAdmin checks an admin token and returns its organisation.
func (s *Server) authAdmin(r *http.Request) (store.Org, *apiError) {
	tok, ok := bearer(r)
	if !ok || !strings.HasPrefix(tok, adminTokenPrefix) {
		return store.Org{}, unauthorized("an admin token is required (Authorization: Bearer …, from enigm-command org create)")
	}
	o, err := s.store.OrgByTokenHash(r.Context(), secretHash([]byte(tok)))
	if errors.Is(err, store.ErrNotFound) {
		return store.Org{}, unauthorized("unknown admin token")
	}
	if err != nil {
		return store.Org{}, storeErr(err)
	}
	return o, nil
}

type challengeRequest struct {
	AccountID string `json:"account_id"`
	DeviceID  string `json:"device_id"`
}

func (q *challengeRequest) flat() []flatField {
	return []flatField{{"account_id", &q.AccountID}, {"device_id", &q.DeviceID}}
}

func (s *Server) handleChallenge(w http.ResponseWriter, r *http.Request) *apiError {
	var req challengeRequest
	if e := decode(w, r, &req); e != nil {
		return e
	}
	if _, e := accountID("account_id", req.AccountID); e != nil {
		return e
	}
	dev, e := deviceID("device_id", req.DeviceID)
	if e != nil {
		return e
	}
	if e := s.limit(r, "auth", s.cfg.RateLimits.AuthPerAddr, s.cfg.RateLimits.AuthPerAccount, req.AccountID); e != nil {
		return e
	}
	v, err := s.load(r.Context(), req.AccountID)
	if err != nil {
		return storeErr(err)
	}
	rec, ok := v.state.Device(dev)
	if !ok {
		return notFound("device %s is not in account %s", dev, req.AccountID)
	}
	if rec.Status != chain.StatusActive {
		return errorf(http.StatusForbidden, "device_revoked", "device %s is %s", dev, rec.Status)
	}
	c := randomBytes(32)
	exp := s.now().Add(ChallengeTTL)
	if err := s.store.PutChallenge(r.Context(), store.Secret{Hash: secretHash(c), AccountID: req.AccountID, DeviceID: req.DeviceID, ExpiresAt: exp}); err != nil {
		return storeErr(err)
	}
	writeJSON(w, http.StatusOK, map[string]string{"challenge": b64enc(c), "expires_at": rfc3339(exp)})
	return nil
}

type tokenRequest struct {
	AccountID string `json:"account_id"`
	DeviceID  string `json:"device_id"`
	Challenge string `json:"challenge"`
	Signature string `json:"signature"`
}

func (q *tokenRequest) flat() []flatField {
	return []flatField{{"account_id", &q.AccountID}, {"device_id", &q.DeviceID}, {"challenge", &q.Challenge}, {"signature", &q.Signature}}
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) *apiError {
	var req tokenRequest
	if e := decode(w, r, &req); e != nil {
		return e
	}
	acct, e := accountID("account_id", req.AccountID)
	if e != nil {
		return e
	}
	dev, e := deviceID("device_id", req.DeviceID)
	if e != nil {
		return e
	}
	c, e := b64dec("challenge", req.Challenge, 32)
	if e != nil {
		return e
	}
	sigb, e := b64dec("signature", req.Signature, hybrid.SignatureSize)
	if e != nil {
		return e
	}
	if e := s.limit(r, "auth", s.cfg.RateLimits.AuthPerAddr, s.cfg.RateLimits.AuthPerAccount, req.AccountID); e != nil {
		return e
	}
	// The challenge is taken (deleted) first: single use, whatever follows.
	ch, err := s.store.TakeChallenge(r.Context(), secretHash(c))
	if errors.Is(err, store.ErrNotFound) {
		return unauthorized("unknown or already used challenge")
	}
	if err != nil {
		return storeErr(err)
	}
	if ch.AccountID != req.AccountID || ch.DeviceID != req.DeviceID {
		return unauthorized("the challenge was issued to another device")
	}
	if !s.now().Before(ch.ExpiresAt) {
		return unauthorized("challenge expired; request a new one")
	}
	v, err := s.load(r.Context(), req.AccountID)
	if err != nil {
		return storeErr(err)
	}
	rec, ok := v.state.Device(dev)
	if !ok {
		return unauthorized("device %s is not in the account", dev)
	}
	if rec.Status != chain.StatusActive {
		return errorf(http.StatusForbidden, "device_revoked", "device %s is %s", dev, rec.Status)
	}
	sig, err := hybrid.ParseSignature(sigb)
	if err != nil {
		return unauthorized("bad challenge signature: %v", err)
	}
	if err := hybrid.Verify(rec.Identity, AuthContext, AuthMessage(acct, dev, c), sig); err != nil {
		return unauthorized("bad challenge signature")
	}
	tok := newToken(deviceTokenPrefix)
	exp := s.now().Add(s.cfg.TokenTTL)
	if err := s.store.PutToken(r.Context(), store.Secret{Hash: secretHash([]byte(tok)), AccountID: req.AccountID, DeviceID: req.DeviceID, ExpiresAt: exp}); err != nil {
		return storeErr(err)
	}
	writeJSON(w, http.StatusOK, map[string]string{"token": tok, "expires_at": rfc3339(exp)})
	return nil
}
