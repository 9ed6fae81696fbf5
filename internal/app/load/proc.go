package load

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// CPU accounting from /proc (Linux): the CPU time of processes, so that a
// run can tell the server's work from the load generator's. Elsewhere the
// figures are zero and reported as unknown.

// clockTick is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// Linux architecture Go supports.
const clockTick = 100

// procCPU returns the user+system CPU time of process pid.
func procCPU(pid int) (time.Duration, bool) {
	self, _, ok := procTimes(pid)
	return self, ok
}

// procTimes returns the user+system CPU time of process pid, and that of
// its children that ended and were waited for.
func procTimes(pid int) (self, children time.Duration, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	// The command name is in parentheses and may hold spaces: the fields
	// after it start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime, stime, cutime and cstime are fields
	// 14 to 17.
	if len(f) < 15 {
		return 0, 0, false
	}
	var t [4]uint64
	for k := range t {
		n, err := strconv.ParseUint(f[11+k], 10, 64)
		if err != nil {
			return 0, 0, false
		}
		t[k] = n
	}
	tick := func(n uint64) time.Duration { return time.Duration(n) * time.Second / clockTick }
	return tick(t[0] + t[1]), tick(t[2] + t[3]), true
}

// procName returns the command name of process pid.
func procName(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// namedCPU returns the summed CPU time of every process named name (e.g.
// "postgres": the PostgreSQL server and its backends), with that of their
// children that ended (backends that closed, counted in the postmaster),
// and how many there are.
func namedCPU(name string) (time.Duration, int) {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var total time.Duration
	n := 0
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil || procName(pid) != name {
			continue
		}
		if self, children, ok := procTimes(pid); ok {
			total += self + children
			n++
		}
	}
	return total, n
}

// selfCPU returns this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineCPU returns the busy and total CPU time of the whole machine
// from /proc/stat (all cores).
func machineCPU() (busy, total time.Duration, ok bool) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0, 0, false
	}
	fs := strings.Fields(sc.Text())
	if len(fs) < 5 || fs[0] != "cpu" {
		return 0, 0, false
	}
	var all, idle uint64
	for i, v := range fs[1:] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, 0, false
		}
		if i >= 8 { // guest times are included in user already
			break
		}
		all += n
		if i == 3 || i == 4 { // idle, iowait
			idle += n
		}
	}
	return time.Duration(all-idle) * time.Second / clockTick, time.Duration(all) * time.Second / clockTick, true
}

// cpuMeter measures CPU use over a timed phase.
type cpuMeter struct {
	servers  []int // server process ids
	postgres bool  // count processes named postgres

	start            time.Time
	self0, srv0, pg0 time.Duration
	busy0, total0    time.Duration
	srvOK, machineOK bool
}

// CPU is what a timed phase used, in CPU seconds.
type CPU struct {
	Wall      float64 `json:"wall_seconds"`
	Generator float64 `json:"generator_cpu_seconds"`
	Server    float64 `json:"server_cpu_seconds,omitempty"`   // the enigm-command processes started by the tool
	Postgres  float64 `json:"postgres_cpu_seconds,omitempty"` // local processes named postgres
	Machine   float64 `json:"machine_busy_seconds,omitempty"` // all cores, everything
	Cores     int     `json:"cores"`
}

func (m *cpuMeter) begin() {
	m.start = time.Now()
	m.self0 = selfCPU()
	m.srv0, m.srvOK = m.serverCPU()
	if m.postgres {
		m.pg0, _ = namedCPU("postgres")
	}
	m.busy0, m.total0, m.machineOK = machineCPU()
}

func (m *cpuMeter) serverCPU() (time.Duration, bool) {
	if len(m.servers) == 0 {
		return 0, false
	}
	var t time.Duration
	for _, pid := range m.servers {
		c, ok := procCPU(pid)
		if !ok {
			return 0, false
		}
		t += c
	}
	return t, true
}

func (m *cpuMeter) end() CPU {
	c := CPU{Wall: time.Since(m.start).Seconds(), Generator: (selfCPU() - m.self0).Seconds(), Cores: runtime.NumCPU()}
	if s, ok := m.serverCPU(); ok && m.srvOK {
		c.Server = (s - m.srv0).Seconds()
	}
	if m.postgres {
		pg, _ := namedCPU("postgres")
		c.Postgres = max(0, (pg - m.pg0).Seconds())
	}
	if busy, _, ok := machineCPU(); ok && m.machineOK {
		c.Machine = (busy - m.busy0).Seconds()
	}
	return c
}

// String describes the CPU use as cores busy on average.
func (c CPU) String() string {
	if c.Wall <= 0 {
		return "cpu: not measured"
	}
	cores := func(s float64) string { return fmt.Sprintf("%.2f", s/c.Wall) }
	var parts []string
	if c.Server > 0 {
		parts = append(parts, "server "+cores(c.Server))
	}
	if c.Postgres > 0 {
		parts = append(parts, "postgres "+cores(c.Postgres))
	}
	parts = append(parts, "generator "+cores(c.Generator))
	if c.Machine > 0 {
		parts = append(parts, "machine "+cores(c.Machine))
	}
	return fmt.Sprintf("cpu (cores busy on average, of %d): %s", c.Cores, strings.Join(parts, ", "))
}
