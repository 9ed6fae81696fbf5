package command

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/soft"
	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/translog"
	"github.com/enigm/enigm/translog/translogtest"
)

// BenchmarkCheckpointLatency measures, through a real Command over
// SQLite integrating at the default interval (DefaultLogInterval, 1 s),
// the time from an accepted link (the 201 of its account creation) to
// the first published checkpoint (what GET /log/checkpoint serves) that
// covers its leaf. Each operation is one sample: a random pause of up to
// one interval (so that links arrive at every phase of the integration
// ticker, as independent clients' links do), a new account, then polling
// the served checkpoint every 2 ms. It reports p50-ms, p99-ms and max-ms
// over the b.N samples (run with -benchtime 100x or more); ns/op counts
// the pause too and means nothing.
//
//   - memory-signer: the log keys in memory (translogtest.NewSigner).
//   - keystore-signer: the log keys in Command's keystore with the
//     software backend's recommended Argon2id parameters (what serve
//     does: one unlock per checkpoint, BenchmarkLogKeystoreSign).
//   - witnessed: memory keys and one real witness (transparency-dev's
//     omniwitness process, translogtest.StartWitness); the checkpoint
//     counts once its cosignature is served with it.
//
// go test -run XXX -bench BenchmarkCheckpointLatency -benchtime 100x ./command/
func BenchmarkCheckpointLatency(b *testing.B) {
	b.Run("memory-signer", func(b *testing.B) {
		s := translogtest.NewSigner(b, testLogOrigin)
		e := newEnv(b, func(c *Config) { c.LogSigner = s })
		measureCheckpointLatency(b, e, "")
	})
	b.Run("keystore-signer", func(b *testing.B) {
		e := newEnv(b, func(c *Config) {
			c.KeystoreBackend = func(string) (backend.Backend, error) { return soft.New(soft.Options{}) }
			s, err := LogSigner(context.Background(), *c)
			if err != nil {
				b.Fatal(err)
			}
			c.LogSigner = s
		})
		measureCheckpointLatency(b, e, "")
	})
	b.Run("witnessed", func(b *testing.B) {
		s := translogtest.NewSigner(b, testLogOrigin)
		rw := translogtest.StartWitness(b, "witness.enigm.test/bench", testLogOrigin, s.VerifierKeys()[0])
		w, err := translog.NewWitness(rw.URL, rw.Keys[0], nil)
		if err != nil {
			b.Fatal(err)
		}
		e := newEnv(b, func(c *Config) { c.LogSigner, c.LogWitnesses = s, []*translog.Witness{w} })
		measureCheckpointLatency(b, e, "witness.enigm.test/bench")
	})
}

// measureCheckpointLatency runs b.N samples against e (whose interval is
// the default) and reports the percentiles. With witness set, a
// checkpoint counts only once it carries that witness's cosignature.
func measureCheckpointLatency(b *testing.B, e *env, witness string) {
	ctx := context.Background()
	published := func(idx uint64) bool {
		signed, c, err := e.srv.tlog.log.Checkpoint(ctx)
		if err != nil || c.Size <= idx {
			return false
		}
		return witness == "" || bytes.Contains(signed, []byte("\n— "+witness+" "))
	}
	wait := func(idx uint64) time.Time {
		deadline := time.Now().Add(time.Minute)
		for !published(idx) {
			if time.Now().After(deadline) {
				b.Fatalf("leaf %d not in a published checkpoint after a minute:\n%s", idx, e.logText())
			}
			time.Sleep(2 * time.Millisecond)
		}
		return time.Now()
	}
	sample := func(i int) time.Duration {
		a := e.newAccount(fmt.Sprintf("lat-%d", i), newDev(fmt.Sprintf("lat/%d", i)), chain.Policy{})
		accepted := time.Now()
		idx, err := e.srv.tlog.ls.LeafIndex(ctx, a.id, 0)
		if err != nil {
			b.Fatal(err)
		}
		return wait(idx).Sub(accepted)
	}
	sample(-1) // the first checkpoint and a warm connection
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		time.Sleep(rand.N(DefaultLogInterval))
		lat = append(lat, sample(i))
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 { // nearest rank
		r := int(math.Ceil(p*float64(len(lat)))) - 1
		return float64(lat[max(0, r)].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(float64(len(lat)), "samples")
}
