package command

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/command/store"
)

// MaxRequestSize bounds every request body (413 too_large beyond).
const MaxRequestSize = api.MaxRequestSize

// Policy is the organisation and account policy as the API carries it.
type Policy = api.Policy

// PolicyUpdate is the body of POST /v1/admin/accounts/{id}/policy.
type PolicyUpdate = api.PolicyUpdate

// PolicyFromChain converts a chain policy to the API's.
func PolicyFromChain(p chain.Policy) Policy { return api.PolicyFromChain(p) }

// request is a request body: an api type that validates itself.
type request interface {
	Validate() error
}

// decode reads the request body into v strictly and validates it: at most
// MaxRequestSize bytes; application/cbor (for the types that travel so)
// through internal/wire, otherwise JSON through api.DecodeJSON (no
// unknown, duplicate or case-folded keys, nothing after the object).
func decode(w http.ResponseWriter, r *http.Request, v request) *apiError {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestSize))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errorf(http.StatusRequestEntityTooLarge, "too_large", "request body exceeds %d bytes", MaxRequestSize)
		}
		return badRequest("reading the request body: %v", err)
	}
	switch mt := api.MediaType(r.Header.Get("Content-Type")); mt {
	case api.MediaCBOR:
		if _, ok := v.(api.CBORBody); !ok {
			return badRequest("this endpoint takes %s, not %s", api.MediaJSON, mt)
		}
		if len(body) == 0 {
			return badRequest("empty request body, expected a CBOR map")
		}
		if err := api.UnmarshalCBOR(body, v); err != nil {
			return badRequest("%v", err)
		}
	case api.MediaJSON, "":
		if err := api.DecodeJSON(body, v); err != nil {
			return badRequest("%v", err)
		}
	default:
		accepted := api.MediaJSON
		if _, ok := v.(api.CBORBody); ok {
			accepted += " or " + api.MediaCBOR
		}
		return badRequest("Content-Type %q: this endpoint takes %s", r.Header.Get("Content-Type"), accepted)
	}
	return invalid(v.Validate())
}

// invalid maps a Validate error: a field too large is 413, a link beyond
// the chain's limit 422 chain_rejected, anything else 400.
func invalid(err error) *apiError {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, api.ErrTooLarge):
		return errorf(http.StatusRequestEntityTooLarge, "too_large", "%v", err)
	}
	if _, ok := chain.CodeOf(err); ok {
		return chainRejected(err)
	}
	return badRequest("%v", err)
}

// wantsCBOR reports whether the client asked for CBOR answers.
func wantsCBOR(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		if api.MediaType(strings.TrimSpace(part)) == api.MediaCBOR {
			return true
		}
	}
	return false
}

// respond writes the answer of an endpoint whose bodies may travel as CBOR
// (api.CBORBody): CBOR when the client accepts it, JSON otherwise.
func respond(w http.ResponseWriter, r *http.Request, status int, v any) {
	if wantsCBOR(r) {
		b, err := api.MarshalCBOR(v)
		if err != nil {
			writeError(w, internal(err))
			return
		}
		h := w.Header()
		h.Set("Content-Type", api.MediaCBOR)
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Length", strconv.Itoa(len(b)))
		w.WriteHeader(status)
		w.Write(b)
		return
	}
	writeJSON(w, status, v)
}

// jsonAnswer writes v as JSON whatever the client accepts (the endpoints
// that are JSON only).
func jsonAnswer(w http.ResponseWriter, _ *http.Request, status int, v any) { writeJSON(w, status, v) }

// hexID checks a lowercase hex id of n bytes.
func hexID(field, s string, n int) ([]byte, *apiError) {
	if !api.IsHex(s, n) {
		return nil, badRequest("%s must be %d lowercase hex digits", field, 2*n)
	}
	b, _ := hex.DecodeString(s)
	return b, nil
}

func accountID(field, s string) (chain.AccountID, *apiError) {
	b, e := hexID(field, s, chain.HashSize)
	if e != nil {
		return chain.AccountID{}, e
	}
	return chain.AccountID(b), nil
}

