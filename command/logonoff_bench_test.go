//go:build enigmbench

package command

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/soft"
	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/command/store"
	"github.com/enigm/enigm/command/store/storetest"
	"github.com/enigm/enigm/translog"
	"github.com/enigm/enigm/translog/translogtest"
)

// BenchmarkLogOnOff measures what the transparency log costs the appends
// that feed it (issue 10: at least 0.8× the enrollments and link appends
// per second of the same build with the log off, in one run). One
// process runs three servers of this build over the same engine, side by
// side:
//
//   - off: no log signer (nothing integrated or published) and the store
//     told not to sequence leaves (store.DisableLogForBenchmark, which
//     only the enigmbench build has): what an append cost before the log;
//   - memory-signer: the log on, integrated and signed every second (the
//     default interval) with the log keys in memory;
//   - keystore-signer: the same with the log keys in Command's keystore
//     (software backend, recommended Argon2id): what serve does, one
//     unlock per checkpoint.
//
// Each round runs, for each operation, the same number of operations on
// each server in turn (the order rotates with the round), 8 clients at
// once through the in-process handler with CBOR bodies, every client
// signature made ahead. An enrollment is its three requests (request,
// approval, completion: one link appended); a link append is one
// rotate_keys link. Each server has ENIGM_BENCH_PER_ROUND accounts for
// each operation, and each account takes one operation per round (one
// more device, one more rotation), so no two clients touch one account
// at once. The figures are each round's rate on a log-on server
// over the off server's rate in the same round. After each turn of a
// log-on server the benchmark waits, untimed, until that server has
// published every leaf (drain), so that no server's integration runs in
// another's turn; the last integration of each turn (up to one interval
// of leaves) is therefore outside the timed part, and turns are made to
// span several intervals. The median is reported as
// <op>-<server>-ratio, the spread (lowest and highest round) in the log.
//
// ENIGM_BENCH_ROUNDS (default 10) and ENIGM_BENCH_PER_ROUND (default 400
// operations per server, operation and round) size it; ns/op means
// nothing.
//
// go test -tags enigmbench -run XXX -bench BenchmarkLogOnOff -benchtime 1x -timeout 60m ./command/
func BenchmarkLogOnOff(b *testing.B) {
	rounds, per := envInt(b, "ENIGM_BENCH_ROUNDS", 10), envInt(b, "ENIGM_BENCH_PER_ROUND", 400)
	if rounds >= chain.MaxDevices {
		b.Fatalf("ENIGM_BENCH_ROUNDS=%d: each round enrolls one more device into each account, at most %d rounds", rounds, chain.MaxDevices-1)
	}
	for _, engine := range []string{"sqlite", "postgres"} {
		b.Run(engine, func(b *testing.B) {
			sides := []*onOffSide{
				newOnOffSide(b, engine, "off", rounds, per),
				newOnOffSide(b, engine, "memory-signer", rounds, per),
				newOnOffSide(b, engine, "keystore-signer", rounds, per),
			}
			ops := []string{"enroll", "append"}
			rate := map[string][][]float64{} // op -> side -> rate per round
			for _, op := range ops {
				rate[op] = make([][]float64, len(sides))
			}
			b.ResetTimer()
			for r := range rounds {
				for _, op := range ops {
					for k := range sides {
						i := (k + r) % len(sides)
						ops, err := sides[i].run(op, r*per, per)
						if err != nil {
							b.Fatalf("%s on %s, round %d: %v", op, sides[i].name, r, err)
						}
						rate[op][i] = append(rate[op][i], ops)
						sides[i].drain(b)
					}
				}
			}
			b.StopTimer()
			// The log-on servers really logged what they appended, the
			// off server did not.
			for _, s := range sides {
				ls, err := store.LogStorage(s.e.srv.store)
				if err != nil {
					b.Fatal(err)
				}
				last := s.appends[len(s.appends)-1]
				_, err = ls.LeafIndex(context.Background(), last.acct, uint64(rounds))
				if logged := err == nil; logged != (s.name != "off") {
					b.Fatalf("%s server: the last appended link logged: %v (%v)", s.name, logged, err)
				}
			}
			for _, op := range ops {
				off := rate[op][0]
				b.Logf("%s %s: off %.0f/s (median of %d rounds, %.0f to %.0f)", engine, op, median(off), rounds, slices.Min(off), slices.Max(off))
				for i := 1; i < len(sides); i++ {
					ratios := make([]float64, rounds)
					for r := range ratios {
						ratios[r] = rate[op][i][r] / off[r]
					}
					b.Logf("%s %s: %s %.0f/s, ratio to off: median %.2f, rounds %.2f to %.2f", engine, op, sides[i].name, median(rate[op][i]), median(ratios), slices.Min(ratios), slices.Max(ratios))
					b.ReportMetric(median(ratios), op+"-"+sides[i].name+"-ratio")
				}
				b.ReportMetric(median(off), op+"-off-per-s")
			}
		})
	}
}

// onOffSide is one server of BenchmarkLogOnOff with its operations made
// ahead: enrolls[i] and appends[i] are the i-th of each.
type onOffSide struct {
	name    string
	e       *env
	enrolls []preparedEnroll
	appends []preparedAppend
}

