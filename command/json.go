package command

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/command/store"
)

// MaxRequestSize bounds every request body (413 too_large beyond).
const MaxRequestSize = 1 << 20

// decode reads the JSON request body into v strictly: at most
// MaxRequestSize bytes, no unknown fields, nothing after the value.
func decode(w http.ResponseWriter, r *http.Request, v any) *apiError {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestSize))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errorf(http.StatusRequestEntityTooLarge, "too_large", "request body exceeds %d bytes", MaxRequestSize)
		}
		return badRequest("reading the request body: %v", err)
	}
	if f, ok := v.(flatRequest); ok && decodeFlat(body, f.flat()) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return badRequest("empty request body, expected a JSON object")
		}
		return badRequest("malformed JSON: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("malformed JSON: data after the request object")
	}
	return nil
}

// flatRequest is a request whose fields are all strings: decode tries
// decodeFlat on it before encoding/json.
type flatRequest interface {
	flat() []flatField
}

type flatField struct {
	name string
	p    *string
}

// decodeFlat is the fast path of decode for the common form of a flat
// request: one JSON object of distinct, exactly named string fields whose
// values hold only printable ASCII without escapes (ids, base64), and
// nothing after it. It sets the fields and returns true only for such a
// body, which encoding/json decodes to the same values; anything else
// (other keys, escapes, other types, duplicates, malformed input) returns
// false without setting anything, and encoding/json decides. It exists
// because encoding/json scans long base64 strings byte by byte through
// its state machine, which costs more than the rest of a request.
func decodeFlat(b []byte, fields []flatField) bool {
	if len(fields) > 8 {
		return false
	}
	var (
		vals [8][]byte
		set  [8]bool
	)
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		i++
	} else {
		for {
			key, j, ok := plainString(b, i)
			if !ok {
				return false
			}
			i = skipSpace(b, j)
			if i >= len(b) || b[i] != ':' {
				return false
			}
			val, j, ok := plainString(b, skipSpace(b, i+1))
			if !ok {
				return false
			}
			k := -1
			for n, f := range fields {
				if f.name == string(key) {
					k = n
				}
			}
			if k < 0 || set[k] {
				return false
			}
			vals[k], set[k] = val, true
			i = skipSpace(b, j)
			if i < len(b) && b[i] == ',' {
				i = skipSpace(b, i+1)
				continue
			}
			if i < len(b) && b[i] == '}' {
				i++
				break
			}
			return false
		}
	}
	if skipSpace(b, i) != len(b) {
		return false
	}
	for n, f := range fields {
		if set[n] {
			*f.p = string(vals[n])
		}
	}
	return true
}

// plainString reads a JSON string at b[i] made only of printable ASCII
// other than '"' and '\\' (so that its JSON value is its bytes).
func plainString(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, i, false
	}
	for j := i + 1; j < len(b); j++ {
		c := b[j]
		if c == '"' {
			return b[i+1 : j], j + 1, true
		}
		if c < 0x20 || c > 0x7e || c == '\\' {
			return nil, j, false
		}
	}
	return nil, len(b), false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

var b64 = base64.StdEncoding.Strict()

func b64enc(b []byte) string { return b64.EncodeToString(b) }

// b64dec decodes a required base64 field of at most max bytes.
func b64dec(field, s string, max int) ([]byte, *apiError) {
	if s == "" {
		return nil, badRequest("%s is missing", field)
	}
	if len(s) > b64.EncodedLen(max) {
		return nil, errorf(http.StatusRequestEntityTooLarge, "too_large", "%s exceeds %d bytes", field, max)
	}
	b, err := b64.DecodeString(s)
	if err != nil {
		return nil, badRequest("%s is not standard base64 with padding: %v", field, err)
	}
	if len(b) > max {
		return nil, errorf(http.StatusRequestEntityTooLarge, "too_large", "%s exceeds %d bytes", field, max)
	}
	return b, nil
}

