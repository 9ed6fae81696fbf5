package enigmcli

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/soft"
	"github.com/enigm/enigm/internal/clikit"
	"github.com/enigm/enigm/keystore"
	"github.com/enigm/enigm/lifecycle"
	"github.com/enigm/enigm/policy"
	"github.com/enigm/enigm/posture"
	"github.com/spf13/pflag"
)

// backendMakers maps backend names to constructors; hardware backends add
// themselves from their own files.
var backendMakers = map[string]func(g *Globals, env *Env) (backend.Backend, error){
	"soft": func(*Globals, *Env) (backend.Backend, error) { return soft.New(soft.Options{}) },
}

// autoOrder is the preference of `--backend auto`: the first that is
// available wins.
var autoOrder []string

// probes report whether a hardware backend is reachable here.
var probes = map[string]func(env *Env) error{}

func (c *Ctx) backendFor(name string) (backend.Backend, error) {
	if c.pkcs11KeyID != "" {
		return c.adoptingBackend(name)
	}
	if c.Env.Backend != nil {
		return c.Env.Backend(name, c.G)
	}
	mk, ok := backendMakers[name]
	if !ok {
		return nil, fmt.Errorf("%w: backend %q is not built into this enigm", backend.ErrUnavailable, name)
	}
	return mk(c.G, c.Env)
}

// withStore adapts run, a command that reads the keystore, to Ctx.do: it
// opens the keystore (locked) and closes it when run returns.
func withStore(run func(*Ctx, *keystore.Store) error) func(*Ctx) error {
	return func(c *Ctx) error {
		s, err := c.openStore(false)
		if err != nil {
			return err
		}
		defer s.Close()
		return run(c, s)
	}
}

// openStore opens the keystore, unlocking it when asked.
func (c *Ctx) openStore(unlock bool) (*keystore.Store, error) {
	home, err := c.Home()
	if err != nil {
		return nil, err
	}
	s, err := keystore.Open(home, keystore.Options{Backend: c.backendFor, Clock: c.Env.Now})
	if err != nil {
		return nil, err
	}
	if unlock {
		p, err := c.Passphrase(false)
		if err != nil {
			s.Close()
			return nil, err
		}
		defer clear(p)
		if err := s.Unlock(c.Context(), p); err != nil {
			s.Close()
			return nil, err
		}
		// The passphrase was just entered in this process: the user is
		// authenticated and this CLI is the authorized app.
		s.SetAppAuthorized(true)
	}
	return s, nil
}

