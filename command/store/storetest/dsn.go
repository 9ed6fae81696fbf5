// Package storetest is the conformance suite every storage engine of
// command/store passes, and the helpers that give tests a fresh database of
// each engine.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/enigm/enigm/command/store"
	"github.com/enigm/enigm/internal/testenv"
)

// PostgresEnv names the environment variable with the PostgreSQL server
// the tests use (scripts/test.sh starts a throwaway cluster and sets it).
const PostgresEnv = "ENIGM_TEST_POSTGRES_URL"

// SQLiteDSN returns the path of a new SQLite database in t's temporary
// directory.
func SQLiteDSN(t testing.TB) string {
	return filepath.Join(t.TempDir(), "command.db")
}

// PostgresDSN returns a URL of the PostgreSQL server in
// $ENIGM_TEST_POSTGRES_URL whose search path is a new, empty schema,
// dropped when t ends. Without a reachable server the test is skipped, or
// fails under ENIGM_REQUIRE_ALL=1.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv(PostgresEnv)
	if base == "" {
		testenv.Missing(t, "PostgreSQL", errors.New(PostgresEnv+" is not set (scripts/test.sh starts a throwaway cluster)"))
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		testenv.Missing(t, "PostgreSQL", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		admin.Close()
		testenv.Missing(t, "PostgreSQL", err)
	}
	var b [6]byte
	rand.Read(b[:])
	schema := "enigm_t_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		t.Fatalf("creating schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		admin.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE")
		admin.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", PostgresEnv, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// RawDB opens the database behind dsn with database/sql, bypassing the
// store: for tests that tamper with rows directly. Close it after use.
func RawDB(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	driver := "sqlite"
	if store.IsPostgresURL(dsn) {
		driver = "pgx"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Rebind rewrites ? placeholders as $n when dsn is a PostgreSQL URL.
func Rebind(dsn, q string) string {
	if !store.IsPostgresURL(dsn) {
		return q
	}
	out := make([]byte, 0, len(q)+8)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			out = append(out, '$')
			out = append(out, []byte(itoa(n))...)
			continue
		}
		out = append(out, q[i])
	}
	return string(out)
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}
