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
// Each round gives each server, for each operation, one turn (the order
// of the servers rotates with the round): 8 clients at once through the
// in-process handler with CBOR bodies, every client signature made
// ahead. An enrollment is its three requests (request, approval,
// completion: one link appended); a link append is one rotate_keys link.
// Each server has ENIGM_BENCH_ACCOUNTS accounts for each operation, and
// each client owns every 8th account and runs its operations in order,
// so no two clients touch one account at once; a turn takes
// ENIGM_BENCH_ENROLLS enrollments (new devices) or ENIGM_BENCH_APPENDS
// rotations from every account, so that it spans a few integration
// intervals. The figures are each round's rate on a log-on server over
// the off server's rate in the same round. After each turn of a log-on
// server the benchmark waits, untimed, until that server has published
// every leaf (drain), so that no server's integration runs in another's
// turn: the last integration of each turn (up to one interval of leaves)
// is outside the timed part. The median is reported as
// <op>-<server>-ratio, the spread (lowest and highest round) in the log.
//
// ENIGM_BENCH_ROUNDS (default 8), ENIGM_BENCH_ACCOUNTS (200),
// ENIGM_BENCH_ENROLLS (4) and ENIGM_BENCH_APPENDS (12) size it; ns/op
// means nothing.
//
// go test -tags enigmbench -run XXX -bench BenchmarkLogOnOff -benchtime 1x -timeout 60m ./command/
func BenchmarkLogOnOff(b *testing.B) {
	sz := onOffSize{
		rounds:   envInt(b, "ENIGM_BENCH_ROUNDS", 8),
		accounts: envInt(b, "ENIGM_BENCH_ACCOUNTS", 200),
		enrolls:  envInt(b, "ENIGM_BENCH_ENROLLS", 4),
		appends:  envInt(b, "ENIGM_BENCH_APPENDS", 12),
	}
	if sz.rounds*sz.enrolls >= chain.MaxDevices {
		b.Fatalf("ENIGM_BENCH_ROUNDS × ENIGM_BENCH_ENROLLS = %d devices enrolled into each account, at most %d", sz.rounds*sz.enrolls, chain.MaxDevices-1)
	}
	for _, engine := range []string{"sqlite", "postgres"} {
		b.Run(engine, func(b *testing.B) {
			sides := []*onOffSide{
				newOnOffSide(b, engine, "off", sz),
				newOnOffSide(b, engine, "memory-signer", sz),
				newOnOffSide(b, engine, "keystore-signer", sz),
			}
			ops := []string{"enroll", "append"}
			rate := map[string][][]float64{} // op -> side -> rate per round
			for _, op := range ops {
				rate[op] = make([][]float64, len(sides))
			}
			b.ResetTimer()
			for r := range sz.rounds {
				for _, op := range ops {
					for k := range sides {
						i := (k + r) % len(sides)
						ops, err := sides[i].run(op, r)
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
				last := s.appends[sz.rounds-1][len(s.appends[sz.rounds-1])-1]
				_, err = ls.LeafIndex(context.Background(), last.acct, uint64(sz.rounds*sz.appends))
				if logged := err == nil; logged != (s.name != "off") {
					b.Fatalf("%s server: the last appended link logged: %v (%v)", s.name, logged, err)
				}
			}
			for _, op := range ops {
				off := rate[op][0]
				b.Logf("%s %s: off %.0f/s (median of %d rounds, %.0f to %.0f)", engine, op, median(off), sz.rounds, slices.Min(off), slices.Max(off))
				for i := 1; i < len(sides); i++ {
					ratios := make([]float64, sz.rounds)
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

// onOffSize sizes BenchmarkLogOnOff: rounds, accounts per server and
// operation, and operations per account in one turn.
type onOffSize struct{ rounds, accounts, enrolls, appends int }

// onOffClients is how many clients run a turn at once.
const onOffClients = 8

// onOffSide is one server of BenchmarkLogOnOff with its operations made
// ahead: enrolls[r] and appends[r] are round r's, in the order each
// client runs its own (account i belongs to client i % onOffClients).
type onOffSide struct {
	name    string
	e       *env
	sz      onOffSize
	enrolls [][]preparedEnroll
	appends [][]preparedAppend
}

// preparedAppend is one rotate_keys link, signed ahead, for its account.
type preparedAppend struct {
	acct, path, token string
	link              api.LinkRequest
}

func newOnOffSide(b *testing.B, engine, name string, sz onOffSize) *onOffSide {
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
	s := &onOffSide{name: name, e: e, sz: sz, enrolls: make([][]preparedEnroll, sz.rounds), appends: make([][]preparedAppend, sz.rounds)}
	for i := range sz.accounts {
		A := newDev(fmt.Sprintf("onoff/e%d/A", i))
		a := e.newAccount(fmt.Sprintf("onoff-e-%d", i), A, chain.DefaultPolicy())
		R := newDev(fmt.Sprintf("onoff/a%d/A", i))
		ra := e.newAccount(fmt.Sprintf("onoff-a-%d", i), R, chain.DefaultPolicy())
		for r := range sz.rounds {
			for k := range sz.enrolls {
				s.enrolls[r] = append(s.enrolls[r], prepareEnrollInto(b, a, A, fmt.Sprintf("onoff/e%d/N%d.%d", i, r, k)))
			}
			for k := range sz.appends {
				l := ra.rotateKEMLink(R, r*sz.appends+k+1)
				ra.advance(l)
				s.appends[r] = append(s.appends[r], preparedAppend{acct: ra.id, path: "/v1/accounts/" + ra.id + "/links", token: ra.token(R),
					link: api.LinkRequest{Link: l.Bytes()}})
			}
		}
	}
	return s
}

// run runs round r's operations of kind op, each client its own accounts'
// in order, and returns the operations per second.
func (s *onOffSide) run(op string, r int) (float64, error) {
	n, each := len(s.enrolls[r]), s.sz.enrolls
	do := func(i int) error { return s.enroll(&s.enrolls[r][i]) }
	if op == "append" {
		n, each = len(s.appends[r]), s.sz.appends
		do = func(i int) error { return s.append(&s.appends[r][i]) }
	}
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	start := time.Now()
	for c := range onOffClients {
		wg.Go(func() {
			for i := range n {
				if (i/each)%onOffClients != c { // operation i is account i/each's
					continue
				}
				if err := do(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
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
