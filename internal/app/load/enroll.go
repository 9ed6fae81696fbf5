package load

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// EnrollResult is the enrollment scenario's outcome: completed enrollments
// per second against the bound that the signature verifications of an
// enrollment set on this machine.
type EnrollResult struct {
	Enrollments int64   `json:"enrollments"`
	Errors      int64   `json:"errors"`
	Workers     int     `json:"workers"`
	Seconds     float64 `json:"seconds"`
	PerSec      float64 `json:"per_second"`
	Latency     Latency `json:"latency"` // request, approval and completion together
	Steps       struct {
		Request  Latency `json:"request"`
		Approve  Latency `json:"approve"`
		Complete Latency `json:"complete"`
	} `json:"steps"`
	CPU      CPU      `json:"cpu"`
	ErrorLog []string `json:"error_log,omitempty"`

	// The bound: Verifications hybrid verifications per enrollment (the
	// approval when it is submitted; the approval again and the new
	// device's proof of possession when the link is appended), timed here
	// on one core on the enrollments' own signatures.
	Verifications int     `json:"verifications_per_enrollment"`
	ApprovalMs    float64 `json:"approval_verify_ms"`
	SubjectMs     float64 `json:"subject_verify_ms"`
	PerCore       float64 `json:"bound_per_core"`
	Bound         float64 `json:"bound"` // PerCore × cores
	// Ratio is PerSec / Bound (goal: at least 0.5).
	Ratio float64 `json:"ratio"`

	// ServerMs is the CPU time the server spent per enrollment (with the
	// local PostgreSQL processes when it uses one), from /proc; VerifyShare
	// is the verifications' part of it, (2·ApprovalMs + SubjectMs) /
	// ServerMs: the ratio the server would reach with every core to itself
	// (the generator elsewhere), if it stays CPU-bound. Zero when the
	// server's CPU time is unknown (--server).
	ServerMs    float64 `json:"server_cpu_ms_per_enrollment,omitempty"`
	VerifyShare float64 `json:"verify_share_of_server_cpu,omitempty"`
}

// runEnroll prepares opt.Enrollments accounts, each with one new device
// to enroll against its genesis head and every signature made ahead
// (approval, proof of possession, the approver's token), then runs the
// enrollments with opt.Workers workers.
func (r *run) runEnroll(ctx context.Context) (*EnrollResult, error) {
	n := r.opt.Enrollments
	preps := make([]*enrollment, n)
	var cnt counters
	p := startProgress(r.stderr, r.tty, "enroll/setup", "accounts", &cnt)
	err := parallel(ctx, n, &cnt.done, func(ctx context.Context, i int) error {
		c := r.apis[i%len(r.apis)]
		a, first, tok, err := signedIn(ctx, c, r.name(fmt.Sprintf("e%d", i)), "approver", r.recovery)
		if err != nil {
			return err
		}
		dev, err := newDevice("new device")
		if err != nil {
			return err
		}
		en, err := prepareAdd(a, dev, first)
		if err != nil {
			return err
		}
		en.token = tok
		preps[i] = en
		return nil
	})
	p.finish()
	if err != nil {
		return nil, fmt.Errorf("preparing enrollments: %w", err)
	}

	res := &EnrollResult{Workers: r.opt.Workers, Verifications: 3}
	res.ApprovalMs = timeVerify(preps, func(e *enrollment) func() error { return e.verifyApproval })
	res.SubjectMs = timeVerify(preps, func(e *enrollment) func() error { return e.verifySubject })
	perEnrollment := 2*res.ApprovalMs + res.SubjectMs // ms of one core
	res.PerCore = 1000 / perEnrollment
	res.Bound = res.PerCore * float64(runtime.NumCPU())
	fmt.Fprintf(r.stderr, "[enroll] verification: approval %.3f ms, proof of possession %.3f ms; bound %.0f enrollments/s per core, %.0f/s on %d cores\n",
		res.ApprovalMs, res.SubjectMs, res.PerCore, res.Bound, runtime.NumCPU())

	var (
		all, req, appr, comp latencies
		next                 atomic.Int64
		elog                 errorLog
		wg                   sync.WaitGroup
	)
	cnt = counters{}
	p = startProgress(r.stderr, r.tty, "enroll", "enrollments", &cnt)
	m := &cpuMeter{servers: r.serverPIDs(), postgres: r.postgres}
	m.begin()
	for range r.opt.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := &steps{all: all.recorder(), req: req.recorder(), appr: appr.recorder(), comp: comp.recorder()}
			defer st.flush()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				c := r.apis[i%len(r.apis)]
				if _, err := runEnrollment(ctx, c, preps[i], st); err != nil {
					cnt.errors.Add(1)
					elog.add(err.Error())
					continue
				}
				cnt.done.Add(1)
			}
		}()
	}
	wg.Wait()
	res.CPU = m.end()
	p.finish()
	res.Enrollments, res.Errors = cnt.done.Load(), cnt.errors.Load()
	res.Seconds = res.CPU.Wall
	res.PerSec = float64(res.Enrollments) / res.Seconds
	res.Ratio = res.PerSec / res.Bound
	if srv := res.CPU.Server + res.CPU.Postgres; srv > 0 && res.Enrollments > 0 {
		res.ServerMs = srv * 1000 / float64(res.Enrollments)
		res.VerifyShare = perEnrollment / res.ServerMs
	}
	res.Latency = all.summary()
	res.Steps.Request, res.Steps.Approve, res.Steps.Complete = req.summary(), appr.summary(), comp.summary()
	res.ErrorLog = elog.list()
	return res, ctx.Err()
}

