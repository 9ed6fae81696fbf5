package translog_test

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/chain"
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

// BenchmarkFreshnessAnswer reports the size of a whole GET
// /v1/accounts/{id}/freshness answer (api.Freshness as JSON) at 1k, 100k
// and 1M accounts, in a log of 4 leaves per account: a checkpoint signed
// by the log's two keys, the map leaf's inclusion proof of the size the
// tree gives (popcount(n−1) hashes), the account's head and its map proof
// (mean over 1000 accounts). The time is the map proof's.
func BenchmarkFreshnessAnswer(b *testing.B) {
	s := translogtest.NewSigner(b, testOrigin)
	for _, n := range []int{1000, 100_000, 1_000_000} {
		t := &smap.Tree{}
		key := func(i int) smap.Key {
			var x [8]byte
			binary.BigEndian.PutUint64(x[:], uint64(i))
			return smap.Key(sha256.Sum256(x[:]))
		}
		for i := range n {
			t.Set(key(i), smap.Value{Seq: 3})
		}
		root := t.Root()
		size := uint64(4 * n)
		c := translog.Checkpoint{Origin: testOrigin, Size: size}
		signed, err := s.Sign(c)
		if err != nil {
			b.Fatal(err)
		}
		nodes, err := proof.Inclusion(size-1, size)
		if err != nil {
			b.Fatal(err)
		}
		incl := make([][]byte, len(nodes.IDs))
		for i := range incl {
			incl[i] = make([]byte, 32)
		}
		b.Run(fmt.Sprintf("accounts=%d", n), func(b *testing.B) {
			total := 0
			for i := range 1000 {
				k := key(i * (n / 1000))
				v, _ := t.Get(k)
				f := api.Freshness{Checkpoint: string(signed), TreeSize: size, MapIndex: size - 1, MapRoot: root[:],
					Inclusion: incl, Head: &api.Head{Seq: v.Seq, Hash: chain.Hash(v.Head).String()}, MapProof: t.Prove(k).Bytes()}
				j, err := json.Marshal(f)
				if err != nil {
					b.Fatal(err)
				}
				total += len(j)
			}
			i := 0
			for b.Loop() {
				t.Prove(key(i % n))
				i++
			}
			b.ReportMetric(float64(total)/1000, "bytes/answer")
			b.ReportMetric(float64(len(signed)), "bytes/checkpoint")
			b.ReportMetric(float64(len(incl)), "inclusion-hashes")
		})
	}
}
