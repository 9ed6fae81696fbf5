package command

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/command/store"
	"github.com/enigm/enigm/command/store/storetest"
)

// on returns a view of account a whose requests go to server e (another
// instance over the same database). Tokens are shared.
func (a *tacct) on(e *env) *tacct {
	b := *a
	b.e = e
	return &b
}

// deviceState returns the state the server's device list gives device d.
func (a *tacct) deviceState(d *tdev) string {
	a.e.t.Helper()
	return a.devices()[d.id.String()].State
}

func (e *env) metric(name string) string {
	e.t.Helper()
	for _, line := range strings.Split(string(e.do("GET", "/metrics", "", nil).body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

// Two instances over one PostgreSQL database. A revocation appended
// through the first is refused by the second at once for everything that
// decides eligibility (those requests read the head from the database),
// and the second's public device list shows it as soon as the database's
// announcement reached it: the cached head is never older than the last
// announcement processed.
func TestRevocationAcrossInstances(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	e1, e2 := newEnvDSN(t, dsn), newEnvDSN(t, dsn)
	e1.waitListening()
	e2.waitListening()
	A, B := newDev("alice/A"), newDev("alice/B")
	a := e1.newAccount("alice", A, chain.DefaultPolicy())
	a.add(B, A)
	a2 := a.on(e2)
	e2.waitAnnounced(a.id, 1)

	// The second instance serves the device list from its cache.
	if a2.deviceState(B) != "active" || a2.deviceState(B) != "active" {
		t.Fatal("B is not active on the second instance")
	}
	if v := e2.metric(`enigm_command_head_reads_total{source="announced"}`); v == "" || v == "0" {
		t.Fatalf("no read served from the announced head (%q)", v)
	}
	tokB := a2.login(B)
	e2.want(e2.do("GET", "/v1/messages", tokB, nil), 200, "")

	a.sync()
	e1.want(a.post(A, a.revokeLink(A, B)), http.StatusCreated, "")
	e2.waitAnnounced(a.id, 2)

	if st := a2.deviceState(B); st != "revoked" {
		t.Fatalf("after the announcement the second instance lists B as %q", st)
	}
	a2.sync()
	if a2.st.Head().Seq != 2 {
		t.Fatalf("the second instance serves head %d", a2.st.Head().Seq)
	}
	e2.want(e2.do("GET", "/v1/messages", tokB, nil), 401, "unauthorized")
	e2.want(e2.do("POST", "/v1/auth/challenge", "", map[string]string{"account_id": a.id, "device_id": B.id.String()}), 403, "device_revoked")
	r := e2.want(e2.do("POST", "/v1/messages", a2.token(A), map[string]any{"kind": "message", "envelopes": []env1{envTo(a, B, "late")}}), http.StatusAccepted, "")
	if !strings.Contains(string(r.body), `"reason":"not_active"`) {
		t.Fatalf("an envelope for the revoked device: %s", r.body)
	}
}

// scriptedHeads stands for the database's announcements: the test decides
// when the listener subscribes, what it hears and when it loses the
// connection.
type scriptedHeads struct {
	store.Store
	ev chan func(store.HeadEvents)
}

func (s *scriptedHeads) WatchHeads(ctx context.Context, ev store.HeadEvents) {
	for {
		select {
		case f := <-s.ev:
			f(ev)
		case <-ctx.Done():
			ev.Lost(ctx.Err())
			return
		}
	}
}

// do runs f on the watcher's goroutine and waits for the server to have
// processed it.
func (s *scriptedHeads) do(e *env, f func(store.HeadEvents)) {
	done := make(chan struct{})
	s.ev <- func(ev store.HeadEvents) { f(ev); close(done) }
	<-done
}

// The window of the guarantee, made visible with scripted announcements:
// between a revocation's commit and its announcement the second instance
// may still list the device as active, but it never lets the device act;
// the announcement ends the window; and without a subscription every read
// goes to the database.
func TestAnnouncedHeadWindow(t *testing.T) {
	engines(t, func(t *testing.T, dsn string) {
		e1 := newEnvDSN(t, dsn)
		inner, err := store.Open(context.Background(), dsn)
		must(t, err)
		t.Cleanup(func() { inner.Close() })
		sh := &scriptedHeads{Store: inner, ev: make(chan func(store.HeadEvents))}
		e2 := newEnvDSN(t, dsn, func(c *Config) { c.Store = sh })
		sh.do(e2, func(ev store.HeadEvents) { ev.Listening() })

		A, B, C := newDev("alice/A"), newDev("alice/B"), newDev("alice/C")
		a := e1.newAccount("alice", A, chain.DefaultPolicy())
		a.add(B, A)
		a2 := a.on(e2)
		if a2.deviceState(B) != "active" {
			t.Fatal("B is not active")
		}
		tokB := a2.login(B)

		// Revoked through the first instance; the announcement is held.
		e1.want(a.post(A, a.revokeLink(A, B)), http.StatusCreated, "")
		if st := a2.deviceState(B); st != "active" {
			t.Fatalf("without an announcement the cached list changed (%q): the cache is not in use", st)
		}
		e2.want(e2.do("GET", "/v1/messages", tokB, nil), 401, "unauthorized")
		e2.want(e2.do("POST", "/v1/auth/challenge", "", map[string]string{"account_id": a.id, "device_id": B.id.String()}), 403, "device_revoked")
		r := e2.want(e2.do("POST", "/v1/messages", a2.token(A), map[string]any{"kind": "message", "envelopes": []env1{envTo(a, B, "late")}}), http.StatusAccepted, "")
		if !strings.Contains(string(r.body), `"reason":"not_active"`) {
			t.Fatalf("an envelope for the revoked device: %s", r.body)
		}

		// The announcement arrives: the next read is current.
		a.sync()
		head := store.Head{Seq: a.st.Head().Seq, Hash: a.st.Head().Hash.String()}
		sh.do(e2, func(ev store.HeadEvents) { ev.Changed(a.id, &head) })
		if st := a2.deviceState(B); st != "revoked" {
			t.Fatalf("after the announcement B is %q", st)
		}

		// The listener is lost: every read goes to the database, so a change
		// made meanwhile shows at once.
		sh.do(e2, func(ev store.HeadEvents) { ev.Lost(nil) })
		a.add(C, A)
		if st := a2.deviceState(C); st != "active" {
			t.Fatalf("with the listener down, C is %q", st)
		}
		// Subscribed again, heads read before are not trusted: C's addition
		// was never announced, and the entry read while down is read again.
		sh.do(e2, func(ev store.HeadEvents) { ev.Listening() })
		before := e2.metric(`enigm_command_head_reads_total{source="database"}`)
		a2.deviceState(C)
		if after := e2.metric(`enigm_command_head_reads_total{source="database"}`); after == before {
			t.Fatal("a head read while the listener was down was served after it came back")
		}
	})
}
