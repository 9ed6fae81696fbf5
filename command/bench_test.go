package command

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/command/store/storetest"
)

// setupBench sets up an account with n devices on the engine of dsn.
func setupBench(b *testing.B, dsn string, n int) (*env, *tacct) {
	e := newEnvDSN(b, dsn)
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
