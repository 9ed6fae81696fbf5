package load

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
)

// Machine describes where a run ran.
type Machine struct {
	CPU    string `json:"cpu"`
	Cores  int    `json:"cores"`
	Memory string `json:"memory"`
	OS     string `json:"os"`
	Go     string `json:"go"`
}

func (m Machine) String() string {
	return fmt.Sprintf("%d-core %s, %s, %s, %s", m.Cores, m.CPU, m.Memory, m.OS, m.Go)
}

func machine() Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH, CPU: "unknown CPU", Memory: "unknown memory"}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.Join(strings.Fields(v), " ")
				break
			}
		}
		f.Close()
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) >= 2 && fs[0] == "MemTotal:" {
				if kb, err := strconv.ParseFloat(fs[1], 64); err == nil {
					m.Memory = fmt.Sprintf("%.0f GiB", kb/(1<<20))
				}
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.OS = "Linux " + strings.TrimSpace(string(b)) + " " + runtime.GOARCH
	}
	return m
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func writeText(w io.Writer, r *Result) {
	fmt.Fprintf(w, "enigm-load: %s, %d instance(s); %s\n", r.Engine, r.Instances, r.Machine)
	if r.Database != "" {
		fmt.Fprintf(w, "database: %s\n", r.Database)
	}
	if d := r.Devices; d != nil {
		fmt.Fprintf(w, "\ndevice list (%d devices, %d bytes, %d clients):\n", d.Devices, d.Bytes, d.Concurrency)
		for _, s := range []struct {
			name string
			f    Fetches
		}{{"server ", d.Server}, {"trivial", d.Trivial}} {
			fmt.Fprintf(w, "  %s %10.0f req/s  %s  (%d requests, %d errors)\n", s.name, s.f.PerSec, s.f.Latency, s.f.Requests, s.f.Errors)
			fmt.Fprintf(w, "          %s\n", s.f.CPU)
			for _, e := range s.f.ErrorLog {
				fmt.Fprintf(w, "          error: %s\n", e)
			}
		}
		fmt.Fprintf(w, "  ratio %.2f (goal >= 0.5: %s); per round min %.2f, median %.2f, max %.2f over %d rounds\n",
			d.Ratio, verdict(d.Ratio >= 0.5), d.Spread.Min, d.Spread.Median, d.Spread.Max, len(d.Segments))
	}
	if e := r.Enroll; e != nil {
		fmt.Fprintf(w, "\nenrollments (%d workers):\n", e.Workers)
		fmt.Fprintf(w, "  %d completed in %.2fs: %.0f/s, %d errors\n", e.Enrollments, e.Seconds, e.PerSec, e.Errors)
		fmt.Fprintf(w, "  latency of request+approval+completion: %s\n", e.Latency)
		fmt.Fprintf(w, "    request %s\n    approve %s\n    complete %s\n", e.Steps.Request, e.Steps.Approve, e.Steps.Complete)
		fmt.Fprintf(w, "  %s\n", e.CPU)
		fmt.Fprintf(w, "  bound: %d verifications per enrollment (approval %.3f ms twice, proof of possession %.3f ms) = %.0f/s per core x %d cores = %.0f/s\n",
			e.Verifications, e.ApprovalMs, e.SubjectMs, e.PerCore, e.CPU.Cores, e.Bound)
		fmt.Fprintf(w, "  ratio %.2f (goal >= 0.5: %s)\n", e.Ratio, verdict(e.Ratio >= 0.5))
		if e.ServerMs > 0 {
			fmt.Fprintf(w, "  server CPU per enrollment %.3f ms, of which the verifications %.0f%% (the ratio with every core to the server)\n", e.ServerMs, 100*e.VerifyShare)
		}
		for _, x := range e.ErrorLog {
			fmt.Fprintf(w, "  error: %s\n", x)
		}
	}
	if v := r.Revoke; v != nil {
		fmt.Fprintf(w, "\nrevocation (%d rounds, %d senders, %d instance(s)):\n", v.Rounds, v.Senders, v.Instances)
		fmt.Fprintf(w, "  %d sends (%.0f/s); for B before the revocation: %d accepted, %d delivered\n", v.Sends, v.SendsPS, v.AcceptedForB, v.DeliveredToB)
		fmt.Fprintf(w, "  after the revocation was accepted: %d accepted for B, %d delivered to B (goal 0: %s)\n", v.AcceptedAfter, v.DeliveredAfter, verdict(v.Zero()))
		fmt.Fprintf(w, "  B's fetches after it: %d, answered %s; B's login after it refused in %d of %d rounds\n", v.FetchesAfter, answers(v.FetchAnswers), v.LoginRefused, v.Rounds)
		fmt.Fprintf(w, "  revocation accepted in %s\n", msList(v.RevokeMs))
		fmt.Fprintf(w, "  C's sync lists B revoked %s after the acceptance; %d of %d syncs started after it still listed B active\n", msList(v.SyncMs), v.StaleSyncs, v.Syncs)
		fmt.Fprintf(w, "  %s\n", v.CPU)
		for _, x := range v.ErrorLog {
			fmt.Fprintf(w, "  error: %s\n", x)
		}
	}
}

