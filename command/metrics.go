package command

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Prometheus text exposition (format 0.0.4), written by hand: request
// counters by route, method and status; a latency histogram per route;
// counters of workflow events.

var latencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

type histogram struct {
	counts []atomic.Uint64 // one per bucket, then +Inf
	sumNs  atomic.Uint64
}

type labeled struct {
	mu sync.Mutex
	m  map[string]*atomic.Uint64
}

func (l *labeled) inc(label string) { l.add(label, 1) }

func (l *labeled) add(label string, n uint64) {
	l.mu.Lock()
	c, ok := l.m[label]
	if !ok {
		if l.m == nil {
			l.m = map[string]*atomic.Uint64{}
		}
		c = new(atomic.Uint64)
		l.m[label] = c
	}
	l.mu.Unlock()
	c.Add(n)
}

func (l *labeled) snapshot() ([]string, map[string]uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]uint64, len(l.m))
	keys := make([]string, 0, len(l.m))
	for k, v := range l.m {
		keys = append(keys, k)
		out[k] = v.Load()
	}
	slices.Sort(keys)
	return keys, out
}

type metrics struct {
	requests labeled // route\x00method\x00code

	hmu   sync.Mutex
	hists map[string]*histogram // by route

	linksAppended     labeled // link type
	workflow          labeled // audit action
	envelopesAccepted atomic.Uint64
	envelopesRejected atomic.Uint64
	envelopesFetched  atomic.Uint64
	rateLimited       labeled // bucket name
	sends             labeled // "message_form" or "envelopes" (the JSON body of older clients)
	integrityFailures atomic.Uint64
	headReads         [2]atomic.Uint64 // headFromDatabase, headFromCache
	started           time.Time
}

// Where a request learned an account's head.
const (
	headFromDatabase = iota
	headFromCache
)

func newMetrics() *metrics {
	return &metrics{hists: map[string]*histogram{}, started: time.Now()}
}

// observe counts one request. Every label takes a value from a fixed set,
// whatever the caller sends, so that no request can add a series: route is
// a registered pattern or "other" (never the raw path), method one of
// HTTP's or "other", code a status HTTP defines or its class.
func (m *metrics) observe(route, method string, code int, d time.Duration) {
	m.requests.inc(route + "\x00" + methodLabel(method) + "\x00" + codeLabel(code))
	m.hmu.Lock()
	h, ok := m.hists[route]
	if !ok {
		h = &histogram{counts: make([]atomic.Uint64, len(latencyBuckets)+1)}
		m.hists[route] = h
	}
	m.hmu.Unlock()
	sec := d.Seconds()
	i, _ := slices.BinarySearch(latencyBuckets, sec)
	h.counts[i].Add(1)
	h.sumNs.Add(uint64(d.Nanoseconds()))
}

// methodLabel is method when HTTP defines it, else "other".
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return method
	}
	return "other"
}

// codeLabel is the status code when HTTP defines it ("404"), else its class
// ("4xx"), else "other". A handler that wrote nothing answered 200.
func codeLabel(code int) string {
	switch {
	case code == 0:
		return "200"
	case http.StatusText(code) != "":
		return strconv.Itoa(code)
	case code >= 100 && code <= 599:
		return strconv.Itoa(code/100) + "xx"
	}
	return "other"
}

func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

func (m *metrics) write(w io.Writer) {
	fmt.Fprintln(w, "# HELP enigm_command_requests_total HTTP requests by route pattern, method and status code.")
	fmt.Fprintln(w, "# TYPE enigm_command_requests_total counter")
	keys, vals := m.requests.snapshot()
	for _, k := range keys {
		p := strings.SplitN(k, "\x00", 3)
		fmt.Fprintf(w, "enigm_command_requests_total{route=\"%s\",method=\"%s\",code=\"%s\"} %d\n", escapeLabel(p[0]), p[1], p[2], vals[k])
	}
	fmt.Fprintln(w, "# HELP enigm_command_request_duration_seconds HTTP request latency by route pattern.")
	fmt.Fprintln(w, "# TYPE enigm_command_request_duration_seconds histogram")
	m.hmu.Lock()
	routes := make([]string, 0, len(m.hists))
	for r := range m.hists {
		routes = append(routes, r)
	}
	hs := make(map[string]*histogram, len(m.hists))
	for r, h := range m.hists {
		hs[r] = h
	}
	m.hmu.Unlock()
	slices.Sort(routes)
	for _, r := range routes {
		h := hs[r]
		var cum uint64
		lr := escapeLabel(r)
		for i, le := range latencyBuckets {
			cum += h.counts[i].Load()
			fmt.Fprintf(w, "enigm_command_request_duration_seconds_bucket{route=\"%s\",le=\"%s\"} %d\n", lr, strconv.FormatFloat(le, 'g', -1, 64), cum)
		}
		cum += h.counts[len(latencyBuckets)].Load()
		fmt.Fprintf(w, "enigm_command_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %d\n", lr, cum)
		fmt.Fprintf(w, "enigm_command_request_duration_seconds_sum{route=\"%s\"} %s\n", lr, strconv.FormatFloat(float64(h.sumNs.Load())/1e9, 'g', -1, 64))
		fmt.Fprintf(w, "enigm_command_request_duration_seconds_count{route=\"%s\"} %d\n", lr, cum)
	}
	writeLabeled(w, "enigm_command_links_appended_total", "Chain links appended, by link type.", "type", &m.linksAppended)
	writeLabeled(w, "enigm_command_workflow_events_total", "Workflow steps and admin actions recorded in the audit log, by action.", "action", &m.workflow)
	writeLabeled(w, "enigm_command_rate_limited_total", "Requests refused by a rate limit, by bucket.", "bucket", &m.rateLimited)
	writeLabeled(w, "enigm_command_sends_total", "Sends the relay queued, by body: one message form (message_form) or one ciphertext per device from an older client (envelopes).", "body", &m.sends)
	for _, c := range []struct {
		name, help string
		v          uint64
	}{
		{"enigm_command_envelopes_accepted_total", "Relay envelopes accepted for active devices.", m.envelopesAccepted.Load()},
		{"enigm_command_envelopes_rejected_total", "Relay envelopes rejected (device not active or unknown account).", m.envelopesRejected.Load()},
		{"enigm_command_envelopes_delivered_total", "Relay envelopes handed to their device.", m.envelopesFetched.Load()},
		{"enigm_command_chain_integrity_failures_total", "Stored chains that failed the server's own verification.", m.integrityFailures.Load()},
	} {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", c.name, c.help, c.name, c.name, c.v)
	}
	fmt.Fprintln(w, "# HELP enigm_command_head_reads_total Account heads a request used, by source: read from the database, or a cached head known fresh from the database's announcements.")
	fmt.Fprintln(w, "# TYPE enigm_command_head_reads_total counter")
	fmt.Fprintf(w, "enigm_command_head_reads_total{source=\"database\"} %d\n", m.headReads[headFromDatabase].Load())
	fmt.Fprintf(w, "enigm_command_head_reads_total{source=\"announced\"} %d\n", m.headReads[headFromCache].Load())
	fmt.Fprintf(w, "# HELP enigm_command_start_time_seconds Start time of this instance.\n# TYPE enigm_command_start_time_seconds gauge\nenigm_command_start_time_seconds %d\n", m.started.Unix())
}

