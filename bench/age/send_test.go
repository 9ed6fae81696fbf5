package agebench

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/keystore"
)

// sink is a relay that reads and records every send request's body and
// accepts it (it checks nothing: the bytes on the wire are what is
// measured). It answers the two authentication steps so that
// client.Send runs exactly as it does against Command.
type sink struct {
	mu    sync.Mutex
	media string
	body  int // bytes of the last POST /v1/messages body, as read from the wire
}

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/v1/auth/challenge":
		json.NewEncoder(w).Encode(api.Challenge{Challenge: make([]byte, api.ChallengeSize), ExpiresAt: time.Now().Add(time.Minute)})
	case "/v1/auth/token":
		json.NewEncoder(w).Encode(api.Token{Token: "edt_bench", ExpiresAt: time.Now().Add(time.Hour)})
	case "/v1/messages":
		s.mu.Lock()
		s.body, s.media = len(b), api.MediaType(r.Header.Get("Content-Type"))
		s.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
		w.Write([]byte(`{"accepted":[],"rejected":[]}`))
	default:
		http.NotFound(w, r)
	}
}

func (s *sink) last() (int, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.body, s.media
}

// newSink starts a sink and a client of it signed in as the sender.
func newSink(t testing.TB, s *sender) (*sink, *client.Client, string) {
	sk := &sink{}
	hs := httptest.NewServer(sk)
	t.Cleanup(hs.Close)
	cl := testkit.Must(client.New(hs.URL, hs.Client()))
	cl.SetIdentity(&client.Identity{Account: s.from.Account, Device: s.from.Device,
		Sign: func(_ string, msg []byte) ([]byte, error) {
			return s.from.Identity.Sign(keystore.PurposeAuthToken, msg)
		}})
	return sk, cl, hs.URL
}

// sendMessage is what device.Send does now: seal the message form, and
// client.Send it (application/cbor, the form once).
func (s *sender) sendMessage(cl *client.Client) error {
	o, err := s.sealMessage()
	if err != nil {
		return err
	}
	_, _, err = cl.Send(context.Background(), o.Message)
	return err
}

// sendEnvelopes is what device.Send did before: seal each device's
// envelope and post them as the JSON request of one ciphertext per
// device (the body the old client.Send encoded: json.Marshal of
// api.SendRequest).
func (s *sender) sendEnvelopes(hc *http.Client, base string) error {
	sealed, err := s.sealEnigm()
	if err != nil {
		return err
	}
	envs := make([]api.OutgoingEnvelope, 0, len(sealed))
	for _, e := range sealed {
		envs = append(envs, api.OutgoingEnvelope{AccountID: hex.EncodeToString(e.To.Account[:]), DeviceID: hex.EncodeToString(e.To.Device[:]), Ciphertext: e.Bytes})
	}
	b, err := json.Marshal(api.SendRequest{Kind: api.KindMessage, Envelopes: envs})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(context.Background(), "POST", base+"/v1/messages", bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", api.MediaJSON)
	req.Header.Set("Authorization", "Bearer edt_bench")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// TestWireBytesPerRecipient measures the send request's body as it
// crosses the wire (read by the server) for N = 1, 5, 20, the message
// form through client.Send against the per-device JSON request of
// before, and age's file plus one signature: the request grows by at
// most 1.2x age's stanza per extra recipient. It logs the table
// docs/perf.md gives.
func TestWireBytesPerRecipient(t *testing.T) {
	type row struct{ form, old, age int }
	rows := map[int]row{}
	for _, n := range []int{1, 5, 20} {
		s := newSender(t, n)
		sk, cl, base := newSink(t, s)
		testkit.NoErr(t, s.sendMessage(cl))
		form, media := sk.last()
		if media != api.MediaCBOR {
			t.Fatalf("client.Send sent %q, not %s", media, api.MediaCBOR)
		}
		testkit.NoErr(t, s.sendEnvelopes(http.DefaultClient, base))
		old, media := sk.last()
		if media != api.MediaJSON {
			t.Fatalf("the old request went as %q", media)
		}
		a := testkit.Must(s.sealAge())
		rows[n] = row{form, old, len(a)}
		t.Logf("N=%2d: request body %6d B as a message form (CBOR), %7d B as one ciphertext per device (JSON); age + signature %6d B", n, form, old, len(a))
	}
	per := func(f func(row) int) float64 { return float64(f(rows[20])-f(rows[1])) / 19 }
	form, old, ageB := per(func(r row) int { return r.form }), per(func(r row) int { return r.old }), per(func(r row) int { return r.age })
	t.Logf("per extra recipient (N 1→20): message form %.1f B (%.2fx age's), per-device JSON %.1f B (%.2fx), age %.1f B", form, form/ageB, old, old/ageB, ageB)
	if form > 1.2*ageB {
		t.Fatalf("the send request grows %.1f bytes per recipient, more than 1.2x age's %.1f", form, ageB)
	}
	if old <= form {
		t.Fatalf("the per-device request (%.1f B per recipient) is not larger than the message form's (%.1f B): the measurement is broken", old, form)
	}
}

// BenchmarkSealSend times what a send costs the sender, seal and request
// to a relay that reads the body (a local sink: no network, no Command),
// the message form (SealMessage + client.Send) against the per-device
// JSON request of before (Seal + JSON + POST), alternating within each
// iteration (the order flips every iteration), and reports their ratio
// and the request bytes.
func BenchmarkSealSend(b *testing.B) {
	for _, n := range []int{1, 5, 20} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			s := newSender(b, n)
			sk, cl, base := newSink(b, s)
			hc := &http.Client{}
			var tNew, tOld time.Duration
			var formB, oldB int
			for i := 0; b.Loop(); i++ {
				for k := range 2 {
					t0 := time.Now()
					var err error
					if (i+k)%2 == 0 {
						err = s.sendMessage(cl)
						tNew += time.Since(t0)
						formB, _ = sk.last()
					} else {
						err = s.sendEnvelopes(hc, base)
						tOld += time.Since(t0)
						oldB, _ = sk.last()
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			}
			iters := float64(b.N)
			b.ReportMetric(float64(tNew.Nanoseconds())/iters, "form-ns/op")
			b.ReportMetric(float64(tOld.Nanoseconds())/iters, "perdevice-ns/op")
			b.ReportMetric(float64(tNew)/float64(tOld), "form/perdevice")
			b.ReportMetric(float64(formB), "form-req-B")
			b.ReportMetric(float64(oldB), "perdevice-req-B")
		})
	}
}