func answers(m map[string]int64) string {
	if len(m) == 0 {
		return "-"
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// msList summarises per-round times: median and maximum.
func msList(v []float64) string {
	if len(v) == 0 {
		return "(never)"
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return fmt.Sprintf("%.1f ms median, %.1f ms max (%d rounds)", s[(len(s)-1)/2], s[len(s)-1], len(s))
}

func cores(s, wall float64) string {
	if wall <= 0 || s <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", s/wall)
}

// writeMarkdown prints the tables of docs/perf.md for this run.
func writeMarkdown(w io.Writer, r *Result) {
	fmt.Fprintf(w, "Engine: %s, %d instance(s). Machine: %s.\n", r.Engine, r.Instances, r.Machine)
	if r.Database != "" {
		fmt.Fprintf(w, "Database: %s.\n", r.Database)
	}
	fmt.Fprintf(w, "\nCommand: `%s`\n", r.Command)
	if d := r.Devices; d != nil {
		fmt.Fprintf(w, "\n| device list (%d devices, %d B, %d clients) | req/s | p50 | p99 | CPU: server | generator |\n|---|---|---|---|---|---|\n", d.Devices, d.Bytes, d.Concurrency)
		for _, s := range []struct {
			name string
			f    Fetches
		}{{"Command", d.Server}, {"trivial net/http", d.Trivial}} {
			srv := s.f.CPU.Server + s.f.CPU.Postgres
			fmt.Fprintf(w, "| %s | %.0f | %.3f ms | %.3f ms | %s | %s |\n", s.name, s.f.PerSec, s.f.Latency.P50, s.f.Latency.P99, cores(srv, s.f.CPU.Wall), cores(s.f.CPU.Generator, s.f.CPU.Wall))
		}
		fmt.Fprintf(w, "| **ratio** | **%.2f** (rounds: min %.2f, median %.2f, max %.2f, n = %d) | | | | |\n", d.Ratio, d.Spread.Min, d.Spread.Median, d.Spread.Max, len(d.Segments))
	}
	if e := r.Enroll; e != nil {
		fmt.Fprintf(w, "\n| enrollments (%d workers) | value |\n|---|---|\n", e.Workers)
		fmt.Fprintf(w, "| completed | %d in %.2f s, %d errors |\n", e.Enrollments, e.Seconds, e.Errors)
		fmt.Fprintf(w, "| **completions/s** | **%.0f** |\n", e.PerSec)
		fmt.Fprintf(w, "| hybrid verify (approval / proof of possession) | %.3f ms / %.3f ms |\n", e.ApprovalMs, e.SubjectMs)
		fmt.Fprintf(w, "| bound: 1 / (2 × %.3f + %.3f ms) × %d cores | %.0f/s |\n", e.ApprovalMs, e.SubjectMs, e.CPU.Cores, e.Bound)
		fmt.Fprintf(w, "| **ratio** | **%.2f** |\n", e.Ratio)
		if e.ServerMs > 0 {
			fmt.Fprintf(w, "| server CPU per enrollment (with its PostgreSQL) / verifications' share | %.3f ms / %.0f%% |\n", e.ServerMs, 100*e.VerifyShare)
		}
		fmt.Fprintf(w, "| latency p50 / p99 (3 requests) | %.2f ms / %.2f ms |\n", e.Latency.P50, e.Latency.P99)
		fmt.Fprintf(w, "| CPU, cores busy: server / postgres / generator / machine | %s / %s / %s / %s |\n",
			cores(e.CPU.Server, e.CPU.Wall), cores(e.CPU.Postgres, e.CPU.Wall), cores(e.CPU.Generator, e.CPU.Wall), cores(e.CPU.Machine, e.CPU.Wall))
	}
	if v := r.Revoke; v != nil {
		fmt.Fprintf(w, "\n| revocation (%d rounds, %d senders, %d instance(s)) | value |\n|---|---|\n", v.Rounds, v.Senders, v.Instances)
		fmt.Fprintf(w, "| sends | %d (%.0f/s) |\n", v.Sends, v.SendsPS)
		fmt.Fprintf(w, "| envelopes for B before the revocation: accepted / delivered | %d / %d |\n", v.AcceptedForB, v.DeliveredToB)
		fmt.Fprintf(w, "| **after it was accepted: accepted for B / delivered to B** | **%d / %d** |\n", v.AcceptedAfter, v.DeliveredAfter)
		fmt.Fprintf(w, "| B's fetches after it | %d: %s |\n", v.FetchesAfter, answers(v.FetchAnswers))
		fmt.Fprintf(w, "| revocation accepted in | %s |\n", msList(v.RevokeMs))
		fmt.Fprintf(w, "| **C's sync lists B revoked, after the acceptance** | **%s** |\n", msList(v.SyncMs))
		fmt.Fprintf(w, "| C's syncs started after the acceptance still listing B active | %d of %d |\n", v.StaleSyncs, v.Syncs)
	}
}