func writeLabeled(w io.Writer, name, help, label string, l *labeled) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", name, help, name)
	keys, vals := l.snapshot()
	for _, k := range keys {
		fmt.Fprintf(w, "%s{%s=\"%s\"} %d\n", name, label, escapeLabel(k), vals[k])
	}
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	s.metrics.write(w)
	s.cache.writeMetrics(w)
	n, b := s.resp.stats()
	fmt.Fprintf(w, "# HELP enigm_command_response_cache_entries Encoded whole-chain responses cached.\n# TYPE enigm_command_response_cache_entries gauge\nenigm_command_response_cache_entries %d\n", n)
	fmt.Fprintf(w, "# HELP enigm_command_response_cache_bytes Bytes of the cached whole-chain responses (budget: an eighth of the state cache's).\n# TYPE enigm_command_response_cache_bytes gauge\nenigm_command_response_cache_bytes %d\n", b)
	if h := s.heads; h != nil {
		up := 0
		if h.liveGauge.Load() {
			up = 1
		}
		fmt.Fprintf(w, "# HELP enigm_command_head_listener_up Whether this instance is subscribed to the database's head announcements (PostgreSQL LISTEN).\n# TYPE enigm_command_head_listener_up gauge\nenigm_command_head_listener_up %d\n", up)
		fmt.Fprintf(w, "# HELP enigm_command_head_announcements_total Head announcements received from the database.\n# TYPE enigm_command_head_announcements_total counter\nenigm_command_head_announcements_total %d\n", h.announcements.Load())
		fmt.Fprintf(w, "# HELP enigm_command_head_listener_losses_total Times the head listener lost its subscription.\n# TYPE enigm_command_head_listener_losses_total counter\nenigm_command_head_listener_losses_total %d\n", h.losses.Load())
	}
}

// writeMetrics writes the state cache's lookups by result, evictions,
// entries, estimated bytes and budget.
func (c *stateCache) writeMetrics(w io.Writer) {
	fmt.Fprintln(w, "# HELP enigm_command_state_cache_lookups_total Verified-state cache lookups by result: hit (the state at the current head was cached), extend (an older state was: only new links were verified), miss (the whole chain was verified).")
	fmt.Fprintln(w, "# TYPE enigm_command_state_cache_lookups_total counter")
	for i, name := range cacheResultNames {
		fmt.Fprintf(w, "enigm_command_state_cache_lookups_total{result=\"%s\"} %d\n", name, c.lookups[i].Load())
	}
	entries, bytes := c.stats()
	fmt.Fprintf(w, "# HELP enigm_command_state_cache_evictions_total States evicted from the verified-state cache to stay within its budget.\n# TYPE enigm_command_state_cache_evictions_total counter\nenigm_command_state_cache_evictions_total %d\n", c.evictions.Load())
	fmt.Fprintf(w, "# HELP enigm_command_state_cache_entries Accounts whose verified state is cached.\n# TYPE enigm_command_state_cache_entries gauge\nenigm_command_state_cache_entries %d\n", entries)
	fmt.Fprintf(w, "# HELP enigm_command_state_cache_bytes Estimated heap bytes of the cached verified states.\n# TYPE enigm_command_state_cache_bytes gauge\nenigm_command_state_cache_bytes %d\n", bytes)
	fmt.Fprintf(w, "# HELP enigm_command_state_cache_budget_bytes Memory budget of the verified-state cache (--state-cache-mib).\n# TYPE enigm_command_state_cache_budget_bytes gauge\nenigm_command_state_cache_budget_bytes %d\n", c.budget)
}
