package translog_test

import (
	"context"
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/enigm/enigm/translog"
)

// millionLeaves is the size of the benchmark log (issue 10: proof bytes
// at 1 M leaves).
const millionLeaves = 1_000_000

var million struct {
	once  sync.Once
	log   *translog.Log
	keys  []string
	err   error
	build time.Duration
}

// benchLeaf is leaf i of the benchmark log: 25 bytes (the leaves' size
// does not change the proofs; small leaves keep the log in memory).
func benchLeaf(i uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte("enigm bench leaf "), i)
}

// millionLog builds, once per test binary, a log of millionLeaves leaves
// in memory with translog itself (Integrate over the tests' memory
// storage: compact ranges, tiles and a signed checkpoint per batch of
// 4096 leaves, no database).
func millionLog(b *testing.B) (*translog.Log, []string) {
	b.Helper()
	million.once.Do(func() {
		st := newMemStorage()
		s := proofSigner(b, goldenOrigin, "million")
		leaves := make([][]byte, millionLeaves)
		for i := range leaves {
			leaves[i] = benchLeaf(uint64(i))
		}
		st.Add(leaves...)
		l := translog.New(st, s)
		start := time.Now()
		_, million.err = l.Integrate(context.Background())
		million.build = time.Since(start)
		million.log, million.keys = l, s.VerifierKeys()
	})
	if million.err != nil {
		b.Fatal(million.err)
	}
	return million.log, million.keys
}

// ceilLog2 is ⌈log2 n⌉ for n ≥ 1.
func ceilLog2(n uint64) int { return bits.Len64(n - 1) }

// BenchmarkProof1M: sizes and costs of inclusion proofs and tlog-proofs
// in a log of 1 000 000 leaves. Metrics (sizes are the same in every run):
//
//   - proof-B: the inclusion proof of leaf 0, in bytes; the benchmark
//     fails unless it is 32·⌈log2 n⌉ (640) and no sampled leaf's is
//     larger.
//   - tlogproof-B: the whole c2sp.org/tlog-proof@v1 file of leaf 0 with
//     the log's two signatures, without extra data and cosignatures
//     (Enigm adds the link: 4/3 of its size in base64, plus 7 bytes).
//   - tlogproof-ed-witness-B, tlogproof-mldsa-witness-B: the same with
//     one Ed25519, or one ML-DSA-44, witness cosignature.
//
// Sub-benchmarks time building a proof from the tiles (Log.Proof, which
// also checks the stored checkpoint's signatures) and verifying one
// offline (Proof.Verify, without and with a quorum of one ML-DSA-44
// witness) against checking the checkpoint's two signatures alone
// (VerifyCheckpoint), the baseline measured in the same loop.
//
// go test -run XXX -bench BenchmarkProof1M ./translog/
func BenchmarkProof1M(b *testing.B) {
	l, keys := millionLog(b)
	ctx := context.Background()
	p, err := l.Proof(ctx, 0, nil)
	if err != nil {
		b.Fatal(err)
	}
	want := 32 * ceilLog2(millionLeaves)
	if got := 32 * len(p.Hashes); got != want {
		b.Fatalf("inclusion proof of leaf 0 of %d: %d bytes, want 32·⌈log2 n⌉ = %d", millionLeaves, got, want)
	}
	for i := uint64(0); i < millionLeaves; i += 9973 {
		q, err := l.Proof(ctx, i, nil)
		if err != nil {
			b.Fatal(err)
		}
		if 32*len(q.Hashes) > want {
			b.Fatalf("leaf %d: %d bytes of inclusion proof, more than %d", i, 32*len(q.Hashes), want)
		}
		if _, err := q.Verify(benchLeaf(i), goldenOrigin, keys, nil); err != nil {
			b.Fatalf("leaf %d: %v", i, err)
		}
	}
	ed, pq := newCosigner(b, "witness-ed.enigm.test", false), newCosigner(b, "witness-pq.enigm.test", true)
	size := func(p *translog.Proof) float64 { return float64(len(mustBytes(b, p))) }
	withCosig := func(w *cosigner) *translog.Proof {
		c := *p
		c.Checkpoint = w.cosign(b, p.Checkpoint, 1700000000)
		return &c
	}
	b.Run("build", func(b *testing.B) {
		for b.Loop() {
			if _, err := l.Proof(ctx, rand.Uint64N(millionLeaves), nil); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(million.build.Seconds(), "integrate-1M-s")
		b.ReportMetric(float64(32*len(p.Hashes)), "proof-B")
		b.ReportMetric(size(p), "tlogproof-B")
		b.ReportMetric(size(withCosig(ed)), "tlogproof-ed-witness-B")
		b.ReportMetric(size(withCosig(pq)), "tlogproof-mldsa-witness-B")
	})
	cosigned := withCosig(pq)
	q := &translog.WitnessQuorum{Keys: []string{pq.vkey()}, K: 1}
	// One loop runs the three checks in turn, so that the ratios compare
	// runs under the same load (the machine is shared).
	b.Run("verify", func(b *testing.B) {
		var base, plain, witnessed time.Duration
		for b.Loop() {
			t0 := time.Now()
			if _, err := translog.VerifyCheckpoint(cosigned.Checkpoint, goldenOrigin, keys); err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			if _, err := cosigned.Verify(benchLeaf(0), goldenOrigin, keys, nil); err != nil {
				b.Fatal(err)
			}
			t2 := time.Now()
			if _, err := cosigned.Verify(benchLeaf(0), goldenOrigin, keys, q); err != nil {
				b.Fatal(err)
			}
			base, plain, witnessed = base+t1.Sub(t0), plain+t2.Sub(t1), witnessed+time.Since(t2)
		}
		n := float64(b.N)
		b.ReportMetric(float64(base.Microseconds())/n, "checkpoint-µs")
		b.ReportMetric(float64(plain.Microseconds())/n, "proof-µs")
		b.ReportMetric(float64(witnessed.Microseconds())/n, "proof+witness-µs")
		b.ReportMetric(float64(plain)/float64(base), "proof/checkpoint")
		b.ReportMetric(float64(witnessed)/float64(base), "proof+witness/checkpoint")
	})
}
