package command

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/internal/testkit"
)

// BenchmarkServerMemory measures the server's memory with N accounts
// touched: each account is created (genesis), extended by one link
// (rotate_keys, after a login) and its device list fetched, through the
// HTTP handler on SQLite. It reports the Go heap in use after a GC and
// the process's VmRSS at each checkpoint up to ENIGM_MEM_N accounts
// (default 1000), on standard error and as metrics of the last one:
//
//	ENIGM_MEM_N=100000 go test ./command -run '^$' -bench BenchmarkServerMemory -benchtime 1x
//
// One device key and one recovery key sign for every account (the
// device names differ, so the accounts do): the measurement is of the
// server, not of key generation.
func BenchmarkServerMemory(b *testing.B) {
	n := 1000
	if s := os.Getenv("ENIGM_MEM_N"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			b.Fatalf("ENIGM_MEM_N=%q: want a positive number of accounts", s)
		}
		n = v
	}
	for range b.N {
		e := newEnv(b)
		dev, recov := newDev("mem/A"), testKey("recovery:mem")
		key := dev.key()
		var heap, rss uint64
		next := 1000
		for i := 1; i <= n; i++ {
			d := dev.device()
			d.Name = fmt.Sprintf("device mem/%d", i)
			g, err := chain.NewGenesis(e.clock.Now(), &chain.Genesis{Device: d, Recovery: recov.Public(), Policy: chain.DefaultPolicy()})
			testkit.NoErr(b, err)
			testkit.NoErr(b, g.Sign(chain.RoleSubject, key))
			testkit.NoErr(b, g.Sign(chain.RoleNewRecovery, recov))
			gl, err := g.Link()
			testkit.NoErr(b, err)
			r := e.want(e.do("POST", "/v1/accounts", "", map[string]any{"name": fmt.Sprintf("mem%d", i), "genesis": enc64(gl.Bytes())}), 201, "")
			st, err := chain.Apply(nil, gl, e.clock.Now())
			testkit.NoErr(b, err)
			a := &tacct{e: e, id: r.str("account_id"), st: st, tokens: map[chain.DeviceID]string{}}
			rl := a.draft(&chain.RotateKeys{ID: dev.id, KEM: testKEM("mem/rot")})
			testkit.NoErr(b, rl.SignDevice(dev.id, key))
			e.want(a.post(dev, link(b, rl)), 201, "")
			e.want(e.do("GET", "/v1/accounts/"+a.id+"/devices", "", nil), 200, "")
			if i == next || i == n {
				heap, rss = memNow()
				entries, bytes := e.srv.cache.stats()
				fmt.Fprintf(os.Stderr, "server memory: accounts=%d heap_inuse_mib=%.1f vmrss_mib=%.1f cache_entries=%d cache_mib=%.1f\n",
					i, mib(heap), mib(rss), entries, mib(uint64(bytes)))
				next = nextCheckpoint(next)
			}
		}
		b.ReportMetric(mib(heap), "heap-MiB")
		b.ReportMetric(mib(rss), "rss-MiB")
		b.ReportMetric(float64(heap)/float64(n), "heap-B/account")
	}
}

// nextCheckpoint steps 1000, 2000, 5000, 10000, 20000, 50000, ...
func nextCheckpoint(c int) int {
	switch s := strconv.Itoa(c); s[0] {
	case '1':
		return 2 * c
	case '2':
		return c / 2 * 5
	default:
		return 2 * c
	}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// memNow returns the heap in use after a GC and the process's VmRSS (0
// where /proc is missing).
func memNow() (heap, rss uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heap = ms.HeapInuse
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseUint(f[1], 10, 64)
				rss = kb << 10
			}
		}
	}
	return heap, rss
}
