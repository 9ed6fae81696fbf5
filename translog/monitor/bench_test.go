package monitor_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/translog/translogtest"
)

// BenchmarkMonitorCatchUp: a monitor with an empty state catching up
// with a log of 2,000 links (500 accounts: genesis and three KEM
// rotations each, interleaved) served over HTTP from memory — fetching
// the checkpoint, tiles and bundles, hashing, the consistency proofs,
// chain.Apply and the SQLite state — against chain.Apply alone over the
// same parsed links, measured in the same iteration. Reported:
// monitor-leaves/s, apply-leaves/s and their ratio.
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
	n := float64(len(leaves))
	var monitorTime, applyTime time.Duration
	b.ResetTimer()
	for range b.N {
		// chain.Apply alone: parse and apply every link, states by account.
		start := time.Now()
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

		b.StopTimer()
		r := newRun(b, h.srv.URL+"/log/", b.TempDir(), h.signer)
		b.StartTimer()
		start = time.Now()
		if err := r.m.Check(context.Background()); err != nil {
			b.Fatal(err)
		}
		monitorTime += time.Since(start)
		b.StopTimer()
		if _, done := r.m.Verified(); done != uint64(len(leaves)) || r.m.Problems() != 0 {
			b.Fatalf("monitor verified %d leaves with %d findings", done, r.m.Problems())
		}
		r.store.Close()
		b.StartTimer()
	}
	b.ReportMetric(n*float64(b.N)/monitorTime.Seconds(), "monitor-leaves/s")
	b.ReportMetric(n*float64(b.N)/applyTime.Seconds(), "apply-leaves/s")
	b.ReportMetric(applyTime.Seconds()/monitorTime.Seconds(), "ratio")
}