func deviceID(field, s string) (chain.DeviceID, *apiError) {
	b, e := hexID(field, s, chain.DeviceIDSize)
	if e != nil {
		return chain.DeviceID{}, e
	}
	return chain.DeviceID(b), nil
}

func requestID(field, s string) *apiError {
	_, e := hexID(field, s, api.RequestIDSize)
	return e
}

// parseLink parses a link field (its size was checked by Validate).
func parseLink(field string, b []byte) (*chain.Link, *apiError) {
	l, err := chain.ParseLink(b)
	if err != nil {
		e := badRequest("%s: %v", field, err)
		e.chain = chainErrorName(err)
		return nil, e
	}
	return l, nil
}

// decodeLink decodes a link request (api.LinkRequest) and parses its
// link.
func decodeLink(w http.ResponseWriter, r *http.Request) (*chain.Link, *apiError) {
	var req api.LinkRequest
	if e := decode(w, r, &req); e != nil {
		return nil, e
	}
	return parseLink("link", req.Link)
}

// authedBody runs auth (s.authDevice, s.authAdmin) and then decodes and
// validates the request body into a new T (decode): the first two steps
// of every authenticated endpoint that takes a body, in that order, so
// that nobody unauthenticated has a body parsed.
func authedBody[T any, P interface {
	*T
	request
}, A any](w http.ResponseWriter, r *http.Request, auth func(*http.Request) (A, *apiError)) (A, *T, *apiError) {
	who, e := auth(r)
	if e != nil {
		return who, nil, e
	}
	req := new(T)
	if e := decode(w, r, P(req)); e != nil {
		return who, nil, e
	}
	return who, req, nil
}

// accountDevice parses the account_id and device_id fields of a request.
func accountDevice(account, device string) (chain.AccountID, chain.DeviceID, *apiError) {
	acct, e := accountID("account_id", account)
	if e != nil {
		return acct, chain.DeviceID{}, e
	}
	dev, e := deviceID("device_id", device)
	return acct, dev, e
}

// rfc3339 formats a time for messages and audit details.
func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// ---- the server's records in the API's types -----------------------------

func headOf(h store.Head) api.Head { return api.Head{Seq: h.Seq, Hash: h.Hash} }

func enrollmentOf(e store.Enrollment) api.Enrollment {
	j := api.Enrollment{
		RequestID: e.ID, AccountID: e.AccountID, Type: e.Type, State: e.State, Body: e.Body,
		DeviceID: e.DeviceID, DeviceName: e.DeviceName, Protection: e.Protection,
		CreatedAt: api.Seconds(e.CreatedAt), ExpiresAt: api.Seconds(e.ExpiresAt), Reason: e.Reason,
		Approvals: []api.Approval{},
	}
	if e.Head != nil {
		h := headOf(*e.Head)
		j.Head = &h
	}
	for _, a := range e.Approvals {
		j.Approvals = append(j.Approvals, api.Approval{Role: a.Role, Signer: a.Signer, Signature: a.Signature})
	}
	return j
}

// recoveryOf reports a recovery; a waiting recovery past its not-before
// time is "ready".
func recoveryOf(r store.Recovery, now time.Time) api.Recovery {
	st := r.State
	if st == store.RecoveryWaiting && !now.Before(r.NotBefore) {
		st = api.RecoveryReady
	}
	return api.Recovery{RecoveryID: r.ID, AccountID: r.AccountID, DeviceID: r.DeviceID, State: st,
		RequestedAt: api.Seconds(r.RequestedAt), NotBefore: api.Seconds(r.NotBefore), Reason: r.Reason}
}

// queryInt reads an optional integer query parameter within [min, max].
func queryInt(r *http.Request, name string, def, min, max int64) (int64, *apiError) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < min || v > max {
		return 0, badRequest("query parameter %s must be an integer in [%d, %d]", name, min, max)
	}
	return v, nil
}

// equalBytes compares public values (no secrets).
func equalBytes(a, b []byte) bool { return bytes.Equal(a, b) }
