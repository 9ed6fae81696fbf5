package command

import (
	"strings"
	"testing"
)

// Arbitrary bodies on every POST route, with and without a device or
// admin token: never a panic (the middleware would answer 500), never a
// 5xx, always a JSON answer.
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
		r := ee.do("POST", path, token, body)
		if r.code >= 500 {
			t.Fatalf("POST %s: %d %s", path, r.code, r.body)
		}
		if r.hdr.Get("Content-Type") != "application/json" {
			t.Fatalf("POST %s: content type %q", path, r.hdr.Get("Content-Type"))
		}
	})
}