func init() {
	register(
		func(c *Ctx) *clikit.Command {
			return &clikit.Command{Path: "keystore init", Summary: "create a protected keystore on this device", Usage: "[--backend auto|soft|tpm|pkcs11]",
				Help: `Creates the keystore home (mode 0700) with its database and audit log (0600).
The wrapping keys of the four key classes are generated here and sealed by the
backend: "soft" derives a key from the passphrase with Argon2id (t=3, 64 MiB,
p=4); "tpm" seals them as TPM 2.0 objects that need the passphrase
(PolicyAuthValue) and creates a P-256 hardware binding key in the TPM.
"pkcs11" protects the wrapping keys on a PKCS#11 token with the best scheme
its mechanism list allows (AES-GCM, AES-CBC-PAD + HMAC, or P-256 ECDH) and
makes the binding key there where it has EC; the token PIN is the
passphrase, and its length is checked against the token's range before any
login is tried (docs/design/pkcs11.md). "auto" picks the TPM when its device
is reachable, else soft.

Where the hardware is comes from the environment, on every command:
  ENIGM_TPM_DEVICE     /dev/tpmrm0 (default), a path, unix:/path or tcp:host:port
  ENIGM_TPM_PCRS       e.g. 0,7: also seal to these PCRs (measured boot)
  ENIGM_PKCS11_MODULE  the module (default: SoftHSM2's library)
  ENIGM_PKCS11_TOKEN   the token label
  ENIGM_PKCS11_SCHEME  force a scheme at init: aes-gcm, aes-cbc-hmac, p256-ecdh
  ENIGM_PKCS11_PIN_ONLY_DESTROY=1  accept a token (PIV card) that keeps every
                       key behind the PIN: revoking a locked device then
                       cannot remove its keys from the token

A PIV token (YubiKey through ykcs11, OpenSC's PIV driver) holds keys in slots
that only its management key can fill: make a P-256 key there with the
vendor's tool, then adopt it with --pkcs11-key-id (the token's CKA_ID in hex;
ykcs11 and OpenSC: 01=9a, 02=9c, 03=9d, 04=9e). Nothing is created on the
token; revocation deletes the keystore's sealed data, and the key stays in
its slot until you wipe it with the vendor's tool (README, "Using a YubiKey
or other PIV token").

examples:
  ENIGM_PASSPHRASE=... enigm keystore init
  enigm --home /tmp/k keystore init --backend soft --passphrase-file pw.txt
  ENIGM_TPM_DEVICE=unix:/run/swtpm/sock enigm keystore init --backend tpm
  ENIGM_PKCS11_MODULE=/usr/lib/x86_64-linux-gnu/libykcs11.so enigm keystore init --backend pkcs11 --pkcs11-key-id 03`,
				Flags: c.backendFlag, Run: c.do(runInit)}
		},
		func(c *Ctx) *clikit.Command {
			return &clikit.Command{Path: "keystore status", Summary: "show the keystore's backend, protection and state", Usage: "[--json]",
				Help: `Shows the backend and protection level, whether the device is revoked or
associated, the keys per state, the audit log's integrity and the OS posture.
It does not need the passphrase.

example:
  enigm keystore status --json`, Run: c.do(withStore(runStatus))}
		},
		func(c *Ctx) *clikit.Command {
			return &clikit.Command{Path: "keys list", Summary: "list keys (no secrets)", Usage: "[--json]", Run: c.do(withStore(runList)),
				Help: "Lists every key with its id, class, algorithm, lifecycle state and times.\nDamaged records are listed with a problem; they hide nothing else.\n\nexample:\n  enigm keys list --json"}
		},
		func(c *Ctx) *clikit.Command {
			o := &generateOpts{}
			return &clikit.Command{Path: "keys generate", Summary: "generate a key on this device", Usage: "--class identity|kem|session [--alg ALG] [--ttl D] [--cause CAUSE] [--no-activate]",
				Help: `Generates a key inside the keystore; only its public part is ever shown.
identity: hybrid Ed25519 + ML-DSA-65 (default) or --alg ed25519 (classical only)
kem:      HPKE MLKEM768-X25519
session:  AES-256-GCM with a TTL (--ttl, default 1h, at most 24h); keys made
          from the CLI are stored wrapped because the process ends at once

The lifecycle cause defaults to account_setup; --no-activate leaves the key
"created" (it may then only prove possession for its own enrollment).

examples:
  enigm keys generate --class identity --json
  enigm keys generate --class session --ttl 10m --cause call_setup`,
				Flags: func(fs *pflag.FlagSet) {
					fs.StringVar(&o.class, "class", "", "key class: identity, kem or session (required)")
					fs.StringVar(&o.alg, "alg", "", "algorithm: ed25519+ml-dsa-65 (default identity), ed25519")
					fs.DurationVar(&o.ttl, "ttl", 0, "session key lifetime (default 1h)")
					fs.StringVar(&o.cause, "cause", "account_setup", "lifecycle cause: account_setup, device_enrollment, messaging_setup, call_setup, rotation, replacement, recovery")
					fs.BoolVar(&o.noActivate, "no-activate", false, "leave the key in the created state")
				}, Run: c.do(func(c *Ctx) error { return runGenerate(c, o) })}
		},
		func(c *Ctx) *clikit.Command {
			o := &signOpts{}
			return &clikit.Command{Path: "keys sign", Summary: "sign a file or stdin with an identity key", Usage: "--key ID [--in FILE] [--purpose P] [--out FILE]",
				Help: `Signs the input under the application context "enigm/v1/app/<purpose>"
(never a chain, envelope or login context) after a policy
decision (unlocked, authenticated within 5 minutes, app authorized, device not
revoked, posture at least degraded). Prints the signature in base64, or writes
the raw bytes to --out (created 0600, never overwritten). A denied use exits
with code 3 and prints every reason code.

examples:
  enigm keys sign --key 3f9a1c --in report.pdf > report.sig
  echo hello | enigm keys sign --key 3f9a1c --purpose greeting --json`,
				Flags: func(fs *pflag.FlagSet) {
					keyFlag(fs, &o.key)
					fs.StringVar(&o.in, "in", "-", "input `FILE` (- is stdin)")
					fs.StringVar(&o.purpose, "purpose", "file", "application signing `PURPOSE`: [a-z0-9_.-/], 1-60 characters")
					fs.StringVar(&o.out, "out", "", "write the raw signature to this new `FILE`")
				}, Run: c.do(func(c *Ctx) error { return runSign(c, o) })}
		},
		func(c *Ctx) *clikit.Command {
			o := &verifyOpts{}
			return &clikit.Command{Path: "keys verify", Summary: "verify a signature made by keys sign", Usage: "--key ID --sig FILE [--in FILE] [--purpose P]",
				Help: "Verifies with the key's stored public key. The signature file may hold raw\nbytes or base64.\n\nexample:\n  enigm keys verify --key 3f9a1c --sig report.sig --in report.pdf",
				Flags: func(fs *pflag.FlagSet) {
					keyFlag(fs, &o.key)
					fs.StringVar(&o.sig, "sig", "", "signature `FILE` (required)")
					fs.StringVar(&o.in, "in", "-", "signed input `FILE` (- is stdin)")
					fs.StringVar(&o.purpose, "purpose", "file", "signing purpose used when signing")
				}, Run: c.do(func(c *Ctx) error { return runVerify(c, o) })}
		},
		func(c *Ctx) *clikit.Command {
			var key string
			return &clikit.Command{Path: "keys public", Summary: "print a key's public part", Usage: "--key ID [--json]",
				Help:  "Prints the public key in base64 (hybrid: Ed25519 || ML-DSA-65; KEM: HPKE\nencoding; binding: SEC1 P-256).\n\nexample:\n  enigm keys public --key 3f9a1c --json",
				Flags: func(fs *pflag.FlagSet) { keyFlag(fs, &key) }, Run: c.do(func(c *Ctx) error { return runPublic(c, key) })}
		},
		func(c *Ctx) *clikit.Command {
			var key string
			var grace time.Duration
			return &clikit.Command{Path: "keys rotate", Summary: "replace an active key with a new one", Usage: "--key ID [--grace D]",
				Help: `Creates and activates a new key of the same class, algorithm and policy, and
supersedes the old one in the same transaction. A superseded identity or KEM
key may still verify/decrypt until its grace period ends (default 24h for
identity, 7 days for KEM); session and binding keys are retired at once.

example:
  enigm keys rotate --key 3f9a1c --grace 48h --json`,
				Flags: func(fs *pflag.FlagSet) {
					keyFlag(fs, &key)
					fs.DurationVar(&grace, "grace", 0, "grace period of the superseded key (default per class)")
				}, Run: c.do(func(c *Ctx) error { return runRotate(c, key, grace) })}
		},
		func(c *Ctx) *clikit.Command {
			var key string
			return &clikit.Command{Path: "keys revoke", Summary: "revoke a key: its material is destroyed", Usage: "--key ID [--yes]",
				Help:  "Moves the key to \"revoked\" and destroys its wrapped material; it can never be\nused again. Works without the passphrase. Asks for confirmation unless --yes.\n\nexample:\n  enigm keys revoke --key 3f9a1c --yes",
				Flags: func(fs *pflag.FlagSet) { keyFlag(fs, &key) }, Run: c.do(func(c *Ctx) error { return runRevoke(c, key) })}
		},
		func(c *Ctx) *clikit.Command {
			limit, verify := 50, false
			return &clikit.Command{Path: "audit", Group: "info", Summary: "show and verify the local audit log", Usage: "[--limit N | --verify] [--json]",
				Help: `Verifies the hash chain of the audit log (every key-use decision, lifecycle
event, unlock and lock) against its anchor in the database, then prints the
newest entries. Exits 1 if the log is broken or was truncated.

The log rotates into sealed segments (audit.<first entry>.seg) beside the
active audit.log. With --verify it checks every entry of every segment it
still has, and the links between them, without printing entries: an entry
changed in any segment, or a segment missing from the middle, fails naming
the file. Entries deleted by retention (enigm audit prune) are reported as
no longer checkable, not as a break.

examples:
  enigm audit --limit 20 --json
  enigm audit --verify`,
				Flags: func(fs *pflag.FlagSet) {
					fs.IntVar(&limit, "limit", 50, "show at most `N` newest entries (0: all)")
					fs.BoolVar(&verify, "verify", false, "verify every kept segment and print only the result")
				},
				Run: c.do(withStore(func(c *Ctx, s *keystore.Store) error {
					if verify {
						return runAuditVerify(c, s)
					}
					return runAudit(c, s, limit)
				}))}
		},
		func(c *Ctx) *clikit.Command {
			var olderThan time.Duration
			return &clikit.Command{Path: "audit prune", Group: "info", Summary: "delete the oldest sealed audit segments (retention)", Usage: "--older-than DURATION [--yes] [--json]",
				Help: `Deletes the sealed audit segments sealed more than DURATION ago, oldest
first (never the active audit.log, never a segment newer than one it keeps).
It verifies them first and deletes nothing if they do not verify, so that
retention never destroys evidence of tampering. The database and the log
record which entries are gone and the hash the first kept entry continues
from: enigm audit --verify then reports the deleted range as no longer
checkable. Archive the segments first if policy asks you to keep them.
Asks for confirmation unless --yes.

example:
  enigm audit prune --older-than 2160h --yes`,
				Flags: func(fs *pflag.FlagSet) {
					fs.DurationVar(&olderThan, "older-than", 0, "delete segments sealed more than `DURATION` ago (required, e.g. 2160h)")
				},
				Run: c.do(func(c *Ctx) error { return runAuditPrune(c, olderThan) })}
		},
		func(c *Ctx) *clikit.Command {
			return &clikit.Command{Path: "posture", Group: "info", Summary: "show the OS security posture key use depends on", Usage: "[--json]",
				Help: "Observes secure boot, an attached tracer/debugger, the keystore files'\npermissions and whether enigm runs as root, and prints the resulting level\n(trusted, degraded, compromised).\n\nexample:\n  enigm posture --json",
				Run:  c.do(runPosture)}
		},
	)
}

