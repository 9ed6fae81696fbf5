package command

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/enigm/enigm/api"
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

// authOwnAccount is authDevice for a request on the account in the path,
// which must be the device's own; refusal is the message otherwise.
func (s *Server) authOwnAccount(r *http.Request, refusal string) (*deviceAuth, *apiError) {
	a, e := s.authDevice(r)
	if e != nil {
		return nil, e
	}
	if r.PathValue("id") != a.account {
		return nil, forbidden("%s", refusal)
	}
	return a, nil
}

// authDevice checks the bearer token and that its device is active at the
// account's current verified head.
func (s *Server) authDevice(r *http.Request) (*deviceAuth, *apiError) {
	tok, ok := bearer(r)
	if !ok || !strings.HasPrefix(tok, deviceTokenPrefix) {
		return nil, unauthorized("a device token is required (Authorization: Bearer …; POST /v1/auth/token)")
	}
	t, acct, err := s.store.TokenAccount(r.Context(), secretHash([]byte(tok)))
	if err != nil {
		return nil, missingAs(err, unauthorized("unknown or expired token"))
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
	if err != nil {
		return store.Org{}, missingAs(err, unauthorized("unknown admin token"))
	}
	return o, nil
}

// Challenges are stateless, so that issuing one stores nothing and costs
// nothing but a keyed hash: challenge = nonce (8 bytes) || expiry (8,
// Unix seconds, big-endian) || HMAC-SHA256(key, "enigm-auth-challenge-v1"
// || account || device || nonce || expiry)[:16]. The key is shared by the
// instances through the database's settings. A challenge is spent by the
// first token it yields (recorded until it expires, so that it yields no
// second one); a failed answer does not spend it.
const (
	challengeSize     = 32
	challengeMACLabel = "enigm-auth-challenge-v1"
	challengeKeyName  = "auth_challenge_key"
)

// loadChallengeKey reads (creating at first use) the challenge key.
func (s *Server) loadChallengeKey(ctx context.Context) error {
	v, err := s.store.Setting(ctx, challengeKeyName, hex.EncodeToString(randomBytes(32)))
	if err != nil {
		return err
	}
	k, err := hex.DecodeString(v)
	if err != nil || len(k) < 32 {
		return fmt.Errorf("the stored %s setting is not a 32-byte hex key", challengeKeyName)
	}
	s.challengeKey = k
	return nil
}

func (s *Server) challengeMAC(acct chain.AccountID, dev chain.DeviceID, nonceExp []byte) []byte {
	m := hmac.New(sha256.New, s.challengeKey)
	m.Write([]byte(challengeMACLabel))
	m.Write(acct[:])
	m.Write(dev[:])
	m.Write(nonceExp)
	return m.Sum(nil)[:challengeSize-16]
}

func (s *Server) newChallenge(acct chain.AccountID, dev chain.DeviceID, exp time.Time) []byte {
	c := randomBytes(8)
	c = binary.BigEndian.AppendUint64(c, uint64(exp.Unix()))
	return append(c, s.challengeMAC(acct, dev, c)...)
}

// checkChallenge checks that c was issued by this deployment for (acct,
// dev) and has not expired; it returns its expiry.
func (s *Server) checkChallenge(acct chain.AccountID, dev chain.DeviceID, c []byte) (time.Time, *apiError) {
	if !hmac.Equal(c[16:], s.challengeMAC(acct, dev, c[:16])) {
		return time.Time{}, unauthorized("unknown challenge, or one issued to another device; request a new one")
	}
	exp := time.Unix(int64(binary.BigEndian.Uint64(c[8:16])), 0)
	if !s.now().Before(exp) {
		return exp, unauthorized("challenge expired; request a new one")
	}
	return exp, nil
}

// provenKey names a device at the caller's address in the limiter's
// proven set.
func provenKey(r *http.Request, account string, dev chain.DeviceID) string {
	return account + "|" + dev.String() + "|" + addrKey(r)
}

// activeDevice loads the account's verified state and returns the record
// of its device dev, refusing a device that is not active (403
// device_revoked); a device the account does not have is refused with
// what unknown returns.
func (s *Server) activeDevice(r *http.Request, account string, dev chain.DeviceID, unknown func() *apiError) (chain.DeviceRecord, *apiError) {
	v, err := s.load(r.Context(), account)
	if err != nil {
		return chain.DeviceRecord{}, storeErr(err)
	}
	rec, ok := v.state.Device(dev)
	if !ok {
		return rec, unknown()
	}
	if rec.Status != chain.StatusActive {
		return rec, errorf(http.StatusForbidden, "device_revoked", "device %s is %s", dev, rec.Status)
	}
	return rec, nil
}

// handleChallenge issues a challenge. It is charged to the caller's
// address only: it stores nothing, and the state it reads is public.
func (s *Server) handleChallenge(w http.ResponseWriter, r *http.Request) *apiError {
	var req api.ChallengeRequest
	if e := decode(w, r, &req); e != nil {
		return e
	}
	acct, dev, e := accountDevice(req.AccountID, req.DeviceID)
	if e != nil {
		return e
	}
	if e := s.limit(r, "auth", s.cfg.RateLimits.AuthPerAddr, Rate{}); e != nil {
		return e
	}
	if _, e := s.activeDevice(r, req.AccountID, dev, func() *apiError {
		return notFound("device %s is not in account %s", dev, req.AccountID)
	}); e != nil {
		return e
	}
	exp := s.now().Add(ChallengeTTL)
	c := s.newChallenge(acct, dev, exp)
	writeJSON(w, http.StatusOK, api.Challenge{Challenge: c, ExpiresAt: api.Seconds(exp)})
	return nil
}

// handleToken exchanges a signed challenge for a token. What it costs
// whom, in order: the caller's address (every request); nothing more for
// a challenge this deployment did not issue to that device, or a device
// that is not active; then, before the signature is verified, the global
// verification budget — or, for a device that proved itself from this
// address before, that device's own budget (a bad signature from there
// ends that standing); after a valid signature, the device's own budget.
// No bucket of the account is touched: outsiders cannot lock its devices
// out.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) *apiError {
	var req api.TokenRequest
	if e := decode(w, r, &req); e != nil {
		return e
	}
	acct, dev, e := accountDevice(req.AccountID, req.DeviceID)
	if e != nil {
		return e
	}
	c, sigb := req.Challenge, req.Signature
	if e := s.limit(r, "auth", s.cfg.RateLimits.AuthPerAddr, Rate{}); e != nil {
		return e
	}
	if len(c) != challengeSize {
		return unauthorized("unknown challenge; request a new one")
	}
	exp, e := s.checkChallenge(acct, dev, c)
	if e != nil {
		return e
	}
	rec, e := s.activeDevice(r, req.AccountID, dev, func() *apiError {
		return unauthorized("device %s is not in the account", dev)
	})
	if e != nil {
		return e
	}
	pk := provenKey(r, req.AccountID, dev)
	proven := !s.cfg.RateLimits.Disabled && s.limiter.isProven(pk)
	if proven {
		e = s.limitKey("auth-device", req.AccountID+"|"+req.DeviceID, s.cfg.RateLimits.AuthPerDevice)
	} else {
		e = s.limitKey("auth-verify", "global", s.cfg.RateLimits.AuthVerify)
	}
	if e != nil {
		return e
	}
	sig, err := hybrid.ParseSignature(sigb)
	if err == nil {
		err = hybrid.Verify(rec.Identity, AuthContext, AuthMessage(acct, dev, c), sig)
	}
	if err != nil {
		if proven {
			s.limiter.setProven(pk, false)
		}
		return unauthorized("bad challenge signature")
	}
	// Spend the challenge: the first token wins, a replay finds it spent
	// (before the device's budget, which a replay must not reach).
	err = s.store.PutChallenge(r.Context(), store.Secret{Hash: secretHash(c), AccountID: req.AccountID, DeviceID: req.DeviceID, ExpiresAt: exp})
	if errors.Is(err, store.ErrExists) {
		return unauthorized("challenge already used; request a new one")
	}
	if err != nil {
		return storeErr(err)
	}
	if !proven {
		if e := s.limitKey("auth-device", req.AccountID+"|"+req.DeviceID, s.cfg.RateLimits.AuthPerDevice); e != nil {
			return e
		}
	}
	if !s.cfg.RateLimits.Disabled {
		s.limiter.setProven(pk, true)
	}
	tok := newToken(deviceTokenPrefix)
	texp := s.now().Add(s.cfg.TokenTTL)
	if err := s.store.PutToken(r.Context(), store.Secret{Hash: secretHash([]byte(tok)), AccountID: req.AccountID, DeviceID: req.DeviceID, ExpiresAt: texp}); err != nil {
		return storeErr(err)
	}
	writeJSON(w, http.StatusOK, api.Token{Token: tok, ExpiresAt: api.Seconds(texp)})
	return nil
}
