package command

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/internal/testkit"
)

// doCBOR sends body (CBOR-encoded unless it is []byte) as application/cbor
// and asks for a CBOR answer.
func (e *env) doCBOR(method, path, token string, body any) *resp {
	e.t.Helper()
	b, ok := body.([]byte)
	if !ok {
		b = testkit.Must(api.MarshalCBOR(body))
	}
	req := httptest.NewRequest(method, path, bytes.NewReader(b))
	req.Header.Set("Content-Type", api.MediaCBOR)
	req.Header.Set("Accept", api.MediaCBOR)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(w, req)
	r := &resp{code: w.Code, hdr: w.Header(), body: w.Body.Bytes()}
	json.Unmarshal(r.body, &r.m) // the errors, which are JSON
	return r
}

// cbor decodes a CBOR answer strictly.
func (r *resp) cbor(t testing.TB, v any) {
	t.Helper()
	if ct := r.hdr.Get("Content-Type"); ct != api.MediaCBOR {
		t.Fatalf("content type %q, want %s: %s", ct, api.MediaCBOR, r.body)
	}
	if err := api.UnmarshalCBOR(r.body, v); err != nil {
		t.Fatalf("decoding the CBOR answer: %v", err)
	}
}

// A whole enrollment over CBOR: the request, the approval and the link
// travel as CBOR byte strings, and every answer comes back as CBOR that
// decodes strictly into the api types.
func TestEnrollmentOverCBOR(t *testing.T) {
	e := newEnv(t)
	A, B := newDev("alice/A"), newDev("alice/B")
	a := e.newAccount("alice", A, chain.DefaultPolicy())
	n := nonce(B.label)
	en := &enrolling{a: a, dev: B, pairing: "pair-B", typ: api.TypeAddDevice}
	en.body = &chain.AddDevice{Device: B.device(), Nonce: n, PairingHash: chain.PairingHash(n, en.pairing)}
	en.raw = testkit.Must(chain.EncodeBody(en.body))

	r := e.want(e.doCBOR("POST", "/v1/accounts/"+a.id+"/enrollments", "", api.EnrollRequest{Type: en.typ, Body: en.raw}), http.StatusCreated, "")
	var got api.Enrollment
	r.cbor(t, &got)
	testkit.NoErr(t, got.Validate())
	if got.State != "pending" || !bytes.Equal(got.Body, en.raw) || got.DeviceID != B.id.String() || !got.ExpiresAt.Equal(t0.Add(DefaultEnrollmentTTL)) {
		t.Fatalf("enrollment: %s %s %s %v", got.State, got.DeviceID, got.ExpiresAt, bytes.Equal(got.Body, en.raw))
	}
	en.rid = got.RequestID

	st, typ := en.statement()
	sg := testkit.Must(chain.SignApproval(st, typ, chain.RoleDevice, A.id, A.key()))
	r = e.want(e.doCBOR("POST", "/v1/enrollments/"+en.rid+"/approve", a.token(A), api.ApproveRequest{Head: a.head(), Signature: sg.Sig}), http.StatusOK, "")
	r.cbor(t, &got)
	if got.State != "approved" || len(got.Approvals) != 1 || !bytes.Equal(got.Approvals[0].Signature, sg.Sig) || got.Head == nil || *got.Head != a.head() {
		t.Fatalf("approved: %s, %d approvals, head %v", got.State, len(got.Approvals), got.Head)
	}

	l := en.buildLink()
	r = e.want(e.doCBOR("POST", "/v1/enrollments/"+en.rid+"/complete", "", api.LinkRequest{Link: l.Bytes()}), http.StatusCreated, "")
	var h api.HeadResponse
	r.cbor(t, &h)
	if h.Head != (api.Head{Seq: l.Seq(), Hash: l.Hash().String()}) {
		t.Fatalf("head %+v, want seq %d hash %s", h.Head, l.Seq(), l.Hash())
	}
	a.sync()
	if !a.st.IsActive(B.id) {
		t.Fatal("B is not active after the CBOR enrollment")
	}
	// Errors stay JSON, whatever the request.
	r = e.doCBOR("POST", "/v1/enrollments/"+en.rid+"/complete", "", api.LinkRequest{Link: l.Bytes()})
	e.want(r, http.StatusConflict, "conflict")
	if ct := r.hdr.Get("Content-Type"); ct != api.MediaJSON {
		t.Fatalf("error content type %q", ct)
	}
}

