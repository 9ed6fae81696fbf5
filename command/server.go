package command

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/command/store"
)

// accountsInMemory scales the per-account bookkeeping an instance keeps
// besides the state cache (which has a budget in bytes,
// Config.StateCacheBytes): head marks and head announcements.
const accountsInMemory = 50_000

// marksInMemory bounds the head marks an instance keeps in memory (the
// rest are read from the marks file when needed).
const marksInMemory = 2 * accountsInMemory

// Server is an Enigm Command instance: the HTTP API over a store. Several
// instances may share one PostgreSQL database.
type Server struct {
	cfg      Config
	log      *slog.Logger
	store    store.Store
	ownStore bool
	serverID string
	cache    *stateCache
	resp     *respCache   // encoded whole-chain responses
	heads    *headWatch   // nil unless the store announces head changes
	marks    *store.Marks // the highest head verified per account, in DataDir
	limiter  *limiter
	// challengeKey MACs auth challenges (auth.go); shared by the
	// instances through the database's settings.
	challengeKey []byte
	metrics      *metrics
	keys         *orgKeys
	tlog         *serverLog       // nil without Config.LogSigner (log.go)
	rwit         *recoveryWitness // nil without witnesses (recovery_witness.go)
	routes       []route
	handler      http.Handler

	stop      chan struct{}
	done      chan struct{}
	watchStop context.CancelFunc
	watchDone chan struct{}
	closeOnce sync.Once
}

type route struct {
	method, path string
	h            func(w http.ResponseWriter, r *http.Request) *apiError
}

// New opens the store (migrating it) and returns a Server. Close it.
func New(cfg Config) (*Server, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: c, log: c.Logger, cache: newStateCache(c.StateCacheBytes), resp: newRespCache(c.StateCacheBytes / 8), metrics: newMetrics(),
		stop: make(chan struct{}), done: make(chan struct{})}
	s.limiter = newLimiter(c.Clock)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s.store = c.Store
	if s.store == nil {
		if s.store, err = store.Open(ctx, c.dsn()); err != nil {
			return nil, fmt.Errorf("command: opening the database: %w", err)
		}
		s.ownStore = true
	}
	if s.marks, err = store.OpenMarks(ctx, filepath.Join(c.DataDir, HeadMarksFile), filepath.Join(c.DataDir, HeadMarksKeyFile), marksInMemory); err != nil {
		s.closeStore()
		return nil, fmt.Errorf("command: opening the head marks: %w", err)
	}
	var b [16]byte
	rand.Read(b[:])
	if s.serverID, err = s.store.Setting(ctx, "server_id", hex.EncodeToString(b[:])); err != nil {
		s.closeStore()
		return nil, fmt.Errorf("command: reading the server id: %w", err)
	}
	if err := s.loadChallengeKey(ctx); err != nil {
		s.closeStore()
		return nil, fmt.Errorf("command: reading the auth challenge key: %w", err)
	}
	if w, ok := s.store.(store.HeadWatcher); ok {
		s.heads = newHeadWatch(4 * accountsInMemory)
		var wctx context.Context
		wctx, s.watchStop = context.WithCancel(context.Background())
		s.watchDone = make(chan struct{})
		go func() {
			defer close(s.watchDone)
			w.WatchHeads(wctx, &loggedHeads{headWatch: s.heads, log: s.log})
		}()
	}
	s.keys = newOrgKeys(&s.cfg)
	s.routes = s.routeTable()
	mux := http.NewServeMux()
	for _, rt := range s.routes {
		mux.Handle(rt.method+" "+rt.path, s.wrap(rt.method+" "+rt.path, rt.h))
	}
	mux.Handle("/", s.wrap("other", func(w http.ResponseWriter, r *http.Request) *apiError {
		return notFound("no such endpoint: %s %s", r.Method, r.URL.Path)
	}))
	if err := s.startLog(mux); err != nil {
		s.closeStore()
		return nil, fmt.Errorf("command: the transparency log: %w", err)
	}
	if err := s.startRecoveryWitness(); err != nil {
		close(s.stop)
		s.stopLog()
		s.closeStore()
		return nil, fmt.Errorf("command: witnessed recoveries: %w", err)
	}
	s.handler = mux
	if c.JanitorInterval > 0 {
		go s.janitor(c.JanitorInterval)
	} else {
		close(s.done)
	}
	if c.MinRecoveryDelay == 0 {
		s.log.Warn("DEVELOPMENT SERVER: recovery waiting periods of zero are accepted, so a recovery can complete before any device could veto it; never run this in production (drop --dev-allow-zero-recovery-delay)",
			"min_recovery_delay_seconds", 0)
	}
	s.log.Info("enigm command ready", "engine", s.store.Engine(), "schema_version", s.store.SchemaVersion(), "server_id", s.serverID)
	return s, nil
}