// preparedAppend is one rotate_keys link, signed ahead, for its account.
type preparedAppend struct {
	acct, path, token string
	link              api.LinkRequest
}

func newOnOffSide(b *testing.B, engine, name string, rounds, per int) *onOffSide {
	dsn := storetest.SQLiteDSN(b)
	if engine == "postgres" {
		dsn = storetest.PostgresDSN(b)
	}
	var opts []func(*Config)
	switch name {
	case "memory-signer":
		opts = append(opts, func(c *Config) { c.LogSigner = translogtest.NewSigner(b, testLogOrigin) })
	case "keystore-signer":
		opts = append(opts, func(c *Config) {
			c.KeystoreBackend = func(string) (backend.Backend, error) { return soft.New(soft.Options{}) }
			s, err := LogSigner(context.Background(), *c)
			if err != nil {
				b.Fatal(err)
			}
			c.LogSigner = s
		})
	}
	e := newEnvDSN(b, dsn, opts...)
	if name == "off" {
		if err := store.DisableLogForBenchmark(e.srv.store); err != nil {
			b.Fatal(err)
		}
	}
	e.waitListening()
	// per accounts for each operation, each taking one operation of
	// every round: round r's operations are the r-th of each account, so
	// no two at once touch one account.
	s := &onOffSide{name: name, e: e, enrolls: make([]preparedEnroll, rounds*per), appends: make([]preparedAppend, rounds*per)}
	for i := range per {
		A := newDev(fmt.Sprintf("onoff/e%d/A", i))
		a := e.newAccount(fmt.Sprintf("onoff-e-%d", i), A, chain.DefaultPolicy())
		R := newDev(fmt.Sprintf("onoff/a%d/A", i))
		ra := e.newAccount(fmt.Sprintf("onoff-a-%d", i), R, chain.DefaultPolicy())
		for r := range rounds {
			s.enrolls[r*per+i] = prepareEnrollInto(b, a, A, fmt.Sprintf("onoff/e%d/N%d", i, r))
			l := ra.rotateKEMLink(R, r+1)
			ra.advance(l)
			s.appends[r*per+i] = preparedAppend{acct: ra.id, path: "/v1/accounts/" + ra.id + "/links", token: ra.token(R),
				link: api.LinkRequest{Link: l.Bytes()}}
		}
	}
	return s
}

// run runs operations [from, from+n) of kind op on 8 clients at once and
// returns the operations per second.
func (s *onOffSide) run(op string, from, n int) (float64, error) {
	var next atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
		}
		mu.Unlock()
	}
	start := time.Now()
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= from+n {
					return
				}
				var err error
				if op == "enroll" {
					err = s.enroll(&s.enrolls[i])
				} else {
					err = s.append(&s.appends[i])
				}
				if err != nil {
					fail(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds(), first
}

// drain waits, untimed, until a log-on server has published a
// checkpoint covering every leaf sequenced so far, so that its last
// integration and signature (at most one interval's worth of leaves) do
// not run during another server's turn.
func (s *onOffSide) drain(b *testing.B) {
	if s.name == "off" {
		return
	}
	ctx := context.Background()
	ls, err := store.LogStorage(s.e.srv.store)
	if err != nil {
		b.Fatal(err)
	}
	var n uint64
	if err := ls.Update(ctx, func(ctx context.Context, tx translog.Tx) (err error) {
		n, err = tx.Sequenced(ctx)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		st, err := ls.State(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if st.Checkpoint != nil {
			c, err := translog.VerifyCheckpoint(st.Checkpoint, s.e.srv.cfg.LogSigner.Origin(), s.e.srv.cfg.LogSigner.VerifierKeys())
			if err != nil {
				b.Fatal(err)
			}
			if c.Size >= n {
				return
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s server: %d leaves sequenced, not published after a minute:\n%s", s.name, n, s.e.logText())
		}
	}
}

func (s *onOffSide) enroll(p *preparedEnroll) error {
	r := s.e.doCBOR("POST", "/v1/accounts/"+p.a.id+"/enrollments", "", &p.reqBody)
	if r.code != 201 {
		return fmt.Errorf("enrollment request: %d %s", r.code, r.body)
	}
	var en api.Enrollment
	if err := api.UnmarshalCBOR(r.body, &en); err != nil {
		return fmt.Errorf("enrollment request: %v", err)
	}
	if r = s.e.doCBOR("POST", "/v1/enrollments/"+en.RequestID+"/approve", p.token, &p.approve); r.code != 200 {
		return fmt.Errorf("approval: %d %s", r.code, r.body)
	}
	if r = s.e.doCBOR("POST", "/v1/enrollments/"+en.RequestID+"/complete", "", &p.link); r.code != 201 {
		return fmt.Errorf("completion: %d %s", r.code, r.body)
	}
	return nil
}

func (s *onOffSide) append(p *preparedAppend) error {
	if r := s.e.doCBOR("POST", p.path, p.token, &p.link); r.code != 201 {
		return fmt.Errorf("append: %d %s", r.code, r.body)
	}
	return nil
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a whole number of at least 1", name, v)
	}
	return n
}

func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