// CBOR bodies are decoded strictly (internal/wire) and validated like
// JSON ones; JSON-only endpoints refuse them; unknown media types are
// refused. Nothing of it changes the account.
func TestCBORBodiesStrict(t *testing.T) {
	e := newEnv(t)
	a, A := e.alice()
	tok := a.token(A)
	links := "/v1/accounts/" + a.id + "/links"
	rot := a.rotateKEMLink(A, 1).Bytes()
	good := testkit.Must(api.MarshalCBOR(api.LinkRequest{Link: rot}))
	for _, tc := range []struct {
		desc    string
		path    string
		body    []byte
		code    int
		errCode string
		msg     string
	}{
		{"empty", links, []byte{}, 400, "bad_request", "empty request body"},
		{"not a map", links, []byte{0x01}, 400, "bad_request", "malformed CBOR"},
		{"unknown key", links, append([]byte{0xa2}, append(good[1:], 0x02, 0x00)...), 400, "bad_request", "malformed CBOR"},
		{"duplicate key", links, append([]byte{0xa2}, append(good[1:], good[1:]...)...), 400, "bad_request", "malformed CBOR"},
		{"trailing data", links, append(append([]byte{}, good...), 0x00), 400, "bad_request", "trailing"},
		{"text key", links, []byte{0xa1, 0x64, 'l', 'i', 'n', 'k', 0x41, 0x00}, 400, "bad_request", "malformed CBOR"},
		{"link as text", links, []byte{0xa1, 0x01, 0x61, 'x'}, 400, "bad_request", "malformed CBOR"},
		{"empty link sent", links, []byte{0xa1, 0x01, 0x40}, 400, "bad_request", "not canonical"},
		{"no link", links, []byte{0xa0}, 400, "bad_request", "link is missing"},
		{"oversized link", links, testkit.Must(api.MarshalCBOR(api.LinkRequest{Link: make([]byte, chain.MaxLinkSize+1)})), 422, "chain_rejected", "size limit"},
		{"garbage link", links, testkit.Must(api.MarshalCBOR(api.LinkRequest{Link: []byte{0xa8, 0x01}})), 400, "bad_request", "link"},
		{"CBOR on a JSON endpoint", "/v1/auth/challenge", testkit.Must(api.MarshalCBOR(api.LinkRequest{Link: rot})), 400, "bad_request", "takes application/json"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			r := e.doCBOR("POST", tc.path, tok, tc.body)
			e.want(r, tc.code, tc.errCode)
			if !strings.Contains(string(r.body), tc.msg) {
				t.Fatalf("message %s does not say %q", r.body, tc.msg)
			}
		})
	}
	req := httptest.NewRequest("POST", links, strings.NewReader(`{"link":"oA=="}`))
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("Authorization", "Bearer "+tok)
	w := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(w, req)
	if w.Code != 400 || !strings.Contains(w.Body.String(), "application/cbor") {
		t.Fatalf("text/plain: %d %s", w.Code, w.Body)
	}
	// A JSON-only endpoint answers JSON even to a client that accepts CBOR.
	req = httptest.NewRequest("GET", "/v1/accounts/"+a.id+"/devices", nil)
	req.Header.Set("Accept", api.MediaCBOR)
	w = httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(w, req)
	if w.Code != 200 || w.Header().Get("Content-Type") != api.MediaJSON {
		t.Fatalf("devices with Accept CBOR: %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	a.sync()
	if a.st.Head().Seq != 0 {
		t.Fatalf("head moved to %d", a.st.Head().Seq)
	}
	// And the good body appends.
	var h api.HeadResponse
	e.want(e.doCBOR("POST", links, tok, good), http.StatusCreated, "").cbor(t, &h)
	if h.Head.Seq != 1 {
		t.Fatalf("head %+v", h.Head)
	}
}

// The strict JSON path refuses what encoding/json alone accepts: a key
// given twice (it keeps the last) and a key in another case, or one that
// folds to a field name under Unicode (it matches keys
// case-insensitively), at the top level and inside nested objects. Each
// gets 400 with a message naming the key.
func TestJSONDuplicateAndFoldedKeys(t *testing.T) {
	e := newEnv(t)
	a, A := e.alice()
	dev := A.id.String()
	for _, tc := range []struct {
		desc, path, body, msg string
	}{
		{"duplicate account_id", "/v1/auth/challenge",
			`{"account_id":"` + strings.Repeat("0", 64) + `","device_id":"` + dev + `","account_id":"` + a.id + `"}`, `key "account_id" twice`},
		{"case-folded key", "/v1/auth/challenge", `{"Account_ID":"` + a.id + `","device_id":"` + dev + `"}`, `key "Account_ID"`},
		{"upper-case key", "/v1/auth/challenge", `{"account_id":"` + a.id + `","DEVICE_ID":"` + dev + `"}`, `key "DEVICE_ID"`},
		{"Unicode folding (long s)", "/v1/auth/token", `{"account_id":"` + a.id + `","device_id":"` + dev + `","challenge":"AA==","ſignature":"AA=="}`, `key "ſignature"`},
		{"Kelvin sign", "/v1/accounts/" + a.id + "/enrollments", `{"type":"add_device","body":"oA==","\u212a":"x"}`, "lowercase snake_case"},
		{"duplicate in a nested object", "/v1/enrollments/" + strings.Repeat("ab", 16) + "/approve",
			`{"head":{"seq":0,"hash":"` + a.st.Head().Hash.String() + `","seq":5},"signature":"AA=="}`, `key "seq" twice`},
		{"duplicate in an array's object", "/v1/messages",
			`{"kind":"message","envelopes":[{"account_id":"` + a.id + `","device_id":"` + dev + `","device_id":"` + dev + `","ciphertext":"AA=="}]}`, `key "device_id" twice`},
		{"duplicate link", "/v1/accounts/" + a.id + "/links", `{"link":"oA==","link":"oA=="}`, `key "link" twice`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			r := e.do("POST", tc.path, a.token(A), tc.body)
			e.want(r, 400, "bad_request")
			if msg, _ := r.m["error"].(map[string]any)["message"].(string); !strings.Contains(msg, tc.msg) {
				t.Fatalf("message %q does not say %q", msg, tc.msg)
			}
		})
	}
	// The same bodies with the keys as documented are accepted.
	e.want(e.do("POST", "/v1/auth/challenge", "", `{"account_id":"`+a.id+`","device_id":"`+dev+`"}`), 200, "")
}
