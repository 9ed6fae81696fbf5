package smap_test

import (
	"fmt"
	"testing"

	"github.com/enigm/enigm/translog/smap"
)

var benchTrees = map[int]*smap.Tree{}

// benchTree returns a map of n accounts (built once per process).
func benchTree(n int) *smap.Tree {
	if t, ok := benchTrees[n]; ok {
		return t
	}
	t := &smap.Tree{}
	for i := range n {
		t.Set(key(i), value(i, 1))
	}
	t.Root()
	benchTrees[n] = t
	return t
}

// BenchmarkProofSize: the encoded map proof of a present account, and of
// an absent one, at 1k, 100k and 1M accounts (bytes/proof is the mean
// over 1000 keys; the time is Prove's).
func BenchmarkProofSize(b *testing.B) {
	for _, n := range []int{1000, 100_000, 1_000_000} {
		t := benchTree(n)
		b.Run(fmt.Sprintf("accounts=%d", n), func(b *testing.B) {
			total, totalAbsent, depth := 0, 0, 0
			for i := range 1000 {
				p := t.Prove(key(i * (n / 1000)))
				total += len(p.Bytes())
				depth += len(p.Siblings)
				totalAbsent += len(t.Prove(key(-1 - i)).Bytes())
			}
			i := 0
			for b.Loop() {
				t.Prove(key(i % n))
				i++
			}
			b.ReportMetric(float64(total)/1000, "bytes/proof")
			b.ReportMetric(float64(totalAbsent)/1000, "bytes/absence-proof")
			b.ReportMetric(float64(depth)/1000, "depth")
		})
	}
}

// BenchmarkUpdate4096: what one integration of 4096 new links costs the
// map: 4096 Sets (new heads of existing accounts) on a clone and the new
// root, at 100k and 1M accounts.
func BenchmarkUpdate4096(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		t := benchTree(n)
		b.Run(fmt.Sprintf("accounts=%d", n), func(b *testing.B) {
			round := 0
			for b.Loop() {
				c := t.Clone()
				for i := range 4096 {
					c.Set(key((round*4096+i)%n), value(i, 2+round))
				}
				c.Root()
				round++
			}
		})
	}
}
