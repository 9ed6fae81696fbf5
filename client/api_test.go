package client

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/chain"
)

// The enrollment calls speak CBOR: the body goes as application/cbor (the
// enrollment body as a byte string, not base64), the answer is asked for
// as CBOR and decoded strictly; an answer that does not validate is
// refused, never handed to the caller.
func TestEnrollmentOverCBOR(t *testing.T) {
	body := []byte{0xa0, 0x01, 0x02}
	good := api.Enrollment{RequestID: strings.Repeat("0", 32), AccountID: strings.Repeat("ab", 32), DeviceID: strings.Repeat("cd", 16),
		Type: api.TypeAddDevice, State: "pending", Body: body}
	answer := good
	var sent []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Type") != api.MediaCBOR || r.Header.Get("Accept") != api.MediaCBOR {
			t.Errorf("sent %q, accepts %q", r.Header.Get("Content-Type"), r.Header.Get("Accept"))
		}
		sent, _ = io.ReadAll(r.Body)
		b, err := api.MarshalCBOR(answer)
		if err != nil {
			t.Error(err)
		}
		w.Header().Set("Content-Type", api.MediaCBOR)
		w.WriteHeader(http.StatusCreated)
		w.Write(b)
	}))
	defer srv.Close()
	c, err := New(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	var acct chain.AccountID
	e, err := c.CreateEnrollment(context.Background(), acct, chain.TypeAddDevice, body)
	if err != nil {
		t.Fatal(err)
	}
	if e.RequestID != good.RequestID || !bytes.Equal(e.Body, body) {
		t.Fatalf("answer %+v", e)
	}
	var q api.EnrollRequest
	if err := api.UnmarshalCBOR(sent, &q); err != nil || q.Type != api.TypeAddDevice || !bytes.Equal(q.Body, body) {
		t.Fatalf("sent %x: %+v %v", sent, q, err)
	}
	// A server answering a request id that is not one, or an approval
	// in a role that does not exist, is refused.
	for _, bad := range []func(*api.Enrollment){
		func(e *api.Enrollment) { e.RequestID = "../../admin" },
		func(e *api.Enrollment) { e.Approvals = []api.Approval{{Role: "root", Signature: []byte{1}}} },
		func(e *api.Enrollment) { e.Type = "genesis" },
	} {
		answer = good
		bad(&answer)
		if _, err := c.CreateEnrollment(context.Background(), acct, chain.TypeAddDevice, body); err == nil || !strings.Contains(err.Error(), "malformed response") {
			t.Fatalf("answer %+v accepted: %v", answer, err)
		}
	}
}
