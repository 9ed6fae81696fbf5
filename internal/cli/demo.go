package cli

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/keystore"
	"github.com/enigm/enigm/lifecycle"
	"github.com/enigm/enigm/policy"
)

func init() {
	Register(&Command{Path: "demo", Summary: "walk through the key lifecycle on a throwaway keystore", Usage: "[--keep]",
		Help: `Creates a keystore in a temporary directory (soft backend, or the backend
named by --backend) and walks through what the key management does and why:
generation on the device, policy-gated signing, denials with their reason
codes, KEM and session keys, rotation, revocation, the audit log and device
revocation. Nothing outside the temporary directory is touched.

example:
  enigm demo`,
		Args: 0, Flags: func(fs *flag.FlagSet) {
			fs.Bool("keep", false, "keep the temporary keystore and print its path")
			fs.String("backend", "soft", "backend for the demo keystore")
		}, Run: runDemo})
}

func runDemo(c *Ctx) error {
	dir, err := os.MkdirTemp("", "enigm-demo-")
	if err != nil {
		return err
	}
	keep := c.flag("keep").(flag.Getter).Get().(bool)
	if !keep {
		defer os.RemoveAll(dir)
	}
	home := filepath.Join(dir, "home")
	step := func(n int, title string) { c.Printf("\n%d. %s\n", n, title) }
	say := func(format string, a ...any) { c.Printf("   "+format+"\n", a...) }
	denied := func(err error) string {
		var d *keystore.DeniedError
		if errors.As(err, &d) {
			return strings.Join(d.Codes(), ", ")
		}
		return fmt.Sprintf("unexpected: %v", err)
	}

	c.Printf("Enigm key management demo (keystore in %s)\n", home)
	b, err := c.backendFor(flagString(c, "backend"))
	if err != nil {
		return err
	}
	pass := []byte("demo passphrase - never use a fixed passphrase for real")
	step(1, "Create the keystore")
	s, err := keystore.Init(c.Context(), home, b, pass, keystore.InitOptions{Options: keystore.Options{Backend: func(string) (backend.Backend, error) { return b, nil }}})
	if err != nil {
		return err
	}
	defer s.Close()
	st, _ := s.Status()
	say("backend %s, protection level %q", st.Backend, st.Protection)
	say("four wrapping keys (identity, kem, session, binding) were generated and sealed by the backend;")
	say("they are in memory only while the keystore is unlocked")
	s.SetAppAuthorized(true)

	step(2, "Generate a device identity key (hybrid Ed25519 + ML-DSA-65) on the device")
	idInfo, err := s.Generate(keystore.ClassIdentity, keystore.GenerateOptions{Cause: lifecycle.AccountSetup, Activate: true})
	if err != nil {
		return err
	}
	say("key %s, state %s, public key %d bytes; the private key is stored only wrapped", idInfo.ID.Short(), idInfo.State, len(idInfo.Public))
	id, _ := s.Identity(idInfo.ID)
	sig, err := id.Sign("demo", []byte("hello"))
	if err != nil {
		return err
	}
	say("signed \"hello\": %d-byte hybrid signature; verifies: %v", len(sig), keystore.Verify(keystore.AlgHybrid, idInfo.Public, "demo", []byte("hello"), sig) == nil)

	step(3, "Every use is decided against the device state")
	s.SetAppAuthorized(false)
	_, err = id.Sign("demo", []byte("hello"))
	say("app signed out          -> denied: %s", denied(err))
	s.SetAppAuthorized(true)
	if err := s.Lock(); err != nil {
		return err
	}
	_, err = id.Sign("demo", []byte("hello"))
	say("keystore locked         -> denied: %s", denied(err))
	if err := s.Unlock(c.Context(), pass); err != nil {
		return err
	}
	_, err = id.Sign("demo", []byte("hello"))
	say("unlocked again          -> allowed: %v", err == nil)

	step(4, "A KEM key (HPKE MLKEM768-X25519) decrypts only on a device associated with its account")
	kemInfo, err := s.Generate(keystore.ClassKEM, keystore.GenerateOptions{Cause: lifecycle.MessagingSetup, Activate: true})
	if err != nil {
		return err
	}
	kem, _ := s.KEM(kemInfo.ID)
	ct, _ := keystore.SealTo(kemInfo.Public, []byte("demo"), []byte("a message key"))
	_, err = kem.Open([]byte("demo"), ct)
	say("not yet in an account   -> denied: %s", denied(err))
	if err := s.SetAssociation(policy.Associated, []byte("demo-account")); err != nil {
		return err
	}
	pt, err := kem.Open([]byte("demo"), ct)
	say("associated              -> opened %q (%v)", pt, err == nil)

	step(5, "Session keys are short-lived and memory-only")
	sk, err := s.Generate(keystore.ClassSession, keystore.GenerateOptions{Cause: lifecycle.CallSetup, Activate: true, TTL: 10 * time.Minute})
	if err != nil {
		return err
	}
	say("session key %s expires %s; it is destroyed at lock or when the call ends", sk.ID.Short(), sk.Expires.Format(time.RFC3339))

	step(6, "Rotation supersedes the old key; it keeps only verify/decrypt rights for a grace period")
	nk, err := s.Rotate(idInfo.ID, keystore.RotateOptions{})
	if err != nil {
		return err
	}
	old, _ := s.Info(idInfo.ID)
	_, err = id.Sign("demo", []byte("hello"))
	say("new key %s is %s; old key is %s", nk.ID.Short(), nk.State, old.State)
	say("signing with the old key -> denied: %s", denied(err))

	step(7, "Revoking a key destroys its material")
	if err := s.RevokeKey(nk.ID); err != nil {
		return err
	}
	nh, _ := s.Identity(nk.ID)
	_, err = nh.Sign("demo", nil)
	say("revoked key             -> denied: %s", denied(err))

	step(8, "The audit log records every decision, hash-chained")
	entries, intact, err := s.AuditLog()
	if err != nil {
		return err
	}
	var allow, deny int
	for _, e := range entries {
		if e.Kind == "decision" {
			if len(e.Reasons) == 0 {
				allow++
			} else {
				deny++
			}
		}
	}
	say("%d entries, chain intact: %v; %d uses allowed, %d denied", len(entries), intact, allow, deny)

	step(9, "A device that learns it was revoked destroys everything")
	if err := s.RevokeDevice(c.Context(), "demo"); err != nil {
		return err
	}
	_, err = kem.Open([]byte("demo"), ct)
	say("KEM key after revocation -> denied: %s", denied(err))
	say("unlock after revocation  -> %v", s.Unlock(c.Context(), pass))
	if keep {
		c.Printf("\nkept the demo keystore at %s (passphrase %q)\n", home, pass)
	}
	c.Printf("\ndone.\n")
	return nil
}