type generateOpts struct {
	class, alg, cause string
	ttl               time.Duration
	noActivate        bool
}

type signOpts struct{ key, in, purpose, out string }

type verifyOpts struct{ key, sig, in, purpose string }

func keyFlag(fs *pflag.FlagSet, key *string) {
	fs.StringVar(key, "key", "", "key `ID`, or a unique prefix of at least 6 hex digits of it (required)")
}

// backendFlag binds --backend, the backend of a new keystore.
func (c *Ctx) backendFlag(fs *pflag.FlagSet) {
	fs.StringVar(&c.backendName, "backend", "auto", "protection backend of a new keystore: auto, soft, tpm or pkcs11")
	fs.StringVar(&c.pkcs11KeyID, "pkcs11-key-id", "", "with --backend pkcs11: adopt the P-256 key with this CKA_ID (`HEX`; PIV: 01=9a 02=9c 03=9d 04=9e) instead of generating keys")
}

func runInit(c *Ctx) error {
	home, err := c.Home()
	if err != nil {
		return err
	}
	if keystore.Exists(home) {
		return fmt.Errorf("%w: %s already holds a keystore", keystore.ErrExists, home)
	}
	name := c.backendChoice()
	if _, ok := backendMakers[name]; !ok && c.Env.Backend == nil {
		return Usagef("unknown backend %q (this build has: %s)", name, strings.Join(backendNames(), ", "))
	}
	b, err := c.backendFor(name)
	if err != nil {
		return err
	}
	if probe := probes[name]; probe != nil && c.Env.Backend == nil {
		if err := probe(c.Env); err != nil {
			return fmt.Errorf("%w: %v", backend.ErrUnavailable, err)
		}
	}
	p, err := c.Passphrase(true)
	if err != nil {
		return err
	}
	defer clear(p)
	s, err := keystore.Init(c.Context(), home, b, p, keystore.InitOptions{Options: keystore.Options{Backend: c.backendFor, Clock: c.Env.Now}})
	if err != nil {
		return err
	}
	defer s.Close()
	st, err := s.Status()
	if err != nil {
		return err
	}
	dev := st.Device
	return c.Output(initJSON{Home: home, Backend: st.Backend, Protection: string(st.Protection),
		DeviceID: hex.EncodeToString(dev[:]), Gates: gateStrings(st.Gates)}, func() {
		c.Printf("created keystore in %s\n  backend:    %s\n  protection: %s\n  device id:  %x\n", home, st.Backend, st.Protection, dev)
		if len(st.Gates) > 0 {
			c.Printf("  enforced in hardware: %s\n", strings.Join(gateStrings(st.Gates), ", "))
		}
		c.Printf("next: enigm keys generate --class identity\n")
	})
}

