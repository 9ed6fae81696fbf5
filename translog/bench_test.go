package translog_test

import (
	"crypto/sha256"
	"encoding/binary"
	"testing"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/enigm/enigm/translog"
	"github.com/enigm/enigm/translog/smap"
	"github.com/enigm/enigm/translog/translogtest"
)

// BenchmarkIntegrateCPU4096 compares, in one run, the CPU work an
// integration of 4096 link leaves does for the tree (leaf hashes into the
// compact range: "tree") with what the map adds (each leaf read with
// chain.ParseLink, set in a map of 100,000 accounts, the new root:
// "map"), so the map's cost is the ratio map/tree. Storage and signing
// are left out (command/store's BenchmarkIntegrate4096 has the whole
// integration on SQLite).
func BenchmarkIntegrateCPU4096(b *testing.B) {
	ls := translogtest.Links4096(b)
	base := &smap.Tree{}
	for i := range 100_000 {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(i))
		base.Set(smap.Key(sha256.Sum256(n[:])), smap.Value{Seq: 1})
	}
	base.Root()
	b.Run("tree", func(b *testing.B) {
		rf := &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
		defer translogtest.ReportCPU(b, translogtest.CPUTime(b))
		for b.Loop() {
			r := rf.NewEmptyRange(0)
			for _, l := range ls {
				if err := r.Append(rfc6962.DefaultHasher.HashLeaf(l), nil); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("map", func(b *testing.B) {
		defer translogtest.ReportCPU(b, translogtest.CPUTime(b))
		for b.Loop() {
			t := base.Clone()
			for _, l := range ls {
				e, ok := translog.LinkEntry(l)
				if !ok {
					b.Fatal("not a link")
				}
				t.Set(e.Key, e.Value)
			}
			t.Root()
		}
	})
	b.Run("map-without-parsing", func(b *testing.B) {
		es := make([]smap.Entry, len(ls))
		for i, l := range ls {
			es[i], _ = translog.LinkEntry(l)
		}
		defer translogtest.ReportCPU(b, translogtest.CPUTime(b))
		for b.Loop() {
			t := base.Clone()
			for _, e := range es {
				t.Set(e.Key, e.Value)
			}
			t.Root()
		}
	})
}
