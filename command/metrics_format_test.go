package command

import (
	"bytes"
	"fmt"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// /metrics is read by Prometheus, not by us: after real workflows, denials,
// a rate-limited request and invented methods, Prometheus's own text
// parser (prometheus/common/expfmt) reads every family, each with its
// HELP and TYPE, and the latency histogram is well formed (cumulative
// buckets ending in +Inf, whose count is the series' count).
func TestMetricsParseWithPrometheus(t *testing.T) {
	e := newEnv(t, withLimits(func(rl *RateLimits) {
		rl.AuthPerAddr = Rate{PerMinute: 1, Burst: 1}
	}))
	a, A := e.alice()
	a.tryLogin(A)
	a.tryLogin(A) // over the per-address budget: 429
	e.do("GET", "/v1/accounts/"+a.id+"/devices", "", nil)
	e.do("GET", "/v1/no-such-path", "", nil)
	for i := range 5 {
		e.do(fmt.Sprintf("X%d", i), "/v1/info", "", nil)
	}
	body := e.want(e.do("GET", "/metrics", "", nil), 200, "").body

	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("Prometheus's text parser refuses /metrics: %v\n%s", err, body)
	}
	for name, f := range fams {
		if f.GetHelp() == "" {
			t.Errorf("%s has no HELP", name)
		}
		if f.GetType() == dto.MetricType_UNTYPED {
			t.Errorf("%s has no TYPE", name)
		}
	}
	want := map[string]dto.MetricType{
		"enigm_command_requests_total":            dto.MetricType_COUNTER,
		"enigm_command_request_duration_seconds":  dto.MetricType_HISTOGRAM,
		"enigm_command_rate_limited_total":        dto.MetricType_COUNTER,
		"enigm_command_state_cache_lookups_total": dto.MetricType_COUNTER,
		"enigm_command_state_cache_entries":       dto.MetricType_GAUGE,
		"enigm_command_state_cache_bytes":         dto.MetricType_GAUGE,
		"enigm_command_response_cache_bytes":      dto.MetricType_GAUGE,
	}
	for name, typ := range want {
		f, ok := fams[name]
		switch {
		case !ok:
			t.Errorf("/metrics lacks %s:\n%s", name, body)
		case f.GetType() != typ:
			t.Errorf("%s is a %v, want %v", name, f.GetType(), typ)
		case len(f.GetMetric()) == 0:
			t.Errorf("%s has no series after the workflows", name)
		}
	}
	for _, m := range fams["enigm_command_request_duration_seconds"].GetMetric() {
		h := m.GetHistogram()
		bs := h.GetBucket()
		var last uint64
		for _, b := range bs {
			if b.GetCumulativeCount() < last {
				t.Errorf("histogram %v: buckets are not cumulative", m.GetLabel())
			}
			last = b.GetCumulativeCount()
		}
		if last != h.GetSampleCount() {
			t.Errorf("histogram %v: the last bucket counts %d, the series %d", m.GetLabel(), last, h.GetSampleCount())
		}
	}
}
