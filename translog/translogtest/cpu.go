package translogtest

import (
	"syscall"
	"testing"
	"time"
)

// CPUTime returns the user and system CPU time this process has used.
func CPUTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ReportCPU reports, as cpu-ms/op, the process's CPU time since start
// divided by b.N: less sensitive than ns/op to other load on a shared
// machine (it counts every goroutine of the process, the garbage
// collector's included).
func ReportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(CPUTime(b)-start)/float64(b.N)/1e6, "cpu-ms/op")
}
