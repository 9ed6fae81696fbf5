package commandcli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// --tpm-boot-state is judged with the TPM evidence: without --trust-tpm-ak
// it is a usage error, and a malformed file stops the server before it
// listens.
func TestServeBootStateFlag(t *testing.T) {
	data, dir := t.TempDir(), t.TempDir()
	ak := filepath.Join(dir, "ak")
	bad := filepath.Join(dir, "boot.json")
	os.WriteFile(ak, []byte(strings.Repeat("ab", 64)+"\n"), 0o600)
	os.WriteFile(bad, []byte(`{"version":1,"allowed":[{"7":"00"}]}`), 0o600)
	if r := cli(t, nil, "serve", "--data", data, "--tpm-boot-state", bad); r.code != ExitUsage || !strings.Contains(r.stderr, "--trust-tpm-ak") {
		t.Errorf("boot state without trusted keys: %+v", r)
	}
	if r := cli(t, nil, "serve", "--data", data, "--trust-tpm-ak", ak, "--tpm-boot-state", bad); r.code != ExitError || !strings.Contains(r.stderr, "PCR 7") {
		t.Errorf("malformed boot state: %+v", r)
	}
}
