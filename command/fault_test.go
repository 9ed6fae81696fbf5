package command

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/command/store"
	"github.com/enigm/enigm/internal/testenv"
	"github.com/enigm/enigm/internal/testkit"
)

// hookStore runs a hook before Append (and can fail reads), to stand for
// a database that goes away in the middle of a request.
type hookStore struct {
	store.Store
	mu           sync.Mutex
	beforeAppend func()
	failReads    atomic.Bool // reads of accounts and tokens fail
}

func (h *hookStore) Append(ctx context.Context, a store.Append) error {
	h.mu.Lock()
	f := h.beforeAppend
	h.mu.Unlock()
	if f != nil {
		f()
	}
	return h.Store.Append(ctx, a)
}

func (h *hookStore) Account(ctx context.Context, id string) (store.Account, error) {
	if h.failReads.Load() {
		return store.Account{}, fmt.Errorf("%w: connection refused", store.ErrUnavailable)
	}
	return h.Store.Account(ctx, id)
}

func (h *hookStore) TokenAccount(ctx context.Context, hash []byte) (store.Secret, store.Account, error) {
	if h.failReads.Load() {
		return store.Secret{}, store.Account{}, fmt.Errorf("%w: connection refused", store.ErrUnavailable)
	}
	return h.Store.TokenAccount(ctx, hash)
}

func (h *hookStore) set(f func()) {
	h.mu.Lock()
	h.beforeAppend = f
	h.mu.Unlock()
}

// newHookedEnv is an env whose store (opened at dsn) goes through a
// hookStore.
func newHookedEnv(t *testing.T, dsn string) (*env, *hookStore) {
	inner, err := store.Open(context.Background(), dsn)
	testkit.NoErr(t, err)
	t.Cleanup(func() { inner.Close() })
	hs := &hookStore{Store: inner}
	return newEnv(t, func(c *Config) { c.Store = hs }), hs
}

type failingAppend struct{ store.Store }

func (failingAppend) Append(context.Context, store.Append) error {
	return fmt.Errorf("%w: the connection was reset", store.ErrUnavailable)
}

func TestUnavailableDatabaseIsA503(t *testing.T) {
	e, hs := newHookedEnv(t, filepath.Join(t.TempDir(), "c.db"))
	a, A, B := e.twoDevices("alice")
	a.token(A)
	hs.failReads.Store(true)
	e.want(e.do("GET", "/v1/accounts/"+a.id+"/devices", "", nil), 503, "unavailable")
	e.want(a.post(A, a.revokeLink(A, B)), 503, "unavailable")
	hs.failReads.Store(false)
	// The write itself fails: nothing is accepted.
	e2 := newEnv(t, func(c *Config) { c.Store = failingAppend{hs.Store} })
	a2 := &tacct{e: e2, id: a.id, tokens: map[chain.DeviceID]string{}}
	a2.sync()
	e2.want(a2.post(A, a2.revokeLink(A, B)), 503, "unavailable")
	a.sync()
	if !a.st.IsActive(B.id) || a.st.Head().Seq != 1 {
		t.Fatal("a failed append changed the chain")
	}
}

// ---- a private PostgreSQL cluster that the test can stop and start ------

type pgCluster struct {
	t       *testing.T
	dir     string
	bin     string
	port    int
	asUser  []string
	running bool
}

func (c *pgCluster) url() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=3", c.port)
}

func (c *pgCluster) run(name string, args ...string) error {
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	if len(c.asUser) > 0 {
		cmd = exec.Command(c.asUser[0], append(append(c.asUser[1:], filepath.Join(c.bin, name)), args...)...)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v\n%s", name, err, out)
	}
	return nil
}

