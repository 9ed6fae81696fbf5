package monitor_test

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"iter"
	"maps"
	"testing"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/translog/monitor"
	"github.com/enigm/enigm/translog/smap"
)

// fakeHeads is a Heads of synthetic accounts: heads all of them,
// changed those Changed yields (nil: all, as at a run's first map leaf).
type fakeHeads struct {
	heads   map[chain.AccountID]chain.Head
	changed []chain.AccountID
}

func (f *fakeHeads) Len() int { return len(f.heads) }
func (f *fakeHeads) Head(id chain.AccountID) (chain.Head, bool) {
	h, ok := f.heads[id]
	return h, ok
}
func (f *fakeHeads) All() iter.Seq2[chain.AccountID, chain.Head] {
	return func(yield func(chain.AccountID, chain.Head) bool) {
		for id, h := range f.heads {
			if !yield(id, h) {
				return
			}
		}
	}
}
func (f *fakeHeads) Changed() iter.Seq2[chain.AccountID, chain.Head] {
	if f.changed == nil {
		return f.All()
	}
	return func(yield func(chain.AccountID, chain.Head) bool) {
		for _, id := range f.changed {
			if !yield(id, f.heads[id]) {
				return
			}
		}
	}
}

func fakeID(i int) chain.AccountID {
	return chain.AccountID(sha256.Sum256(binary.BigEndian.AppendUint64([]byte("account"), uint64(i))))
}

func fakeHead(i, seq int) chain.Head {
	return chain.Head{Seq: uint64(seq), Hash: chain.Hash(sha256.Sum256(binary.BigEndian.AppendUint64([]byte(fmt.Sprint("head", seq)), uint64(i))))}
}

// BenchmarkMapCheck: what the monitor's default MapChecker costs, against
// chain.Apply of the links that cause it, measured in the same run.
// "rebuild": the first map leaf of a run over 100,000 accounts (the whole
// map built from the stored heads, as a resumed monitor does);
// "update": a map leaf after 4,096 of the 100,000 accounts changed (a
// full chunk of links, each of another account); "apply-256": chain.Apply
// of 256 KEM rotations (one entry bundle), the baseline. Reported as CPU
// µs per account set or per link (getrusage).
func BenchmarkMapCheck(b *testing.B) {
	const accounts, changed = 100_000, 4096
	base := &fakeHeads{heads: map[chain.AccountID]chain.Head{}}
	var full smap.Tree
	for i := range accounts {
		id, h := fakeID(i), fakeHead(i, 1)
		base.heads[id] = h
		full.Set(smap.Key(id), smap.Value{Seq: h.Seq, Head: h.Hash})
	}
	fullRoot := full.Root()
	b.Run("rebuild", func(b *testing.B) {
		var cpu time.Duration
		for range b.N {
			c := monitor.NewMapChecker()
			start := cpuTime()
			if err := c.CheckMapRoot(0, fullRoot, base); err != nil {
				b.Fatal(err)
			}
			cpu += cpuTime() - start
		}
		b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*accounts), "cpu-µs/account")
	})
	b.Run("update", func(b *testing.B) {
		cur := maps.Clone(base.heads) // this run's heads, changed below
		c := monitor.NewMapChecker()
		if err := c.CheckMapRoot(0, fullRoot, base); err != nil {
			b.Fatal(err)
		}
		// Each step changes the heads of 4,096 other accounts; the roots
		// are computed before, on a tree of the benchmark's own.
		type step struct {
			ids   []chain.AccountID
			heads []chain.Head
			root  [32]byte
		}
		steps := make([]step, b.N)
		ref := full.Clone()
		for n := range steps {
			for k := range changed {
				i := (n*changed + k) % accounts
				id, h := fakeID(i), fakeHead(i, 2+n)
				steps[n].ids, steps[n].heads = append(steps[n].ids, id), append(steps[n].heads, h)
				ref.Set(smap.Key(id), smap.Value{Seq: h.Seq, Head: h.Hash})
			}
			steps[n].root = ref.Root()
		}
		var cpu time.Duration
		b.ResetTimer()
		for n := range b.N {
			heads := &fakeHeads{heads: cur, changed: steps[n].ids}
			for k, id := range steps[n].ids {
				cur[id] = steps[n].heads[k]
			}
			start := cpuTime()
			if err := c.CheckMapRoot(uint64(n+1), steps[n].root, heads); err != nil {
				b.Fatal(err)
			}
			cpu += cpuTime() - start
		}
		b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*changed), "cpu-µs/account")
	})
	b.Run("apply-256", func(b *testing.B) {
		a, _ := genesis(b, "map-bench")
		links := make([]*chain.Link, 256)
		st := a.st
		for i := range links {
			links[i] = a.next(b)
		}
		var cpu time.Duration
		b.ResetTimer()
		for range b.N {
			start := cpuTime()
			s := st
			for _, l := range links {
				p, err := chain.ParseLink(l.Bytes())
				if err != nil {
					b.Fatal(err)
				}
				if s, err = chain.Apply(s, p, t0.Add(time.Hour)); err != nil {
					b.Fatal(err)
				}
			}
			cpu += cpuTime() - start
		}
		b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*len(links)), "cpu-µs/link")
	})
}