// hexID checks a lowercase hex id of n bytes.
func hexID(field, s string, n int) ([]byte, *apiError) {
	if len(s) != 2*n {
		return nil, badRequest("%s must be %d lowercase hex digits", field, 2*n)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return nil, badRequest("%s must be %d lowercase hex digits", field, 2*n)
		}
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
	_, e := hexID(field, s, 16)
	return e
}

// parseLink decodes a base64 link and parses it.
func parseLink(field, s string) (*chain.Link, *apiError) {
	b, e := b64dec(field, s, chain.MaxLinkSize)
	if e != nil {
		if e.status == http.StatusRequestEntityTooLarge {
			e = chainRejected(chain.ErrTooLarge)
			e.msg = field + " exceeds the chain's link size limit"
		}
		return nil, e
	}
	l, err := chain.ParseLink(b)
	if err != nil {
		e := badRequest("%s: %v", field, err)
		e.chain = chainErrorName(err)
		return nil, e
	}
	return l, nil
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// ---- wire types of the API ----------------------------------------------

type jsonHead struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

func headJSON(h store.Head) jsonHead { return jsonHead{Seq: h.Seq, Hash: h.Hash} }

func chainHead(h chain.Head) jsonHead { return jsonHead{Seq: h.Seq, Hash: h.Hash.String()} }

// Policy is the organisation and account policy as the API carries it.
type Policy struct {
	RequireAdminApproval       bool   `json:"require_admin_approval"`
	RecoveryDelaySeconds       int64  `json:"recovery_delay_seconds"`
	RequireAdminReview         bool   `json:"require_admin_review"`
	MinLevel                   string `json:"min_level"`
	RequireVerifiedAttestation bool   `json:"require_verified_attestation"`
}

// ChainPolicy converts p to the chain's policy.
func (p Policy) ChainPolicy() chain.Policy {
	return chain.Policy{
		RequireAdminApproval:       p.RequireAdminApproval,
		RecoveryDelay:              time.Duration(p.RecoveryDelaySeconds) * time.Second,
		RequireAdminReview:         p.RequireAdminReview,
		MinLevel:                   chain.Level(p.MinLevel),
		RequireVerifiedAttestation: p.RequireVerifiedAttestation,
	}
}

// PolicyFromChain converts a chain policy to the API's.
func PolicyFromChain(p chain.Policy) Policy {
	return Policy{
		RequireAdminApproval:       p.RequireAdminApproval,
		RecoveryDelaySeconds:       int64(p.RecoveryDelay / time.Second),
		RequireAdminReview:         p.RequireAdminReview,
		MinLevel:                   string(p.MinLevel),
		RequireVerifiedAttestation: p.RequireVerifiedAttestation,
	}
}

// PolicyUpdate is the body of POST /v1/admin/accounts/{id}/policy: a
// partial update. Each field given replaces the account's current value;
// a field left out (or null) keeps it.
type PolicyUpdate struct {
	RequireAdminApproval       *bool   `json:"require_admin_approval,omitempty"`
	RecoveryDelaySeconds       *int64  `json:"recovery_delay_seconds,omitempty"`
	RequireAdminReview         *bool   `json:"require_admin_review,omitempty"`
	MinLevel                   *string `json:"min_level,omitempty"`
	RequireVerifiedAttestation *bool   `json:"require_verified_attestation,omitempty"`
}

// Empty reports whether u changes nothing.
func (u PolicyUpdate) Empty() bool { return u == PolicyUpdate{} }

// Apply returns p with the fields u gives replaced.
func (u PolicyUpdate) Apply(p Policy) Policy {
	if u.RequireAdminApproval != nil {
		p.RequireAdminApproval = *u.RequireAdminApproval
	}
	if u.RecoveryDelaySeconds != nil {
		p.RecoveryDelaySeconds = *u.RecoveryDelaySeconds
	}
	if u.RequireAdminReview != nil {
		p.RequireAdminReview = *u.RequireAdminReview
	}
	if u.MinLevel != nil {
		p.MinLevel = *u.MinLevel
	}
	if u.RequireVerifiedAttestation != nil {
		p.RequireVerifiedAttestation = *u.RequireVerifiedAttestation
	}
	return p
}

type jsonDevice struct {
	DeviceID   string `json:"device_id"`
	Name       string `json:"name"`
	State      string `json:"state"`
	Protection string `json:"protection"`
	ApprovedBy string `json:"approved_by"`
	AddedAt    string `json:"added_at"`
	AddedSeq   uint64 `json:"added_seq"`
	EndedAt    string `json:"ended_at,omitempty"`
}

func deviceJSON(r chain.DeviceRecord) jsonDevice {
	d := jsonDevice{
		DeviceID: r.ID.String(), Name: r.Name, State: r.Status.String(), Protection: string(r.Level),
		AddedAt: rfc3339(r.AddedAt), AddedSeq: r.AddedSeq,
	}
	switch r.ApprovedBy.Kind {
	case chain.ByGenesis:
		d.ApprovedBy = "genesis"
	case chain.ByDevice:
		d.ApprovedBy = r.ApprovedBy.Device.String()
	case chain.ByRecovery:
		d.ApprovedBy = "recovery"
	case chain.ByOrg:
		d.ApprovedBy = "org"
	}
	if r.Status != chain.StatusActive {
		d.EndedAt = rfc3339(r.EndedAt)
	}
	return d
}

type jsonApproval struct {
	Role      string `json:"role"`
	Signer    string `json:"signer,omitempty"`
	Signature string `json:"signature"`
}

type jsonEnrollment struct {
	RequestID  string         `json:"request_id"`
	AccountID  string         `json:"account_id"`
	Type       string         `json:"type"`
	State      string         `json:"state"`
	Body       string         `json:"body"`
	DeviceID   string         `json:"device_id"`
	DeviceName string         `json:"device_name"`
	Protection string         `json:"protection"`
	CreatedAt  string         `json:"created_at"`
	ExpiresAt  string         `json:"expires_at"`
	Head       *jsonHead      `json:"head,omitempty"`
	Approvals  []jsonApproval `json:"approvals"`
	Reason     string         `json:"reason,omitempty"`
}

func enrollmentJSON(e store.Enrollment) jsonEnrollment {
	j := jsonEnrollment{
		RequestID: e.ID, AccountID: e.AccountID, Type: e.Type, State: e.State, Body: b64enc(e.Body),
		DeviceID: e.DeviceID, DeviceName: e.DeviceName, Protection: e.Protection,
		CreatedAt: rfc3339(e.CreatedAt), ExpiresAt: rfc3339(e.ExpiresAt), Reason: e.Reason,
		Approvals: []jsonApproval{},
	}
	if e.Head != nil {
		h := headJSON(*e.Head)
		j.Head = &h
	}
	for _, a := range e.Approvals {
		j.Approvals = append(j.Approvals, jsonApproval{Role: a.Role, Signer: a.Signer, Signature: b64enc(a.Signature)})
	}
	return j
}

type jsonRecovery struct {
	RecoveryID  string `json:"recovery_id"`
	AccountID   string `json:"account_id"`
	DeviceID    string `json:"device_id"`
	State       string `json:"state"`
	RequestedAt string `json:"requested_at"`
	NotBefore   string `json:"not_before"`
	Reason      string `json:"reason,omitempty"`
}

// recoveryJSON reports a recovery; a waiting recovery past its not-before
// time is "ready".
func recoveryJSON(r store.Recovery, now time.Time) jsonRecovery {
	st := r.State
	if st == store.RecoveryWaiting && !now.Before(r.NotBefore) {
		st = "ready"
	}
	return jsonRecovery{RecoveryID: r.ID, AccountID: r.AccountID, DeviceID: r.DeviceID, State: st,
		RequestedAt: rfc3339(r.RequestedAt), NotBefore: rfc3339(r.NotBefore), Reason: r.Reason}
}

type jsonAudit struct {
	ID        int64  `json:"id"`
	Time      string `json:"time"`
	Actor     string `json:"actor"`
	Action    string `json:"action"`
	AccountID string `json:"account_id,omitempty"`
	DeviceID  string `json:"device_id,omitempty"`
	Detail    string `json:"detail"`
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