// initJSON is `keystore init --json`.
type initJSON struct {
	Home       string   `json:"home"`
	Backend    string   `json:"backend"`
	Protection string   `json:"protection"`
	DeviceID   string   `json:"device_id"`
	Gates      []string `json:"gates"`
}

// keystoreStatusJSON is `keystore status --json`.
type keystoreStatusJSON struct {
	Home             string         `json:"home"`
	Backend          string         `json:"backend"`
	Protection       string         `json:"protection"`
	BackendAvailable bool           `json:"backend_available"`
	Locked           bool           `json:"locked"`
	Revoked          bool           `json:"revoked"`
	RevokedAt        string         `json:"revoked_at,omitempty"`
	Association      string         `json:"association"`
	DeviceID         string         `json:"device_id"`
	Created          string         `json:"created"`
	Keys             map[string]int `json:"keys"`
	Gates            []string       `json:"gates"`
	Audit            auditState     `json:"audit"`
	Posture          postureJSON    `json:"posture"`
}

type auditState struct {
	Intact      bool   `json:"intact"`
	Entries     uint64 `json:"entries"`
	Problem     string `json:"problem,omitempty"`
	PreservedAs string `json:"preserved_as,omitempty"`
}

// postureJSON is `posture --json`, and the posture in the status.
type postureJSON struct {
	Level string   `json:"level"`
	Facts []string `json:"facts"`
}

