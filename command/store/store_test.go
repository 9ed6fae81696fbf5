package store_test

import (
	"testing"

	"github.com/enigm/enigm/command/store/storetest"
)

func TestSQLite(t *testing.T) {
	t.Parallel()
	storetest.Run(t, storetest.SQLiteDSN)
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	storetest.PostgresDSN(t) // skip (or fail under ENIGM_REQUIRE_ALL=1) before the subtests
	storetest.Run(t, storetest.PostgresDSN)
}
