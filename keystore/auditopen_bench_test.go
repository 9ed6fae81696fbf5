package keystore

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/keystore/internal/audit"
	"github.com/enigm/enigm/policy"
	"github.com/enigm/enigm/posture"
)

// auditHome makes a store whose audit log holds n decision entries (what
// n key uses write), closed.
func auditHome(b *testing.B, n int) (string, Options) {
	b.Helper()
	home := filepath.Join(b.TempDir(), "h")
	opts := Options{Backend: testkit.SoftBackend, Posture: posture.Static{Level: policy.PostureDegraded}}
	be, _ := testkit.SoftBackend("soft")
	s, err := Init(context.Background(), home, be, testPass, InitOptions{Options: opts})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for i := range n {
		if _, err := s.log.Append(audit.Entry{Time: now.Add(time.Duration(i)), Kind: audit.KindDecision, Op: 2}); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	return home, opts
}

// BenchmarkOpenAuditHistory opens (and closes) a store whose audit log
// holds 1,000 and one whose log holds 1,000,000 entries, in alternation
// within each iteration (the order flips every iteration), and reports
// the time of Open for each, mean and median, and their ratios. Close is
// not timed. The medians resist the spikes of a shared machine.
func BenchmarkOpenAuditHistory(b *testing.B) {
	small, opts := auditHome(b, 1_000)
	large, _ := auditHome(b, 1_000_000)
	var ts, tl []time.Duration
	for i := 0; b.Loop(); i++ {
		for k := range 2 {
			home, d := small, &ts
			if (i+k)%2 == 1 {
				home, d = large, &tl
			}
			t0 := time.Now()
			s, err := Open(home, opts)
			*d = append(*d, time.Since(t0))
			if err != nil {
				b.Fatal(err)
			}
			if st, _ := s.Status(); !st.Audit.Intact {
				b.Fatalf("audit log not intact: %+v", st.Audit)
			}
			s.Close()
		}
	}
	ms, ml := mean(ts), mean(tl)
	b.ReportMetric(ms, "open-1k-ns/op")
	b.ReportMetric(ml, "open-1M-ns/op")
	b.ReportMetric(ml/ms, "1M/1k")
	b.ReportMetric(median(ts), "open-1k-median-ns")
	b.ReportMetric(median(tl), "open-1M-median-ns")
	b.ReportMetric(median(tl)/median(ts), "1M/1k-median")
}

func mean(d []time.Duration) float64 {
	var t time.Duration
	for _, x := range d {
		t += x
	}
	return float64(t.Nanoseconds()) / float64(len(d))
}

func median(d []time.Duration) float64 {
	s := slices.Clone(d)
	slices.Sort(s)
	return float64(s[len(s)/2].Nanoseconds())
}
