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
// n key uses write), closed. With segBytes > 0 the log is sealed into
// segments of about that size (a commit every 10,000 entries, where
// rotation happens); with segBytes < 0 it stays one file.
func auditHome(b *testing.B, n int, segBytes int64) (string, Options) {
	b.Helper()
	home := filepath.Join(b.TempDir(), "h")
	opts := Options{Backend: testkit.SoftBackend, Posture: posture.Static{Level: policy.PostureDegraded}, AuditSegmentBytes: segBytes}
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
		if segBytes > 0 && i%10_000 == 9_999 {
			if err := s.anchor(); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	return home, opts
}

// BenchmarkOpenAuditHistory opens (and closes) three stores in rotation
// within each iteration (the order shifts every iteration): one whose
// audit log holds 1,000 entries, one with 1,000,000 entries in one file,
// and one with 1,000,000 entries sealed into segments of 1 MiB (about 100
// segments). It reports the time of Open for each, mean and median, and
// the ratios to the 1,000-entry store. Close is not timed. The medians
// resist the spikes of a shared machine.
func BenchmarkOpenAuditHistory(b *testing.B) {
	small, opts := auditHome(b, 1_000, -1)
	large, _ := auditHome(b, 1_000_000, -1)
	seg, segOpts := auditHome(b, 1_000_000, 1<<20)
	if segs, _ := audit.Segments(seg); len(segs) < 50 {
		b.Fatalf("%d segments, want about 100", len(segs))
	}
	stores := []struct {
		home string
		opts Options
		t    []time.Duration
	}{{home: small, opts: opts}, {home: large, opts: opts}, {home: seg, opts: segOpts}}
	for i := 0; b.Loop(); i++ {
		for k := range stores {
			st := &stores[(i+k)%len(stores)]
			t0 := time.Now()
			s, err := Open(st.home, st.opts)
			st.t = append(st.t, time.Since(t0))
			if err != nil {
				b.Fatal(err)
			}
			if st, _ := s.Status(); !st.Audit.Intact {
				b.Fatalf("audit log not intact: %+v", st.Audit)
			}
			s.Close()
		}
	}
	ts, tl, tg := stores[0].t, stores[1].t, stores[2].t
	b.ReportMetric(mean(ts), "open-1k-ns/op")
	b.ReportMetric(mean(tl), "open-1M-ns/op")
	b.ReportMetric(mean(tg), "open-1M-seg-ns/op")
	b.ReportMetric(mean(tl)/mean(ts), "1M/1k")
	b.ReportMetric(median(ts), "open-1k-median-ns")
	b.ReportMetric(median(tl), "open-1M-median-ns")
	b.ReportMetric(median(tg), "open-1M-seg-median-ns")
	b.ReportMetric(median(tl)/median(ts), "1M/1k-median")
	b.ReportMetric(median(tg)/median(ts), "1M-seg/1k-median")
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
