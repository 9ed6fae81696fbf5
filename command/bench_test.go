package command

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime/pprof"
	"sync/atomic"
	"testing"

	"github.com/enigm/enigm/api"
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

// preparedEnroll is one enrollment made ahead: the request body, the
// approval signature and the completed link, all signed before the timed
// loop.
type preparedEnroll struct {
	a       *tacct
	token   string
	reqBody api.EnrollRequest
	approve api.ApproveRequest
	link    api.LinkRequest
}

// prepareEnroll creates an account named name on e and makes ahead, with
// every client signature, the enrollment of a second device into it.
func prepareEnroll(b *testing.B, e *env, name string) preparedEnroll {
	A := newDev(name + "/A")
	return prepareEnrollInto(b, e.newAccount(name, A, chain.DefaultPolicy()), A, name+"/N")
}

// prepareEnrollInto makes ahead the enrollment of a new device (label) into
// a, approved by its device A, and advances a's state past it, so that
// the next one prepared for a follows it.
func prepareEnrollInto(b *testing.B, a *tacct, A *tdev, label string) preparedEnroll {
	N := newDev(label)
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
	l := link(b, d)
	p := preparedEnroll{a: a, token: a.token(A),
		reqBody: api.EnrollRequest{Type: api.TypeAddDevice, Body: raw},
		approve: api.ApproveRequest{Head: a.head(), Signature: sg.Sig},
		link:    api.LinkRequest{Link: l.Bytes()}}
	a.advance(l)
	return p
}

// advance applies l to a's state on the client side, without the server.
func (a *tacct) advance(l *chain.Link) {
	a.e.t.Helper()
	st, err := chain.Apply(a.st, l, a.e.clock.Now())
	testkit.NoErr(a.e.t, err)
	a.st = st
}

// BenchmarkEnrollment runs request, approval and completion of one new
// device per account, with every client signature made ahead: what is
// timed is the server's work (three hybrid verifications per enrollment
// and the rest), with the bodies as JSON (base64 inside) or as CBOR (as
// the client sends them), encoded in the loop.
func BenchmarkEnrollment(b *testing.B) {
	for _, engine := range []string{"sqlite", "postgres"} {
		for _, transport := range []string{"json", "cbor"} {
			b.Run(engine+"/"+transport, func(b *testing.B) {
				dsn := storetest.SQLiteDSN(b)
				if engine == "postgres" {
					dsn = storetest.PostgresDSN(b)
				}
				e := newEnvDSN(b, dsn)
				e.waitListening()
				preps := make([]preparedEnroll, b.N)
				for i := range preps {
					preps[i] = prepareEnroll(b, e, fmt.Sprintf("ebench-%d", i))
				}
				do := e.do
				rid := func(r *resp) string { return r.str("request_id") }
				if transport == "cbor" {
					do = e.doCBOR
					rid = func(r *resp) string {
						var en api.Enrollment
						r.cbor(b, &en)
						return en.RequestID
					}
				}
				var next atomic.Int64
				b.ResetTimer()
				defer timedProfile(b)()
				b.SetParallelism(8)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						p := &preps[next.Add(1)-1]
						r := e.want(do("POST", "/v1/accounts/"+p.a.id+"/enrollments", "", &p.reqBody), 201, "")
						id := rid(r)
						e.want(do("POST", "/v1/enrollments/"+id+"/approve", p.token, &p.approve), 200, "")
						e.want(do("POST", "/v1/enrollments/"+id+"/complete", "", &p.link), 201, "")
					}
				})
			})
		}
	}
}

// timedProfile starts a CPU profile of the timed phase alone when
// ENIGM_BENCH_CPUPROFILE names a file (go test's -cpuprofile also covers
// the set-up, which here signs and stores every account), and returns
// what stops it.
func timedProfile(b *testing.B) func() {
	path := os.Getenv("ENIGM_BENCH_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	testkit.NoErr(b, err)
	testkit.NoErr(b, pprof.StartCPUProfile(f))
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// BenchmarkDecodeLink decodes the completion body of an enrollment (a
// 13 KB link) as the server does, from JSON (base64 inside, the strict
// path) and from CBOR.
func BenchmarkDecodeLink(b *testing.B) {
	e := newEnv(b)
	A, N := newDev("dbench/A"), newDev("dbench/N")
	a := e.newAccount("dbench", A, chain.DefaultPolicy())
	n := nonce(N.label)
	body := &chain.AddDevice{Device: N.device(), Nonce: n, PairingHash: chain.PairingHash(n, "code")}
	d := a.draft(body)
	st, _ := d.Approval()
	sg := testkit.Must(chain.SignApproval(st, chain.TypeAddDevice, chain.RoleDevice, A.id, A.key()))
	d.AddSignature(sg)
	testkit.NoErr(b, d.Sign(chain.RoleSubject, N.key()))
	l := link(b, d).Bytes()
	bodies := map[string][]byte{
		api.MediaJSON: testkit.Must(json.Marshal(api.LinkRequest{Link: l})),
		api.MediaCBOR: testkit.Must(api.MarshalCBOR(api.LinkRequest{Link: l})),
	}
	for _, media := range []string{api.MediaJSON, api.MediaCBOR} {
		b.Run(media[len("application/"):], func(b *testing.B) {
			body := bodies[media]
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				r := httptest.NewRequest("POST", "/", bytes.NewReader(body))
				r.Header.Set("Content-Type", media)
				var q api.LinkRequest
				if e := decode(httptest.NewRecorder(), r, &q); e != nil {
					b.Fatal(e)
				}
				if _, e := parseLink("link", q.Link); e != nil {
					b.Fatal(e)
				}
			}
		})
	}
}