func backendNames() []string {
	var out []string
	for n := range backendMakers {
		out = append(out, n)
	}
	return out
}

func gateStrings(gs []backend.Gate) []string {
	out := []string{}
	for _, g := range gs {
		out = append(out, string(g))
	}
	return out
}

func runStatus(c *Ctx, s *keystore.Store) error {
	st, err := s.Status()
	if err != nil {
		return err
	}
	keys := map[string]int{}
	for state, n := range st.Keys {
		keys[state.String()] = n
	}
	out := keystoreStatusJSON{Home: s.Home(), Backend: st.Backend, Protection: string(st.Protection), BackendAvailable: st.Available,
		Locked: st.Locked, Revoked: st.Revoked, Association: st.Association.String(), DeviceID: hex.EncodeToString(st.Device[:]),
		Created: st.Created.Format(time.RFC3339), Keys: keys, Gates: gateStrings(st.Gates),
		Audit:   auditState{Intact: st.Audit.Intact, Entries: st.AuditHead},
		Posture: postureJSON{Level: st.Posture.Level.String(), Facts: nonNil(st.Posture.Facts)}}
	if st.Audit.Problem != "" {
		out.Audit.Problem, out.Audit.PreservedAs = st.Audit.Problem, st.Audit.Preserved
	}
	if st.Revoked {
		out.RevokedAt = st.RevokedAt.Format(time.RFC3339)
	}
	return c.Output(out, func() {
		c.Printf("keystore   %s\nbackend    %s (%s)%s\ndevice     %x\nstate      %s\n", s.Home(), st.Backend, st.Protection,
			map[bool]string{true: "", false: " — not available here"}[st.Available], st.Device, deviceState(st))
		c.Printf("keys       %s\n", keyCounts(keys))
		if st.Audit.Intact {
			c.Printf("audit      %d entries, chain intact\n", st.AuditHead)
		} else {
			c.Printf("audit      BROKEN: %s (kept as %s)\n", st.Audit.Problem, st.Audit.Preserved)
		}
		c.Printf("posture    %s (%s)\n", st.Posture.Level, strings.Join(st.Posture.Facts, ", "))
		if len(st.Gates) > 0 {
			c.Printf("hardware   enforces %s\n", strings.Join(gateStrings(st.Gates), ", "))
		}
	})
}

func deviceState(st keystore.Status) string {
	if st.Revoked {
		return "REVOKED at " + st.RevokedAt.Format(time.RFC3339)
	}
	return "locked, " + st.Association.String()
}

func keyCounts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, s := range []lifecycle.State{lifecycle.Created, lifecycle.Active, lifecycle.Superseded, lifecycle.Retired, lifecycle.Revoked} {
		if n := m[s.String()]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, s))
		}
	}
	return strings.Join(parts, ", ")
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// keyOut is a key in --json output; a damaged record is a damagedKeyOut.
type keyOut struct {
	ID          string `json:"id"`
	Class       string `json:"class"`
	Algorithm   string `json:"algorithm"`
	State       string `json:"state"`
	Cause       string `json:"cause"`
	Created     string `json:"created"`
	Changed     string `json:"changed"`
	Persistent  bool   `json:"persistent"`
	Resident    bool   `json:"resident"`
	GraceUntil  string `json:"grace_until,omitempty"`
	Expires     string `json:"expires,omitempty"`
	Public      string `json:"public,omitempty"`
	Predecessor string `json:"predecessor,omitempty"`
	Successor   string `json:"successor,omitempty"`
}