func (s *Server) routeTable() []route {
	return []route{
		{"GET", "/healthz", s.handleHealth},
		{"GET", "/metrics", func(w http.ResponseWriter, r *http.Request) *apiError { s.handleMetrics(w, r); return nil }},
		{"GET", "/v1/info", s.handleInfo},
		{"GET", "/v1/names/{name}", s.handleName},
		{"GET", "/v1/invites/{code}", s.handleInvite},
		{"POST", "/v1/accounts", s.handleCreateAccount},
		{"GET", "/v1/accounts/{id}/chain", s.handleChain},
		{"GET", "/v1/accounts/{id}/devices", s.handleDevices},
		{"POST", "/v1/accounts/{id}/links", s.handleAppendLink},
		{"POST", "/v1/accounts/{id}/enrollments", s.handleEnroll},
		{"GET", "/v1/accounts/{id}/enrollments", s.handleListEnrollments},
		{"GET", "/v1/enrollments/{rid}", s.handleGetEnrollment},
		{"POST", "/v1/enrollments/{rid}/approve", s.handleApprove},
		{"POST", "/v1/enrollments/{rid}/complete", s.handleComplete},
		{"POST", "/v1/accounts/{id}/recoveries", s.handleRecoveryRequest},
		{"GET", "/v1/recoveries/{rid}", s.handleGetRecovery},
		{"GET", "/v1/recoveries/{rid}/witness", s.handleRecoveryWitness},
		{"POST", "/v1/recoveries/{rid}/complete", s.handleRecoveryComplete},
		{"POST", "/v1/auth/challenge", s.handleChallenge},
		{"POST", "/v1/auth/token", s.handleToken},
		{"POST", "/v1/messages", s.handleSend},
		{"GET", "/v1/messages", s.handleFetch},
		{"POST", "/v1/messages/ack", s.handleAck},
		{"GET", "/v1/admin/accounts", s.handleAdminAccounts},
		{"GET", "/v1/admin/accounts/{id}/devices", s.handleAdminDevices},
		{"POST", "/v1/admin/accounts/{id}/revoke", s.handleAdminRevoke},
		{"POST", "/v1/admin/accounts/{id}/policy", s.handleAdminPolicy},
		{"GET", "/v1/admin/enrollments", s.handleAdminEnrollments},
		{"POST", "/v1/admin/enrollments/{rid}/approve", s.handleAdminApprove},
		{"POST", "/v1/admin/enrollments/{rid}/deny", s.handleAdminDeny},
		{"GET", "/v1/admin/recoveries", s.handleAdminRecoveries},
		{"POST", "/v1/admin/recoveries/{rid}/review", s.handleAdminReview},
		{"GET", "/v1/admin/audit", s.handleAdminAudit},
		{"GET", "/v1/accounts/{id}/links/{seq}/proof", s.handleLinkProof},
		{"GET", "/v1/accounts/{id}/freshness", s.handleFreshness},
		{"GET", "/v1/log/consistency", s.handleConsistency},
	}
}

// Routes returns the "METHOD /path" patterns the server serves.
func (s *Server) Routes() []string {
	out := make([]string, len(s.routes))
	for i, rt := range s.routes {
		out[i] = rt.method + " " + rt.path
	}
	return out
}

// Handler returns the HTTP handler of the API.
func (s *Server) Handler() http.Handler { return s.handler }

