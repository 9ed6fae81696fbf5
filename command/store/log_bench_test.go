package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/enigm/enigm/command/store/storetest"
	"github.com/enigm/enigm/translog"
	"github.com/enigm/enigm/translog/translogtest"
)

// BenchmarkIntegrate4096: one integration of 4096 new leaves on SQLite,
// over a log whose map already holds 100,000 accounts. links: the leaves
// are chain links of 1024 accounts, so the integrator parses each, sets
// the map, stores 1024 map rows and hashes the new root (what the map
// costs); not-links: leaves of the same sizes that are not chain links,
// so the map stays as it is (the integration without the map's work:
// leaf hashes, tiles, checkpoint, and the one map leaf). The ratio of the
// two is what the map adds to an integration (docs/perf.md).
func BenchmarkIntegrate4096(b *testing.B) {
	ls := translogtest.Links4096(b)
	junk := make([][]byte, len(ls))
	for i, l := range ls {
		junk[i] = bytes.Repeat([]byte{'j'}, len(l))
	}
	for _, c := range []struct {
		name   string
		leaves [][]byte
	}{{"links", ls}, {"not-links", junk}} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			dsn := storetest.SQLiteDSN(b)
			s := storetest.Open(b, dsn)
			db := storetest.RawDB(b, dsn)
			// 100,000 accounts in the map already.
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				b.Fatal(err)
			}
			for i := range 100_000 {
				var seq [8]byte
				binary.BigEndian.PutUint64(seq[:], uint64(i))
				k := sha256.Sum256(append([]byte("prefill"), seq[:]...))
				if _, err := tx.ExecContext(ctx, `INSERT INTO log_map (account_id, seq, head) VALUES (?,?,?)`, k[:], 1, k[:]); err != nil {
					b.Fatal(err)
				}
			}
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
			l := translog.New(logOf(b, s), logSigner(b))
			next := 0
			add := func() {
				tx, err := db.BeginTx(ctx, nil)
				if err != nil {
					b.Fatal(err)
				}
				for _, lf := range c.leaves {
					if _, err := tx.ExecContext(ctx, `INSERT INTO log_leaves (idx, account_id, seq, map_data) SELECT next, ?, next, ? FROM log_sequence WHERE id = 1`,
						fmt.Sprintf("bench-%d", next), lf); err != nil {
						b.Fatal(err)
					}
					if _, err := tx.ExecContext(ctx, `UPDATE log_sequence SET next = next + 1 WHERE id = 1`); err != nil {
						b.Fatal(err)
					}
					next++
				}
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
			}
			add()
			if _, err := l.Integrate(ctx); err != nil { // loads the map; not timed
				b.Fatal(err)
			}
			var cpu time.Duration
			for b.Loop() {
				b.StopTimer()
				add()
				start := translogtest.CPUTime(b)
				b.StartTimer()
				if _, err := l.Integrate(ctx); err != nil {
					b.Fatal(err)
				}
				cpu += translogtest.CPUTime(b) - start
			}
			b.ReportMetric(float64(cpu)/float64(b.N)/1e6, "cpu-ms/op")
		})
	}
}
