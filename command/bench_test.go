package command

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/command/store/storetest"
	"github.com/enigm/enigm/internal/testkit"
)

// setupBench sets up an account with n devices on the engine of dsn.
func setupBench(b *testing.B, dsn string, n int) (*env, *tacct) {
	e := newEnvDSN(b, dsn)
	e.waitListening()
	A := newDev("bench/A")
	a := e.newAccount("bench", A, chain.DefaultPolicy())
	for i := 1; i < n; i++ {
		a.add(newDev(fmt.Sprintf("bench/%d", i)), A)
	}
	return e, a
}

// The server's device-list fetch (with the links a client verifies), and a
// trivial handler serving the same bytes from memory, through the same
// in-process HTTP handler path.
func BenchmarkDeviceList(b *testing.B) {
	for _, engine := range []string{"sqlite", "postgres"} {
		b.Run(engine, func(b *testing.B) {
			dsn := storetest.SQLiteDSN(b)
			if engine == "postgres" {
				dsn = storetest.PostgresDSN(b)
			}
			e, a := setupBench(b, dsn, 4)
			path := "/v1/accounts/" + a.id + "/devices"
			body := e.do("GET", path, "", nil).body
			h := e.srv.Handler()
			b.Run("server", func(b *testing.B) { runGets(b, h, path) })
			trivial := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Write(body)
			})
			b.Run("trivial", func(b *testing.B) { runGets(b, trivial, path) })
			b.Run("server-loopback", func(b *testing.B) { runLoopback(b, h, path) })
			b.Run("trivial-loopback", func(b *testing.B) { runLoopback(b, trivial, path) })
		})
	}
}

func runGets(b *testing.B, h http.Handler, path string) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
			if w.Code != 200 {
				b.Fatalf("status %d", w.Code)
			}
		}
	})
}

// runLoopback fetches over HTTP on the loopback interface, with keep-alive
// connections, as a client does.
func runLoopback(b *testing.B, h http.Handler, path string) {
	ts := httptest.NewServer(h)
	defer ts.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	b.ReportAllocs()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Get(ts.URL + path)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
}

// prepared is one enrollment made ahead: the request body, the approval
// signature and the completed link, all signed before the timed loop.
type preparedEnroll struct {
	a       *tacct
	token   string
	reqBody map[string]string
	approve map[string]any
	link    map[string]string
}

// BenchmarkEnrollment runs request, approval and completion of one new
// device per account, with every client signature made ahead: what is
// timed is the server's work (three hybrid verifications per enrollment
// and the rest).
func BenchmarkEnrollment(b *testing.B) {
	for _, engine := range []string{"sqlite", "postgres"} {
		b.Run(engine, func(b *testing.B) {
			dsn := storetest.SQLiteDSN(b)
			if engine == "postgres" {
				dsn = storetest.PostgresDSN(b)
			}
			e := newEnvDSN(b, dsn)
			e.waitListening()
			preps := make([]preparedEnroll, b.N)
			for i := range preps {
				A, N := newDev(fmt.Sprintf("ebench/%d/A", i)), newDev(fmt.Sprintf("ebench/%d/N", i))
				a := e.newAccount(fmt.Sprintf("ebench-%d", i), A, chain.DefaultPolicy())
				n := nonce(N.label)
				body := &chain.AddDevice{Device: N.device(), Nonce: n, PairingHash: chain.PairingHash(n, "code")}
				raw, err := chain.EncodeBody(body)
				testkit.NoErr(b, err)
				d := a.draft(body)
				st, _ := d.Approval()
				sg, err := chain.SignApproval(st, chain.TypeAddDevice, chain.RoleDevice, A.id, A.key())
				testkit.NoErr(b, err)
				d.AddSignature(sg)
				testkit.NoErr(b, d.Sign(chain.RoleSubject, N.key()))
				preps[i] = preparedEnroll{a: a, token: a.token(A),
					reqBody: map[string]string{"type": "add_device", "body": enc64(raw)},
					approve: map[string]any{"head": a.head(), "signature": enc64(sg.Sig)},
					link:    map[string]string{"link": enc64(link(b, d).Bytes())}}
			}
			var next atomic.Int64
			b.ResetTimer()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					p := &preps[next.Add(1)-1]
					r := e.want(e.do("POST", "/v1/accounts/"+p.a.id+"/enrollments", "", p.reqBody), 201, "")
					rid := r.str("request_id")
					e.want(e.do("POST", "/v1/enrollments/"+rid+"/approve", p.token, p.approve), 200, "")
					e.want(e.do("POST", "/v1/enrollments/"+rid+"/complete", "", p.link), 201, "")
				}
			})
		})
	}
}
