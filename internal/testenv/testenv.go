// Package testenv decides what a test does when a component it needs (TPM
// simulator, SoftHSM2, PostgreSQL, …) is missing: skip normally, fail when
// ENIGM_REQUIRE_ALL=1 (as CI sets it), so CI can never pass by skipping.
package testenv

import (
	"os"
	"testing"
)

// RequireAll reports whether ENIGM_REQUIRE_ALL=1.
func RequireAll() bool { return os.Getenv("ENIGM_REQUIRE_ALL") == "1" }

// Missing reports that component is unavailable because of err: the test
// fails under ENIGM_REQUIRE_ALL=1 and is skipped otherwise.
func Missing(t testing.TB, component string, err error) {
	t.Helper()
	if RequireAll() {
		t.Fatalf("%s is required (ENIGM_REQUIRE_ALL=1) but unavailable: %v", component, err)
	}
	t.Skipf("%s unavailable, skipping (set ENIGM_REQUIRE_ALL=1 to fail instead): %v", component, err)
}