type damagedKeyOut struct {
	ID      string `json:"id"`
	Problem string `json:"problem"`
}

// keyJSON is k in --json output: a keyOut or a damagedKeyOut.
func keyJSON(k keystore.KeyInfo) any {
	if k.Problem != "" {
		return damagedKeyOut{ID: k.ID.String(), Problem: k.Problem}
	}
	m := keyOut{ID: k.ID.String(), Class: k.Class.String(), Algorithm: k.Algorithm.String(),
		State: k.State.String(), Cause: k.Cause.String(), Created: ts(k.Created), Changed: ts(k.Changed),
		Persistent: k.Persistent, Resident: k.Resident}
	if !k.GraceUntil.IsZero() {
		m.GraceUntil = ts(k.GraceUntil)
	}
	if !k.Expires.IsZero() {
		m.Expires = ts(k.Expires)
	}
	if k.Public != nil {
		m.Public = base64.StdEncoding.EncodeToString(k.Public)
	}
	if k.Predecessor != nil {
		m.Predecessor = k.Predecessor.String()
	}
	if k.Successor != nil {
		m.Successor = k.Successor.String()
	}
	return m
}

// keysJSON is `keys list --json`; keyJSONOut the commands that show one key.
type keysJSON struct {
	Keys []any `json:"keys"`
}