// statusWriter records the status code a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// wrap turns a handler into an http.Handler with error responses, panic
// recovery, metrics and one log line per request. Nothing secret is
// logged: no header, no body, no query.
func (s *Server) wrap(name string, h func(w http.ResponseWriter, r *http.Request) *apiError) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		start := time.Now()
		w := &statusWriter{ResponseWriter: rw}
		var e *apiError
		func() {
			defer func() {
				if p := recover(); p != nil {
					e = internal(fmt.Errorf("panic: %v\n%s", p, debug.Stack()))
				}
			}()
			e = h(w, r)
		}()
		if e != nil && w.code == 0 {
			writeError(w, e)
		}
		d := time.Since(start)
		s.metrics.observe(name, r.Method, w.code, d)
		level := slog.LevelInfo
		attrs := []any{"method", r.Method, "route", name, "status", w.code, "duration_ms", float64(d.Microseconds()) / 1000, "remote", clientAddr(r)}
		if e != nil {
			attrs = append(attrs, "code", e.code)
			if e.cause != nil {
				attrs = append(attrs, "err", e.cause.Error())
			}
			if e.status >= 500 {
				level = slog.LevelError
			}
		}
		if name == "GET /metrics" || name == "GET /healthz" {
			level = slog.LevelDebug
		}
		s.log.Log(r.Context(), level, "request", attrs...)
	})
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) *apiError {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, api.Health{Status: "unavailable", SchemaVersion: s.store.SchemaVersion()})
		return nil
	}
	writeJSON(w, http.StatusOK, api.Health{Status: "ok", SchemaVersion: s.store.SchemaVersion()})
	return nil
}

func (s *Server) handleInfo(w http.ResponseWriter, r *http.Request) *apiError {
	writeJSON(w, http.StatusOK, api.Info{
		Version:                 1,
		ServerID:                s.serverID,
		MinRecoveryDelaySeconds: int64(s.cfg.MinRecoveryDelay / time.Second),
		EnrollmentTTLSeconds:    int64(s.cfg.EnrollmentTTL / time.Second),
		TokenTTLSeconds:         int64(s.cfg.TokenTTL / time.Second),
		Log:                     s.logInfo(),
	})
	return nil
}

// janitor expires enrollments and sweeps expired tokens and challenges.
func (s *Server) janitor(every time.Duration) {
	defer close(s.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.sweep(context.Background())
		}
	}
}

func (s *Server) sweep(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ids, err := s.store.Expire(ctx, s.now())
	if err != nil {
		s.log.Warn("sweeping expired requests failed", "err", err)
		return
	}
	if len(ids) > 0 {
		s.metrics.workflow.add("enrollment.expire", uint64(len(ids)))
		s.log.Info("enrollment requests expired", "count", len(ids))
	}
	s.limiter.prune()
}

// Serve serves the API on ln until ctx ends, then shuts down gracefully:
// it stops accepting connections and waits (up to Config.ShutdownTimeout)
// for every accepted request to finish. It does not close the Server.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.log.Info("shutting down: finishing accepted requests", "timeout", s.cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	err := hs.Shutdown(sctx)
	if e := <-errc; !errors.Is(e, http.ErrServerClosed) && err == nil {
		err = e
	}
	if err != nil {
		return fmt.Errorf("command: shutdown: %w", err)
	}
	s.log.Info("all accepted requests finished")
	return nil
}

// Close stops background work and closes the database (unless it was
// passed in Config.Store). Call it after Serve returned.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.done
		s.stopLog()
		s.stopRecoveryWitness()
		if s.watchStop != nil {
			s.watchStop()
			<-s.watchDone
		}
		err = s.closeStore()
	})
	return err
}

func (s *Server) closeStore() error {
	var err error
	if s.ownStore {
		err = s.store.Close()
	}
	if s.marks != nil {
		if merr := s.marks.Close(); err == nil {
			err = merr
		}
	}
	return err
}

// count records committed audit entries in the workflow metrics.
func (s *Server) count(entries []store.AuditEntry) {
	for _, e := range entries {
		s.metrics.workflow.inc(e.Action)
	}
}
