package load

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// DeviceListResult is the device-list scenario's outcome: the server's
// GET /v1/accounts/{id}/devices (the whole chain with the device list, as a
// device fetches it to verify) against a trivial net/http server writing
// the same bytes from memory, in the same run, alternating between them.
type DeviceListResult struct {
	Devices     int     `json:"devices"`
	Bytes       int     `json:"response_bytes"`
	Concurrency int     `json:"concurrency"`
	Server      Fetches `json:"server"`
	Trivial     Fetches `json:"trivial"`
	// Ratio is the server's throughput over the trivial server's (goal:
	// at least 0.5).
	Ratio float64 `json:"ratio"`
	// Segments are the per-round ratios (server over trivial in each
	// alternating round) and Spread their minimum, median and maximum:
	// how much the machine drifted during the run.
	Segments []float64 `json:"segment_ratios"`
	Spread   Spread    `json:"ratio_spread"`
}

// Spread is the minimum, median and maximum of per-segment ratios.
type Spread struct {
	Min    float64 `json:"min"`
	Median float64 `json:"median"`
	Max    float64 `json:"max"`
}

// spreadOf is xs' spread (zero for none).
func spreadOf(xs []float64) Spread {
	if len(xs) == 0 {
		return Spread{}
	}
	s := slices.Sorted(slices.Values(xs))
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Spread{Min: s[0], Median: m, Max: s[len(s)-1]}
}

// Fetches is one side of the comparison.
type Fetches struct {
	Requests int64    `json:"requests"`
	Errors   int64    `json:"errors"`
	Seconds  float64  `json:"seconds"`
	PerSec   float64  `json:"per_second"`
	Latency  Latency  `json:"latency"`
	CPU      CPU      `json:"cpu"`
	ErrorLog []string `json:"error_log,omitempty"`
}

// runDevices sets up an account with opt.Devices devices and compares the
// fetches.
func (r *run) runDevices(ctx context.Context) (*DeviceListResult, error) {
	c := r.apis[0]
	recovery := r.recovery
	a, first, tok, err := signedIn(ctx, c, r.name("devices"), "devices-0", recovery)
	if err != nil {
		return nil, err
	}
	for i := 1; i < r.opt.Devices; i++ {
		d, err := newDevice(fmt.Sprintf("devices-%d", i))
		if err != nil {
			return nil, err
		}
		en, err := prepareAdd(a, d, first)
		if err != nil {
			return nil, err
		}
		en.token = tok
		if err := enroll(ctx, c, en); err != nil {
			return nil, err
		}
	}
	path := "/v1/accounts/" + a.id + "/devices"
	var body bytes.Buffer
	if status, err := c.raw(ctx, "GET", path, "", nil, &body); err != nil || status != 200 {
		return nil, fmt.Errorf("GET %s: %s", path, describe(status, body.Bytes(), err))
	}
	file := filepath.Join(r.dir, "devices.json")
	if err := os.WriteFile(file, body.Bytes(), 0o600); err != nil {
		return nil, err
	}
	triv, err := startTrivial(file)
	if err != nil {
		return nil, err
	}
	defer triv.stop()
	tc := newAPI(triv.url, r.hc)

	res := &DeviceListResult{Devices: r.opt.Devices, Bytes: body.Len(), Concurrency: r.opt.Concurrency}
	server := &fetchSide{name: "server", api: c, pids: r.serverPIDs(), postgres: r.postgres}
	trivial := &fetchSide{name: "trivial", api: tc, pids: []int{triv.pid()}}
	want := body.Len()
	// Warm both up, then alternate so that drift in the machine (other
	// load, frequency) falls on both alike.
	warm := min(time.Second, r.opt.Duration/4)
	for _, s := range []*fetchSide{trivial, server} {
		if err := s.run(ctx, r, path, want, warm, false); err != nil {
			return nil, err
		}
	}
	// Many short rounds, each side once per round, the order swapped
	// every round so that neither side always runs first; each side gets
	// opt.Duration in all.
	rounds := max(r.opt.Segments, 1)
	seg := r.opt.Duration / time.Duration(rounds)
	for i := range rounds {
		order := []*fetchSide{trivial, server}
		if i%2 == 1 {
			order = []*fetchSide{server, trivial}
		}
		for _, s := range order {
			if err := s.run(ctx, r, path, want, seg, true); err != nil {
				return nil, err
			}
		}
		if t, sv := trivial.rates[i], server.rates[i]; t > 0 {
			res.Segments = append(res.Segments, sv/t)
		}
	}
	res.Server, res.Trivial = server.result(), trivial.result()
	if res.Trivial.PerSec > 0 {
		res.Ratio = res.Server.PerSec / res.Trivial.PerSec
	}
	res.Spread = spreadOf(res.Segments)
	return res, nil
}

// fetchSide accumulates the timed segments against one server.
type fetchSide struct {
	name     string
	api      *endpoint
	pids     []int
	postgres bool

	lat     latencies
	rates   []float64 // requests per second of each recorded segment
	n, errs int64
	seconds float64
	cpu     CPU
	elog    errorLog
}

// run fetches path with opt.Concurrency clients for d; recorded segments
// count in the result, warm-ups do not.
func (s *fetchSide) run(ctx context.Context, r *run, path string, want int, d time.Duration, record bool) error {
	var cnt counters
	label := "devices/" + s.name
	if !record {
		label += " (warm-up)"
	}
	p := startProgress(r.stderr, r.tty, label, "requests", &cnt)
	m := &cpuMeter{servers: s.pids, postgres: s.postgres}
	m.begin()
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for range r.opt.Concurrency {
		wg.Add(1)
		rec := s.lat.recorder()
		go func() {
			defer wg.Done()
			var buf bytes.Buffer
			for ctx.Err() == nil && time.Now().Before(deadline) {
				t0 := time.Now()
				status, err := s.api.raw(ctx, "GET", path, "", nil, &buf)
				el := time.Since(t0)
				if err != nil || status != 200 || buf.Len() != want {
					cnt.errors.Add(1)
					if record {
						msg := describe(status, buf.Bytes(), err)
						if err == nil && status == 200 {
							msg = fmt.Sprintf("response of %d bytes, want %d", buf.Len(), want)
						}
						s.elog.add(msg)
					}
					continue
				}
				if record {
					rec.add(el)
				}
				cnt.done.Add(1)
			}
			if record {
				rec.flush()
			}
		}()
	}
	wg.Wait()
	cpu := m.end()
	p.finish()
	if !record {
		return ctx.Err()
	}
	s.n += cnt.done.Load()
	s.errs += cnt.errors.Load()
	rate := 0.0
	if cpu.Wall > 0 {
		rate = float64(cnt.done.Load()) / cpu.Wall
	}
	s.rates = append(s.rates, rate)
	s.seconds += cpu.Wall
	s.cpu = addCPU(s.cpu, cpu)
	return ctx.Err()
}

func (s *fetchSide) result() Fetches {
	f := Fetches{Requests: s.n, Errors: s.errs, Seconds: s.seconds, Latency: s.lat.summary(), CPU: s.cpu, ErrorLog: s.elog.list()}
	if s.seconds > 0 {
		f.PerSec = float64(s.n) / s.seconds
	}
	return f
}

func addCPU(a, b CPU) CPU {
	return CPU{Wall: a.Wall + b.Wall, Generator: a.Generator + b.Generator, Server: a.Server + b.Server,
		Postgres: a.Postgres + b.Postgres, Machine: a.Machine + b.Machine, Cores: b.Cores}
}