type keyJSONOut struct {
	Key any `json:"key"`
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func runList(c *Ctx, s *keystore.Store) error {
	keys, err := s.List()
	if err != nil {
		return err
	}
	js := []any{}
	for _, k := range keys {
		js = append(js, keyJSON(k))
	}
	return c.Output(keysJSON{Keys: js}, func() {
		if len(keys) == 0 {
			c.Printf("no keys (generate one with `enigm keys generate --class identity`)\n")
			return
		}
		c.Printf("%-32s  %-8s  %-18s  %-10s  %s\n", "ID", "CLASS", "ALGORITHM", "STATE", "CREATED")
		for _, k := range keys {
			if k.Problem != "" {
				c.Printf("%-32s  DAMAGED: %s\n", k.ID, k.Problem)
				continue
			}
			c.Printf("%-32s  %-8s  %-18s  %-10s  %s\n", k.ID, k.Class, k.Algorithm, k.State, ts(k.Created))
		}
	})
}

func runGenerate(c *Ctx, o *generateOpts) error {
	class, ok := keystore.ParseClass(o.class)
	if !ok || class == keystore.ClassBinding {
		return Usagef("--class must be identity, kem or session")
	}
	opts := keystore.GenerateOptions{Activate: !o.noActivate, TTL: o.ttl}
	if a := o.alg; a != "" {
		alg, ok := keystore.ParseAlgorithm(a)
		if !ok {
			return Usagef("unknown algorithm %q", a)
		}
		opts.Algorithm = alg
	}
	cause, ok := lifecycle.ParseCause(o.cause)
	if !ok {
		return Usagef("unknown cause %q", o.cause)
	}
	opts.Cause = cause
	if class == keystore.ClassSession {
		opts.Persist = true
	} else if opts.TTL != 0 {
		return Usagef("--ttl applies to session keys only")
	}
	s, err := c.openStore(true)
	if err != nil {
		return err
	}
	defer s.Close()
	k, err := s.Generate(class, opts)
	if err != nil {
		return err
	}
	return c.Output(keyJSONOut{Key: keyJSON(k)}, func() {
		c.Printf("generated %s key %s (%s, %s)\n", k.Class, k.ID, k.Algorithm, k.State)
	})
}

// openKey opens the keystore (unlocked when asked) and resolves the --key
// value ref in it.
func (c *Ctx) openKey(ref string, unlock bool) (*keystore.Store, keystore.KeyID, error) {
	s, err := c.openStore(unlock)
	if err != nil {
		return nil, keystore.KeyID{}, err
	}
	id, err := resolveKey(s, ref)
	if err != nil {
		s.Close()
		return nil, id, err
	}
	return s, id, nil
}

// openKeyInfo opens the keystore (locked) and returns the key that ref
// names and its information.
func (c *Ctx) openKeyInfo(ref string) (*keystore.Store, keystore.KeyID, keystore.KeyInfo, error) {
	s, id, err := c.openKey(ref, false)
	if err != nil {
		return nil, id, keystore.KeyInfo{}, err
	}
	info, err := s.Info(id)
	if err != nil {
		s.Close()
		return nil, id, info, err
	}
	return s, id, info, nil
}

func resolveKey(s *keystore.Store, ref string) (keystore.KeyID, error) {
	if ref == "" {
		return keystore.KeyID{}, Usagef("--key is required")
	}
	return s.Resolve(ref)
}

// maxInput bounds what sign and verify read.
const maxInput = 64 << 20

// signJSON is `keys sign --json`.
type signJSON struct {
	Key       string `json:"key"`
	Algorithm string `json:"algorithm"`
	Purpose   string `json:"purpose"`
	Signature string `json:"signature"`
}

func runSign(c *Ctx, o *signOpts) error {
	if o.key == "" {
		return Usagef("--key is required")
	}
	msg, err := c.ReadInput(o.in, maxInput)
	if err != nil {
		return err
	}
	purpose := o.purpose
	p, err := keystore.AppPurpose(purpose)
	if err != nil {
		return err
	}
	out := o.out
	var outFile *os.File
	if out != "" {
		// Claim the output file before signing: never overwrite, and
		// never sign when the result cannot be written.
		if outFile, err = os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err != nil {
			return err
		}
		defer func() {
			if outFile != nil {
				outFile.Close()
				os.Remove(out)
			}
		}()
	}
	s, id, err := c.openKey(o.key, true)
	if err != nil {
		return err
	}
	defer s.Close()
	k, err := s.Identity(id)
	if err != nil {
		return err
	}
	sig, err := k.Sign(p, msg)
	if err != nil {
		return err
	}
	if outFile != nil {
		_, err := outFile.Write(sig)
		if cerr := outFile.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		outFile = nil
	}
	b64 := base64.StdEncoding.EncodeToString(sig)
	return c.Output(signJSON{Key: id.String(), Algorithm: k.Algorithm().String(), Purpose: purpose, Signature: b64}, func() {
		if out == "" {
			fmt.Fprintln(c.Stdout, b64)
		} else {
			c.Printf("wrote %d-byte signature to %s\n", len(sig), out)
		}
	})
}

func runVerify(c *Ctx, o *verifyOpts) error {
	if o.key == "" {
		return Usagef("--key is required")
	}
	sigPath := o.sig
	if sigPath == "" {
		return Usagef("--sig is required")
	}
	raw, err := os.ReadFile(sigPath)
	if err != nil {
		return err
	}
	sig := raw
	if d, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(raw))); err == nil {
		sig = d
	}
	msg, err := c.ReadInput(o.in, maxInput)
	if err != nil {
		return err
	}
	s, id, info, err := c.openKeyInfo(o.key)
	if err != nil {
		return err
	}
	defer s.Close()
	if info.Class != keystore.ClassIdentity {
		return fmt.Errorf("%w: %s is a %s key", keystore.ErrWrongClass, id.Short(), info.Class)
	}
	p, err := keystore.AppPurpose(o.purpose)
	if err != nil {
		return err
	}
	if err := keystore.Verify(info.Algorithm, info.Public, p, msg, sig); err != nil {
		return fmt.Errorf("signature does not verify: %w", err)
	}
	return c.Output(struct {
		Key   string `json:"key"`
		Valid bool   `json:"valid"`
	}{id.String(), true}, func() { c.Printf("signature valid (key %s)\n", id) })
}

func runPublic(c *Ctx, key string) error {
	s, id, info, err := c.openKeyInfo(key)
	if err != nil {
		return err
	}
	defer s.Close()
	if info.Public == nil {
		return fmt.Errorf("%w: %s keys have no public part", keystore.ErrUnsupported, info.Class)
	}
	b64 := base64.StdEncoding.EncodeToString(info.Public)
	return c.Output(struct {
		Key       string `json:"key"`
		Class     string `json:"class"`
		Algorithm string `json:"algorithm"`
		Public    string `json:"public"`
	}{id.String(), info.Class.String(), info.Algorithm.String(), b64},
		func() { fmt.Fprintln(c.Stdout, b64) })
}

func runRotate(c *Ctx, key string, grace time.Duration) error {
	s, id, err := c.openKey(key, true)
	if err != nil {
		return err
	}
	defer s.Close()
	nk, err := s.Rotate(id, keystore.RotateOptions{Grace: grace})
	if err != nil {
		return err
	}
	old, err := s.Info(id)
	if err != nil {
		return err
	}
	return c.Output(struct {
		Old any `json:"old"`
		New any `json:"new"`
	}{keyJSON(old), keyJSON(nk)}, func() {
		c.Printf("rotated %s key %s -> %s\n  old key is %s", old.Class, id, nk.ID, old.State)
		if !old.GraceUntil.IsZero() {
			c.Printf(" (may decrypt/verify until %s)", ts(old.GraceUntil))
		}
		c.Printf("\n")
	})
}