func (c *pgCluster) start() {
	c.t.Helper()
	err := c.run("pg_ctl", "-D", filepath.Join(c.dir, "data"), "-l", filepath.Join(c.dir, "log"), "-w", "-t", "30",
		"-o", fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off", c.port, c.dir), "start")
	if err != nil {
		c.t.Fatal(err)
	}
	c.running = true
}

func (c *pgCluster) stop() {
	c.t.Helper()
	if err := c.run("pg_ctl", "-D", filepath.Join(c.dir, "data"), "-m", "fast", "-w", "stop"); err != nil {
		c.t.Fatal(err)
	}
	c.running = false
}

// privatePostgres initdbs and starts a throwaway cluster for this test
// only (other tests share $ENIGM_TEST_POSTGRES_URL and must not see it
// stop).
func privatePostgres(t *testing.T) *pgCluster {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		if p, err := exec.LookPath("initdb"); err == nil {
			bins = []string{p}
		}
	}
	if len(bins) == 0 {
		testenv.Missing(t, "PostgreSQL server binaries (initdb, pg_ctl)", errors.New("not installed"))
	}
	c := &pgCluster{t: t, bin: filepath.Dir(bins[len(bins)-1])}
	dir, err := os.MkdirTemp("", "enigm-pg-")
	testkit.NoErr(t, err)
	c.dir = dir
	t.Cleanup(func() {
		if c.running {
			c.run("pg_ctl", "-D", filepath.Join(c.dir, "data"), "-m", "immediate", "-w", "stop")
		}
		os.RemoveAll(dir)
	})
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root.
		u, err := user.Lookup("postgres")
		if err != nil {
			testenv.Missing(t, "the postgres user", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		testkit.NoErr(t, os.Chown(dir, uid, gid))
		c.asUser = []string{"runuser", "-u", "postgres", "--"}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	testkit.NoErr(t, err)
	c.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	if err := c.run("initdb", "-D", filepath.Join(dir, "data"), "-A", "trust", "-U", "postgres", "--no-sync"); err != nil {
		testenv.Missing(t, "a private PostgreSQL cluster", err)
	}
	c.start()
	return c
}

// The database disappears in the middle of a request (PostgreSQL stopped
// after the handler's reads, before its write), and while requests come
// in: each gets 503 unavailable, nothing is accepted half-way, nothing
// stored is lost, and the server recovers when the database is back.
func TestPostgresRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	pg := privatePostgres(t)
	e, hs := newHookedEnv(t, pg.url())
	a, A, B := e.aliceAB()
	S := newDev("sam/S")
	s := e.newAccount("sam", S, chain.DefaultPolicy())
	a.token(A)
	e.want(e.do("POST", "/v1/messages", s.token(S), map[string]any{"kind": "message", "envelopes": []env1{envTo(a, B, "queued")}}), http.StatusAccepted, "")

	// Mid-request: the revocation's transaction meets a stopped database.
	hs.set(func() { pg.stop() })
	e.want(a.post(A, a.revokeLink(A, B)), 503, "unavailable")
	hs.set(nil)
	// While it is down.
	e.want(e.do("GET", "/healthz", "", nil), 503, "")
	e.want(e.do("GET", "/v1/accounts/"+a.id+"/devices", "", nil), 503, "unavailable")
	_, r := e.tryAccount("bob", newDev("bob/A"), chain.DefaultPolicy(), nil, "")
	e.want(r, 503, "unavailable")
	pg.start()

	// Back: the first request on a pooled connection may still find it
	// broken; the server answers 503 for it, and then recovers.
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := e.do("GET", "/v1/accounts/"+a.id+"/devices", "", nil)
		if r.code == 200 {
			break
		}
		if r.code != 503 || time.Now().After(deadline) {
			t.Fatalf("after the restart: %d %s", r.code, r.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.want(e.do("GET", "/healthz", "", nil), 200, "")
	a.sync()
	if a.st.Head().Seq != 1 || !a.st.IsActive(B.id) {
		t.Fatal("the interrupted revocation was half-accepted")
	}
	if _, err := hs.Store.AccountByName(context.Background(), "bob"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an account was created while the database was down: %v", err)
	}
	if got := a.fetch(B); len(got) != 1 {
		t.Fatalf("B's queued envelope: %d", len(got))
	}
	// The revocation goes through now, with its envelope deletion.
	e.want(a.post(A, a.revokeLink(A, B)), http.StatusCreated, "")
	left, _ := hs.Store.Envelopes(context.Background(), a.id, B.id.String(), 10)
	if len(left) != 0 {
		t.Fatal("the revoked device's envelope survived")
	}
}

// Shutdown stops accepting connections and finishes the requests it
// accepted: a revocation in flight when SIGTERM arrives is stored and
// answered.
func TestGracefulShutdown(t *testing.T) {
	e, hs := newHookedEnv(t, filepath.Join(t.TempDir(), "c.db"))
	a, A, B := e.twoDevices("alice")
	tok := a.token(A)
	l := a.revokeLink(A, B)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	testkit.NoErr(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- e.srv.Serve(ctx, ln) }()

	entered, release := make(chan struct{}), make(chan struct{})
	hs.set(func() { close(entered); <-release })
	type result struct {
		code int
		err  error
	}
	got := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("POST", "http://"+ln.Addr().String()+"/v1/accounts/"+a.id+"/links", strings.NewReader(`{"link":"`+enc64(l.Bytes())+`"}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			got <- result{err: err}
			return
		}
		resp.Body.Close()
		got <- result{code: resp.StatusCode}
	}()
	<-entered
	cancel() // SIGTERM
	// New connections are refused once shutdown has begun.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the listener still accepts connections after shutdown began")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-served:
		t.Fatalf("Serve returned before the accepted request finished: %v", err)
	default:
	}
	close(release)
	res := <-got
	if res.err != nil || res.code != http.StatusCreated {
		t.Fatalf("the accepted request: %d %v", res.code, res.err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	hs.set(nil)
	a.sync()
	if a.st.IsActive(B.id) {
		t.Fatal("the accepted revocation was lost")
	}
}
