package command

import (
	"slices"
	"strings"
	"testing"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/envelope"
	"github.com/enigm/enigm/internal/testkit"
)

// Arbitrary bodies on every POST route, with and without a device or
// admin token, as JSON or as CBOR: never a panic (the middleware would
// answer 500), never a 5xx, always a JSON answer (a CBOR one only for a
// CBOR request that succeeded).
func FuzzRequests(f *testing.F) {
	e := newEnv(f)
	o := e.newOrg("Acme", Policy{})
	A := newDev("fuzz/A")
	a := e.newManaged(o, "fuzz", A)
	tok := a.token(A)
	var posts []string
	for _, r := range e.srv.Routes() {
		if strings.HasPrefix(r, "POST ") {
			p := strings.TrimPrefix(r, "POST ")
			p = strings.ReplaceAll(p, "{id}", a.id)
			p = strings.ReplaceAll(p, "{rid}", strings.Repeat("ab", 16))
			posts = append(posts, p)
		}
	}
	for i := range posts {
		f.Add(uint8(i), uint8(0), []byte(`{}`))
		f.Add(uint8(i), uint8(1), []byte(`{"link":"oA=="}`))
		f.Add(uint8(i), uint8(2), []byte(`{"name":"x","genesis":"AAAA","invite":"aaaaaaaaaaaaaaaaaaaa"}`))
	}
	f.Add(uint8(0), uint8(1), []byte(`{"kind":"call","call_id":"x","envelopes":[{"account_id":"`+a.id+`","device_id":"`+A.id.String()+`","ciphertext":"AA=="}]}`))
	f.Add(uint8(0), uint8(1), []byte(`{"type":"add_device","body":"oA=="}`))
	f.Add(uint8(0), uint8(4), []byte{0xa1, 0x01, 0x41, 0xa0})            // {1: h'a0'} as CBOR
	f.Add(uint8(0), uint8(5), []byte{0xa2, 0x01, 0x61, 'x', 0x02, 0x40}) // non-canonical CBOR
	// A message form (CBOR, with A's token), from A to itself, for the
	// mutations of the relay's split to start from.
	form := newSealer(f).seal(f, a, A, envelope.Message{Conversation: a.st.Account(), Body: []byte("fuzz")}, envelope.Eligible(a.st, chain.DeviceID{}))
	f.Add(uint8(slices.Index(posts, "/v1/messages")), uint8(5), testkit.Must(api.MarshalCBOR(&api.SendMessage{Message: form})))
	f.Fuzz(func(t *testing.T, route, auth uint8, body []byte) {
		path := posts[int(route)%len(posts)]
		token := ""
		switch auth % 3 {
		case 1:
			token = tok
		case 2:
			token = o.AdminToken
		}
		ee := *e
		ee.t = t
		do := ee.do
		if auth&4 != 0 { // the body as application/cbor, asking for CBOR
			do = ee.doCBOR
		}
		r := do("POST", path, token, body)
		if r.code >= 500 {
			t.Fatalf("POST %s: %d %s", path, r.code, r.body)
		}
		ct := r.hdr.Get("Content-Type")
		if ct != "application/json" && (ct != "application/cbor" || r.code >= 300 || auth&4 == 0) {
			t.Fatalf("POST %s: %d, content type %q", path, r.code, ct)
		}
	})
}
