package enigmcli

import (
	"strings"
	"testing"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/tpm"
	"github.com/enigm/enigm/internal/testenv"
	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/internal/tpmsim"
)

// The CLI over the TPM backend (the in-process simulator): the keystore
// reports hardware-tpm, the gates the TPM enforces, and a hardware binding
// key; signing works and revocation destroys.
func TestTPMTranscript(t *testing.T) {
	if _, err := tpmsim.Open(); err != nil {
		testenv.Missing(t, "TPM simulator", err)
	}
	tr := newTranscript(t)
	mk := func(name string, _ *Globals) (backend.Backend, error) {
		if name == "tpm" {
			return tpm.New(tpm.Options{Open: tpmsim.Open})
		}
		return testkit.SoftBackend("")
	}
	run := func(args ...string) result {
		t.Helper()
		r := tr.runWith(mk, "", args...)
		if r.code != 0 {
			t.Fatalf("enigm %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
		return r
	}
	init := run("keystore", "init", "--backend", "tpm", "--json").json(t)
	if init["protection"] != "hardware-tpm" {
		t.Fatalf("init: %v", init)
	}
	gates := init["gates"].([]any)
	for _, g := range []string{"unlock_secret", "non_exportable", "destroy"} {
		found := false
		for _, x := range gates {
			found = found || x == g
		}
		if !found {
			t.Fatalf("gate %s not reported: %v", g, gates)
		}
	}
	keys := run("keys", "list", "--json").json(t)["keys"].([]any)
	if len(keys) != 1 || keys[0].(map[string]any)["class"] != "binding" || keys[0].(map[string]any)["resident"] != true {
		t.Fatalf("a TPM keystore starts with its hardware binding key: %v", keys)
	}
	id := run("keys", "generate", "--class", "identity", "--json").json(t)["key"].(map[string]any)["id"].(string)
	run("keys", "sign", "--key", id)
	// Wrong passphrase: the TPM refuses (PolicyAuthValue), nothing is lost.
	tr.env["ENIGM_PASSPHRASE"] = "wrong"
	if r := tr.runWith(mk, "x", "keys", "sign", "--key", id, "--json"); r.code != 1 || !strings.Contains(r.stdout, "bad_passphrase") {
		t.Fatalf("wrong passphrase: %+v", r)
	}
	tr.env["ENIGM_PASSPHRASE"] = "pw one"
	run("keys", "sign", "--key", id)
}