func runRevoke(c *Ctx, key string) error {
	s, id, info, err := c.openKeyInfo(key)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := c.Confirm(fmt.Sprintf("revoke %s key %s? its material will be destroyed", info.Class, id)); err != nil {
		return err
	}
	if err := s.RevokeKey(id); err != nil {
		return err
	}
	info, _ = s.Info(id)
	return c.Output(keyJSONOut{Key: keyJSON(info)}, func() { c.Printf("revoked key %s; its material is destroyed\n", id) })
}

// auditJSON is `audit --json`.
type auditJSON struct {
	Intact      bool         `json:"intact"`
	Head        uint64       `json:"head"`
	Problem     string       `json:"problem,omitempty"`
	PreservedAs string       `json:"preserved_as,omitempty"`
	Entries     []auditEntry `json:"entries"`
}

type auditEntry struct {
	Seq     uint64    `json:"seq"`
	Time    string    `json:"time"`
	Kind    string    `json:"kind"`
	Hash    string    `json:"hash"`
	Key     string    `json:"key,omitempty"`
	Op      string    `json:"op,omitempty"`
	Allowed *bool     `json:"allowed,omitempty"` // decisions only
	Reasons *[]string `json:"reasons,omitempty"` // decisions only, [] when allowed
	Cause   string    `json:"cause,omitempty"`
	Detail  string    `json:"detail,omitempty"`
}

func runAudit(c *Ctx, s *keystore.Store, limit int) error {
	entries, intact, err := s.AuditLog()
	if err != nil {
		return err
	}
	if limit > 0 && len(entries) > limit {
		entries = entries[len(entries)-limit:]
	}
	js := []auditEntry{}
	for _, e := range entries {
		j := auditEntry{Seq: e.Seq, Time: e.Time.UTC().Format(time.RFC3339Nano), Kind: e.Kind, Hash: e.Hash,
			Key: e.Key, Op: e.Op, Cause: e.Cause, Detail: e.Detail}
		if e.Kind == "decision" {
			allowed, reasons := len(e.Reasons) == 0, nonNil(e.Reasons)
			j.Allowed, j.Reasons = &allowed, &reasons
		}
		js = append(js, j)
	}
	st, _ := s.Status()
	out := auditJSON{Intact: intact, Entries: js, Head: st.AuditHead}
	if !intact {
		out.Problem, out.PreservedAs = st.Audit.Problem, st.Audit.Preserved
	}
	err = c.Output(out, func() {
		for _, e := range entries {
			c.Printf("%6d  %s  %-13s", e.Seq, e.Time.UTC().Format("2006-01-02T15:04:05.000Z"), e.Kind)
			if e.Key != "" {
				c.Printf("  key %s", e.Key[:12])
			}
			if e.Op != "" {
				c.Printf("  %s", e.Op)
			}
			if e.Kind == "decision" {
				if len(e.Reasons) == 0 {
					c.Printf("  allowed")
				} else {
					c.Printf("  DENIED %s", strings.Join(e.Reasons, ","))
				}
			}
			if e.Cause != "" {
				c.Printf("  (%s)", e.Cause)
			}
			if e.Detail != "" {
				c.Printf("  %s", e.Detail)
			}
			c.Printf("\n")
		}
		if intact {
			c.Printf("chain intact: %d entries\n", st.AuditHead)
		} else {
			c.Printf("CHAIN BROKEN: %s (the broken log is kept as %s)\n", st.Audit.Problem, st.Audit.Preserved)
		}
	})
	if err == nil && !intact {
		return errors.New("the audit log failed verification")
	}
	return err
}

func runPosture(c *Ctx) error {
	var paths []string
	if home, err := c.Home(); err == nil {
		if keystore.Exists(home) {
			paths = keystore.Files(home)
		}
	}
	p := (&posture.Linux{Paths: paths}).Posture()
	return c.Output(postureJSON{Level: p.Level.String(), Facts: nonNil(p.Facts)}, func() {
		c.Printf("posture %s\n", p.Level)
		for _, f := range p.Facts {
			c.Printf("  %s\n", f)
		}
		if p.Level == policy.PostureCompromised {
			c.Printf("identity keys refuse use at this level\n")
		}
	})
}
