package load

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// progress is the live line on stderr: elapsed time, requests done, the
// current rate (over the last second or so) and errors. On a terminal it
// rewrites one line several times a second; otherwise it prints a line
// every few seconds.
type progress struct {
	w     io.Writer
	tty   bool
	label string
	unit  string
	c     *counters
	start time.Time

	stop chan struct{}
	done sync.WaitGroup
}

func startProgress(w io.Writer, tty bool, label, unit string, c *counters) *progress {
	p := &progress{w: w, tty: tty, label: label, unit: unit, c: c, start: time.Now(), stop: make(chan struct{})}
	p.done.Add(1)
	go p.run()
	return p
}

func (p *progress) run() {
	defer p.done.Done()
	every := 250 * time.Millisecond
	printEvery := every
	if !p.tty {
		printEvery = 5 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	type sample struct {
		at time.Time
		n  int64
	}
	window := []sample{{p.start, 0}}
	lastPrint := p.start
	for {
		select {
		case <-p.stop:
			return
		case now := <-t.C:
			n := p.c.done.Load()
			window = append(window, sample{now, n})
			for len(window) > 2 && now.Sub(window[0].at) > 2*time.Second {
				window = window[1:]
			}
			if now.Sub(lastPrint) < printEvery {
				continue
			}
			lastPrint = now
			first := window[0]
			rate := float64(n-first.n) / now.Sub(first.at).Seconds()
			p.print(now, n, rate, false)
		}
	}
}

func (p *progress) line(now time.Time, n int64, rate float64) string {
	return fmt.Sprintf("[%s] %6.1fs  %s %s  %s %s/s  errors %d",
		p.label, now.Sub(p.start).Seconds(), thousands(n), p.unit, thousands(int64(rate+0.5)), p.unit, p.c.errors.Load())
}

func (p *progress) print(now time.Time, n int64, rate float64, final bool) {
	s := p.line(now, n, rate)
	switch {
	case p.tty && final:
		fmt.Fprintf(p.w, "\r\033[K%s\n", s)
	case p.tty:
		fmt.Fprintf(p.w, "\r\033[K%s", s)
	default:
		fmt.Fprintln(p.w, s)
	}
}

// finish stops the live line and prints the phase's overall figures.
func (p *progress) finish() {
	close(p.stop)
	p.done.Wait()
	now := time.Now()
	n := p.c.done.Load()
	p.print(now, n, float64(n)/now.Sub(p.start).Seconds(), true)
}

// thousands formats n with thin separators: 1,234,567.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
