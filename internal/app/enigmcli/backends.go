package enigmcli

import (
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/pkcs11"
	"github.com/enigm/enigm/backend/tpm"
	"github.com/enigm/enigm/internal/clikit"
)

// Hardware backends for the CLI. Where the hardware is comes from the
// environment on every run (the keystore records the backend's name, not
// the device):
//
//	ENIGM_TPM_DEVICE      /dev/tpmrm0 (default), another device path,
//	                      unix:/path or tcp:host:port (swtpm)
//	ENIGM_TPM_PCRS        comma-separated SHA-256 PCRs to seal to (boot_state gate)
//	ENIGM_PKCS11_MODULE   the PKCS#11 module (default: SoftHSM2's)
//	ENIGM_PKCS11_TOKEN    the token label (needed at init when several exist)
//	ENIGM_PKCS11_SCHEME   force a protection scheme at init (aes-gcm,
//	                      aes-cbc-hmac, p256-ecdh; default: from the token)
//	ENIGM_PKCS11_PIN_ONLY_DESTROY=1  accept a token (PIV card) that keeps
//	                      every key behind the PIN: revoking a locked device
//	                      then cannot remove its keys from the token
func init() {
	backendMakers["tpm"] = func(_ *Globals, env *Env) (backend.Backend, error) {
		opts := tpm.Options{Device: env.Getenv("ENIGM_TPM_DEVICE")}
		if p := env.Getenv("ENIGM_TPM_PCRS"); p != "" {
			for _, f := range strings.Split(p, ",") {
				var n int
				if _, err := fmt.Sscanf(strings.TrimSpace(f), "%d", &n); err != nil {
					return nil, Usagef("ENIGM_TPM_PCRS: %q is not a PCR number", f)
				}
				opts.PCRs = append(opts.PCRs, n)
			}
		}
		return tpm.New(opts)
	}
	backendMakers["pkcs11"] = func(_ *Globals, env *Env) (backend.Backend, error) { return pkcs11.New(pkcs11Options(env)) }
	// auto prefers the TPM when its device is there. PKCS#11 tokens are
	// never picked automatically: which token to trust is the user's call.
	autoOrder = []string{"tpm"}
	probes["tpm"] = func(env *Env) error {
		dev := env.Getenv("ENIGM_TPM_DEVICE")
		if dev == "" {
			dev = tpm.DefaultDevice
		}
		if strings.HasPrefix(dev, "unix:") || strings.HasPrefix(dev, "tcp:") {
			return nil
		}
		f, err := os.OpenFile(dev, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("TPM device %s: %w (set ENIGM_TPM_DEVICE for another device or a swtpm socket)", dev, err)
		}
		return f.Close()
	}
}

func init() {
	register(func(c *Ctx) *clikit.Command {
		return &clikit.Command{Path: "keystore attestation-key", Summary: "print this TPM's attestation key, for a server to trust", Usage: "[--json]",
			Help: `Prints the public area (hex) of the TPM's attestation key: a restricted
P-256 signing key derived from the endorsement hierarchy. A Command server
started with ` + "`enigm-command serve --trust-tpm-ak FILE`" + ` (one key per line)
accepts TPM2_Certify evidence that this TPM's binding keys are TPM-resident.
With real TPMs, trust in this key should come from the manufacturer's
endorsement certificate; with swtpm or the simulator, from this command.

example:
  ENIGM_TPM_DEVICE=unix:/run/swtpm/sock enigm keystore attestation-key >> trusted-aks.txt`,
			Run: c.do(runAttestationKey)}
	})
}

func runAttestationKey(c *Ctx) error {
	b, err := c.backendFor("tpm")
	if err != nil {
		return err
	}
	tb, ok := b.(*tpm.Backend)
	if !ok {
		return fmt.Errorf("%w: the tpm backend is not available", backend.ErrUnavailable)
	}
	ak, err := tb.AttestationKey(c.Context())
	if err != nil {
		return err
	}
	h := hex.EncodeToString(ak)
	return c.Output(struct {
		AttestationKey string `json:"attestation_key"`
	}{h}, func() { fmt.Fprintln(c.Stdout, h) })
}

// pkcs11Options are the PKCS#11 backend's options from the environment.
func pkcs11Options(env *Env) pkcs11.Options {
	return pkcs11.Options{Module: env.Getenv("ENIGM_PKCS11_MODULE"), TokenLabel: env.Getenv("ENIGM_PKCS11_TOKEN"),
		Scheme: env.Getenv("ENIGM_PKCS11_SCHEME"), PINOnlyDestroy: env.Getenv("ENIGM_PKCS11_PIN_ONLY_DESTROY") == "1"}
}

// adoptingBackend is backendFor with --pkcs11-key-id: the PKCS#11 backend
// adopting the token's key with that CKA_ID (a PIV slot's key).
func (c *Ctx) adoptingBackend(name string) (backend.Backend, error) {
	if name != "pkcs11" {
		return nil, Usagef("--pkcs11-key-id adopts a key on a PKCS#11 token: use it with --backend pkcs11, not %s", name)
	}
	id, err := hex.DecodeString(strings.TrimPrefix(c.pkcs11KeyID, "0x"))
	if err != nil || len(id) == 0 {
		return nil, Usagef("--pkcs11-key-id %q is not a CKA_ID in hex (e.g. 03, PIV slot 9d on a YubiKey)", c.pkcs11KeyID)
	}
	if c.Env.Backend != nil {
		return c.Env.Backend(name, c.G)
	}
	opts := pkcs11Options(c.Env)
	opts.AdoptKeyID = id
	return pkcs11.New(opts)
}
