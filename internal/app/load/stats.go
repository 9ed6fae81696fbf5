package load

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// latencies collects request durations from many workers; each worker
// appends to its own slice and the slices are merged at the end.
type latencies struct {
	mu   sync.Mutex
	all  []time.Duration
	done bool
}

// recorder is one worker's share of a latencies.
type recorder struct {
	l *latencies
	d []time.Duration
}

func (l *latencies) recorder() *recorder { return &recorder{l: l, d: make([]time.Duration, 0, 4096)} }

func (r *recorder) add(d time.Duration) { r.d = append(r.d, d) }

// flush hands the worker's durations to the collection.
func (r *recorder) flush() {
	r.l.mu.Lock()
	r.l.all = append(r.l.all, r.d...)
	r.l.mu.Unlock()
	r.d = r.d[:0]
}

// Latency summarises durations in milliseconds.
type Latency struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

func (l *latencies) summary() Latency {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.done {
		slices.Sort(l.all)
		l.done = true
	}
	return summarize(l.all)
}

// summarize returns the percentiles of sorted durations (nearest rank).
func summarize(sorted []time.Duration) Latency {
	n := len(sorted)
	if n == 0 {
		return Latency{}
	}
	q := func(p float64) float64 {
		i := int(p*float64(n)+0.5) - 1
		i = min(max(i, 0), n-1)
		return ms(sorted[i])
	}
	return Latency{N: n, P50: q(0.50), P90: q(0.90), P99: q(0.99), Max: ms(sorted[n-1])}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (l Latency) String() string {
	return fmt.Sprintf("p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, max %.3f ms", l.P50, l.P90, l.P99, l.Max)
}

// counters are the live figures of a phase, read by the progress line.
type counters struct {
	done   atomic.Int64
	errors atomic.Int64
}

// errorLog keeps the first few distinct errors of a phase for the report.
type errorLog struct {
	mu    sync.Mutex
	seen  map[string]int
	order []string
}

func (e *errorLog) add(msg string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.seen == nil {
		e.seen = map[string]int{}
	}
	if _, ok := e.seen[msg]; !ok {
		if len(e.order) >= 8 {
			e.seen["(other errors)"]++
			return
		}
		e.order = append(e.order, msg)
	}
	e.seen[msg]++
}

// list returns "message (n×)" lines, in order of first occurrence.
func (e *errorLog) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, m := range e.order {
		out = append(out, fmt.Sprintf("%s (%d×)", m, e.seen[m]))
	}
	if n := e.seen["(other errors)"]; n > 0 {
		out = append(out, fmt.Sprintf("other errors (%d×)", n))
	}
	return out
}
