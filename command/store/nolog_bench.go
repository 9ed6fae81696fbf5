//go:build enigmbench

package store

import "fmt"

// DisableLogForBenchmark makes st store every later link without
// sequencing it as a transparency log leaf: the "log off" side of
// command's BenchmarkLogOnOff, which measures what the log costs an
// append. It exists only in builds with the enigmbench tag; a store
// changed this way must not be served to anyone (its links are unlogged,
// which devices that follow the log refuse).
func DisableLogForBenchmark(st Store) error {
	switch s := st.(type) {
	case *sqlStore:
		s.noLog = true
	case *pgStore:
		s.noLog = true
	default:
		return fmt.Errorf("store: %T has no log to disable", st)
	}
	return nil
}
