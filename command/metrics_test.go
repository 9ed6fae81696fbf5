package command

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// requestSeries returns the label sets of enigm_command_requests_total and
// of the latency histogram's _count series in the metrics text.
func requestSeries(t *testing.T, e *env) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(string(e.want(e.do("GET", "/metrics", "", nil), 200, "").body), "\n") {
		if strings.HasPrefix(line, "enigm_command_requests_total{") || strings.HasPrefix(line, "enigm_command_request_duration_seconds_count{") {
			out = append(out, line[:strings.LastIndexByte(line, ' ')])
		}
	}
	return out
}

// Requests with invented methods and paths add no series to /metrics: an
// unauthenticated caller cannot grow the server's memory or a scraper's
// database one label value at a time.
func TestMetricsLabelsAreBounded(t *testing.T) {
	e := newEnv(t)
	// One of each kind first, so that every series the flood may touch
	// exists already.
	e.do("GET", "/v1/no-such-path", "", nil)
	e.do("POST", "/v1/no-such-path", "", nil)
	e.do("FROB", "/v1/info", "", nil)
	e.do("GET", "/metrics", "", nil)
	before := requestSeries(t, e)

	for i := range 40 {
		e.do(fmt.Sprintf("X-METHOD-%d", i), "/v1/info", "", nil)
		e.do(fmt.Sprintf("M%d", i), fmt.Sprintf("/v1/accounts/%d/chain", i), "", nil)
		e.do("GET", fmt.Sprintf("/invented/%d?q=%d", i, i), "", nil)
		e.do("POST", fmt.Sprintf("/v1/%d", i), "", nil)
	}
	after := requestSeries(t, e)
	if !slices.Equal(before, after) {
		t.Fatalf("invented methods and paths changed the series:\nbefore %d:\n%s\nafter %d:\n%s",
			len(before), strings.Join(before, "\n"), len(after), strings.Join(after, "\n"))
	}

	// Every label value is a known one.
	routes := append(e.srv.Routes(), "other")
	label := regexp.MustCompile(`(route|method|code)="([^"]*)"`)
	for _, s := range after {
		for _, m := range label.FindAllStringSubmatch(s, -1) {
			ok := false
			switch m[1] {
			case "route":
				ok = slices.Contains(routes, m[2])
			case "method":
				ok = slices.Contains([]string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "other"}, m[2])
			case "code":
				ok = regexp.MustCompile(`^([1-5][0-9][0-9]|[1-5]xx|other)$`).MatchString(m[2])
			}
			if !ok {
				t.Errorf("series %s: %s=%q is not a known value", s, m[1], m[2])
			}
		}
	}
}

func TestMetricLabelValues(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"GET", "GET"}, {"HEAD", "HEAD"}, {"DELETE", "DELETE"}, {"get", "other"}, {"FROB", "other"}, {"", "other"},
	} {
		if got := methodLabel(c.in); got != c.want {
			t.Errorf("methodLabel(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	for _, c := range []struct {
		in   int
		want string
	}{{0, "200"}, {200, "200"}, {404, "404"}, {429, "429"}, {599, "5xx"}, {299, "2xx"}, {99, "other"}, {600, "other"}, {-1, "other"}} {
		if got := codeLabel(c.in); got != c.want {
			t.Errorf("codeLabel(%d) = %q, want %q", c.in, got, c.want)
		}
	}
}
