package command

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
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
// the served checkpoint every millisecond. It reports p50-ms, p99-ms and max-ms
// over the b.N samples (run with -benchtime 100x or more); ns/op counts
// the pause too and means nothing.
//
//   - memory-signer: the log keys in memory (translogtest.NewSigner).
//   - keystore-signer: the log keys in Command's keystore with the
//     software backend's recommended Argon2id parameters (what serve
//     does: one unlock per checkpoint, BenchmarkLogKeystoreSign).
//   - witnessed: memory keys and one real witness (transparency-dev's
//     omniwitness process, translogtest.StartWitness); the checkpoint
//     counts once its cosignature is served with it, and witness-p50-ms
//     and witness-p99-ms are the wait for the cosignature alone (from
//     the checkpoint's publication), which the ticker's phase does not
//     blur.
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
// checkpoint counts only once it carries that witness's cosignature, and
// the time from the checkpoint's first publication (without it) to the
// cosigned one is reported too (witness-p50-ms, witness-p99-ms; the
// served state is polled every millisecond, so a shorter wait shows as
// up to 1 ms).
func measureCheckpointLatency(b *testing.B, e *env, witness string) {
	ctx := context.Background()
	// covers reports whether the served checkpoint (read as /log/checkpoint
	// reads it) covers leaf idx, and whether it carries the witness's
	// cosignature.
	covers := func(idx uint64) (bool, bool) {
		st, err := e.srv.tlog.ls.State(ctx)
		if err != nil || st.Checkpoint == nil {
			return false, false
		}
		lines := strings.SplitN(string(st.Checkpoint), "\n", 3)
		size, err := strconv.ParseUint(lines[1], 10, 64)
		if err != nil || size <= idx {
			return false, false
		}
		return true, witness == "" || bytes.Contains(st.Checkpoint, []byte("\n— "+witness+" "))
	}
	// wait returns when leaf idx was first published and when with the
	// witness's cosignature.
	wait := func(idx uint64) (first, done time.Time) {
		deadline := time.Now().Add(time.Minute)
		for {
			in, cosigned := covers(idx)
			now := time.Now()
			if in && first.IsZero() {
				first = now
			}
			if cosigned {
				return first, now
			}
			if now.After(deadline) {
				b.Fatalf("leaf %d not in a published checkpoint after a minute:\n%s", idx, e.logText())
			}
			time.Sleep(time.Millisecond)
		}
	}
	sample := func(i int) (total, wit time.Duration) {
		a := e.newAccount(fmt.Sprintf("lat-%d", i), newDev(fmt.Sprintf("lat/%d", i)), chain.Policy{})
		accepted := time.Now()
		idx, err := e.srv.tlog.ls.LeafIndex(ctx, a.id, 0)
		if err != nil {
			b.Fatal(err)
		}
		first, done := wait(idx)
		return done.Sub(accepted), done.Sub(first)
	}
	// The checkpoint served is the one verified: check it once here.
	sample(-1) // the first checkpoint and a warm connection
	if _, _, err := e.srv.tlog.log.Checkpoint(ctx); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	wit := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		time.Sleep(rand.N(DefaultLogInterval))
		t, w := sample(i)
		lat, wit = append(lat, t), append(wit, w)
	}
	b.StopTimer()
	pct := func(d []time.Duration, p float64) float64 { // nearest rank
		slices.Sort(d)
		r := int(math.Ceil(p*float64(len(d)))) - 1
		return float64(d[max(0, r)].Microseconds()) / 1000
	}
	b.ReportMetric(pct(lat, 0.50), "p50-ms")
	b.ReportMetric(pct(lat, 0.99), "p99-ms")
	b.ReportMetric(pct(lat, 1), "max-ms")
	b.ReportMetric(float64(len(lat)), "samples")
	if witness != "" {
		b.ReportMetric(pct(wit, 0.50), "witness-p50-ms")
		b.ReportMetric(pct(wit, 0.99), "witness-p99-ms")
	}
}