// timeVerify returns the mean time in ms of one verification, on one
// goroutine, cycling through the enrollments' signatures for at least
// 300 ms.
func timeVerify(preps []*enrollment, f func(*enrollment) func() error) float64 {
	n := 0
	start := time.Now()
	for i := 0; time.Since(start) < 300*time.Millisecond || n < 100; i++ {
		if err := f(preps[i%len(preps)])(); err != nil {
			panic(fmt.Sprintf("a prepared signature does not verify: %v", err))
		}
		n++
	}
	return ms(time.Since(start)) / float64(n)
}

// steps records the latencies of one worker's enrollments.
type steps struct {
	all, req, appr, comp *recorder
	buf                  bytes.Buffer
}

func (s *steps) flush() {
	for _, r := range []*recorder{s.all, s.req, s.appr, s.comp} {
		r.flush()
	}
}

// runEnrollment sends the request, the approval and the completion of a
// prepared enrollment. It returns the request id.
func runEnrollment(ctx context.Context, c *endpoint, en *enrollment, st *steps) (string, error) {
	var buf *bytes.Buffer
	if st != nil {
		buf = &st.buf
	} else {
		buf = new(bytes.Buffer)
	}
	step := func(rec func(*steps) *recorder, path, token string, body []byte, want int) error {
		t0 := time.Now()
		status, err := c.rawCBOR(ctx, "POST", path, token, body, buf)
		if err != nil || status != want {
			return errors.New(describe(status, buf.Bytes(), err))
		}
		if st != nil {
			rec(st).add(time.Since(t0))
		}
		return nil
	}
	t0 := time.Now()
	if err := step(func(s *steps) *recorder { return s.req }, "/v1/accounts/"+en.acct.id+"/enrollments", "", en.request, 201); err != nil {
		return "", fmt.Errorf("request: %w", err)
	}
	rid := requestID(buf.Bytes())
	if err := step(func(s *steps) *recorder { return s.appr }, "/v1/enrollments/"+rid+"/approve", en.token, en.approve, 200); err != nil {
		return rid, fmt.Errorf("approval: %w", err)
	}
	if err := step(func(s *steps) *recorder { return s.comp }, "/v1/enrollments/"+rid+"/complete", "", en.link, 201); err != nil {
		return rid, fmt.Errorf("completion: %w", err)
	}
	if st != nil {
		st.all.add(time.Since(t0))
	}
	return rid, nil
}
