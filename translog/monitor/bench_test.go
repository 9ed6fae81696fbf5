package monitor_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/translog/monitor"
	"github.com/enigm/enigm/translog/translogtest"
)

// BenchmarkMonitorCatchUp: a monitor with an empty state catching up
// with a log of 2,000 links (500 accounts: genesis and three KEM
// rotations each, interleaved) — fetching the checkpoint, tiles and
// bundles, hashing, the consistency proofs, chain.Apply and the SQLite
// state — against chain.Apply alone over the same links (parsed and
// applied in one goroutine), measured in the same iteration. Reported:
// monitor-leaves/s, apply-leaves/s and their ratio (wall clock), and the
// process's CPU time per leaf of each. "http": the log is
// served over HTTP by translog.Log.Handler in this process, whose work
// competes for the same cores; "static": the same responses, fetched once
// before, served from memory, so only the monitor's own work counts.
func BenchmarkMonitorCatchUp(b *testing.B) {
	const accounts, rotations = 500, 3
	h := newHostLog(b, translogtest.NewSigner(b, testOrigin))
	var as []*acct
	var leaves [][]byte
	for i := range accounts {
		a, g := genesis(b, fmt.Sprintf("bench%d", i))
		as = append(as, a)
		leaves = append(leaves, g.Bytes())
	}
	for range rotations {
		for _, a := range as {
			leaves = append(leaves, a.next(b).Bytes())
		}
	}
	h.st.Add(leaves...)
	if _, err := h.log.Integrate(context.Background()); err != nil {
		b.Fatal(err)
	}
	static := &staticFetcher{Fetcher: monitor.HTTPFetcher(h.srv.URL+"/log/", nil), m: map[string][]byte{}}
	warm := newRun(b, h.srv.URL+"/log/", b.TempDir(), h.signer, func(c *monitor.Config) { c.Fetcher = static })
	if err := warm.m.Check(context.Background()); err != nil {
		b.Fatal(err)
	}
	static.frozen = true
	b.Run("http", func(b *testing.B) { benchCatchUp(b, h, leaves, nil) })
	b.Run("static", func(b *testing.B) { benchCatchUp(b, h, leaves, static) })
}

// staticFetcher remembers what its Fetcher returned and, once frozen,
// answers from memory.
type staticFetcher struct {
	monitor.Fetcher
	mu     sync.Mutex
	m      map[string][]byte
	frozen bool
}

func (s *staticFetcher) get(key string, f func() ([]byte, error)) ([]byte, error) {
	s.mu.Lock()
	b, ok := s.m[key]
	frozen := s.frozen
	s.mu.Unlock()
	if ok && frozen {
		return b, nil
	}
	b, err := f()
	if err == nil {
		s.mu.Lock()
		s.m[key] = b
		s.mu.Unlock()
	}
	return b, err
}

func (s *staticFetcher) Checkpoint(ctx context.Context) ([]byte, error) {
	return s.get("checkpoint", func() ([]byte, error) { return s.Fetcher.Checkpoint(ctx) })
}

func (s *staticFetcher) Tile(ctx context.Context, level, index, width uint64) ([]byte, error) {
	return s.get(fmt.Sprint("tile", level, index, width), func() ([]byte, error) { return s.Fetcher.Tile(ctx, level, index, width) })
}

func (s *staticFetcher) Entries(ctx context.Context, index, width uint64) ([]byte, error) {
	return s.get(fmt.Sprint("entries", index, width), func() ([]byte, error) { return s.Fetcher.Entries(ctx, index, width) })
}

func benchCatchUp(b *testing.B, h *hostLog, leaves [][]byte, f monitor.Fetcher) {
	n := float64(len(leaves))
	var monitorTime, applyTime, monitorCPU, applyCPU time.Duration
	b.ResetTimer()
	for range b.N {
		// chain.Apply alone: parse and apply every link, states by account.
		start, cpu := time.Now(), cpuTime()
		states := map[chain.AccountID]*chain.State{}
		for _, raw := range leaves {
			l, err := chain.ParseLink(raw)
			if err != nil {
				b.Fatal(err)
			}
			id := l.Account()
			if l.Type() == chain.TypeGenesis {
				id = chain.AccountID(l.Hash())
			}
			s, err := chain.Apply(states[id], l, t0.Add(time.Hour))
			if err != nil {
				b.Fatal(err)
			}
			states[id] = s
		}
		applyTime += time.Since(start)
		applyCPU += cpuTime() - cpu

		b.StopTimer()
		r := newRun(b, h.srv.URL+"/log/", b.TempDir(), h.signer, func(c *monitor.Config) {
			if f != nil {
				c.Fetcher = f
			}
		})
		b.StartTimer()
		start, cpu = time.Now(), cpuTime()
		if err := r.m.Check(context.Background()); err != nil {
			b.Fatal(err)
		}
		monitorTime += time.Since(start)
		monitorCPU += cpuTime() - cpu
		b.StopTimer()
		// The links and the one map leaf of their integration.
		if _, done := r.m.Verified(); done != uint64(len(leaves))+1 || r.m.Problems() != 0 {
			b.Fatalf("monitor verified %d leaves with %d findings", done, r.m.Problems())
		}
		r.store.Close()
		b.StartTimer()
	}
	b.ReportMetric(n*float64(b.N)/monitorTime.Seconds(), "monitor-leaves/s")
	b.ReportMetric(n*float64(b.N)/applyTime.Seconds(), "apply-leaves/s")
	b.ReportMetric(applyTime.Seconds()/monitorTime.Seconds(), "ratio")
	// CPU time of the whole process (with "http", the log server's too)
	// per leaf: the work, less sensitive than wall time to other load.
	b.ReportMetric(float64(monitorCPU.Microseconds())/(n*float64(b.N)), "monitor-cpu-µs/leaf")
	b.ReportMetric(float64(applyCPU.Microseconds())/(n*float64(b.N)), "apply-cpu-µs/leaf")
}
