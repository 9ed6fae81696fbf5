package enigmcli

import (
	"bufio"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/enigm/enigm/attestation"
	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/tpm/attest"
	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/device"
	"github.com/enigm/enigm/internal/clikit"
	"github.com/spf13/pflag"
)

// serverFlag binds --server.
func (c *Ctx) serverFlag(fs *pflag.FlagSet) {
	fs.StringVar(&c.server, "server", "", "Command server `URL` (default $ENIGM_SERVER, then the one saved at init/enroll)")
}

// newDeviceFlags binds the flags of the commands that set up this device:
// --server, --backend and --name.
func (c *Ctx) newDeviceFlags(fs *pflag.FlagSet, name *string) {
	c.serverFlag(fs)
	c.backendFlag(fs)
	fs.StringVar(name, "name", "", "this device's display `NAME` (default: the host name)")
}

// withAgent adapts run, a command on the device agent of the home, to
// Ctx.do: it opens the agent and closes it when run returns.
func withAgent(run func(*Ctx, *device.Agent) error) func(*Ctx) error {
	return func(c *Ctx) error {
		a, err := c.agent()
		if err != nil {
			return err
		}
		defer a.Close()
		return run(c, a)
	}
}

// agent opens the device agent of the home.
func (c *Ctx) agent() (*device.Agent, error) {
	home, err := c.Home()
	if err != nil {
		return nil, err
	}
	server := c.server
	if server == "" {
		server = c.Getenv("ENIGM_SERVER")
	}
	var verifier chain.AttestationVerifier
	if f := c.Getenv("ENIGM_TRUST_TPM_AK"); f != "" {
		aks, err := readTrustedAKs(f)
		if err != nil {
			return nil, err
		}
		v := &attestation.TPM{Trusted: aks}
		if bf := c.Getenv("ENIGM_TPM_BOOT_STATE"); bf != "" {
			b, err := os.ReadFile(bf)
			if err != nil {
				return nil, fmt.Errorf("ENIGM_TPM_BOOT_STATE: %w", err)
			}
			if v.Boot, err = attestation.ParseBootState(b); err != nil {
				return nil, fmt.Errorf("ENIGM_TPM_BOOT_STATE %s: %w", bf, err)
			}
		}
		verifier = v
	} else if c.Getenv("ENIGM_TPM_BOOT_STATE") != "" {
		return nil, Usagef("ENIGM_TPM_BOOT_STATE needs ENIGM_TRUST_TPM_AK: the boot-state quote is judged with the TPM evidence")
	}
	return device.Open(device.Options{
		Home: home, Server: server, Passphrase: c.Passphrase, Backend: c.backendFor,
		NewBackend: func() (backend.Backend, error) { return c.newBackend() },
		Clock:      c.Env.Now, Progress: c.Stderr, Attestation: verifier,
	})
}

// newBackend builds the backend named by --backend for a new keystore.
func (c *Ctx) newBackend() (backend.Backend, error) {
	return c.backendFor(c.backendChoice())
}

// backendChoice is the backend --backend names: "auto" is the first of
// autoOrder whose probe passes here, else soft.
func (c *Ctx) backendChoice() string {
	if c.backendName != "auto" {
		return c.backendName
	}
	for _, n := range autoOrder {
		if probe := probes[n]; probe != nil && probe(c.Env) == nil {
			return n
		}
	}
	return "soft"
}

func hexID(b []byte) string { return hex.EncodeToString(b) }

type accountInitOpts struct {
	account, name, org, invite, codeFile string
	recoveryDelay                        time.Duration
	log                                  logOpts
}

type enrollOpts struct {
	account, name, old string
	noWait             bool
	log                logOpts
}

type recoverOpts struct {
	account, name, codeFile string
	noWait                  bool
	log                     logOpts
}

type revokeOpts struct{ thisDevice, lastDevice bool }

func init() {
	register(
		func(c *Ctx) *clikit.Command {
			o := &accountInitOpts{}
			return &clikit.Command{Path: "init", Group: "account", Summary: "set up a new account with this device as its first device",
				Usage: "--account NAME [--org ORG --invite CODE] [--recovery-delay D] [--recovery-code-file F]",
				Help: `Generates this device's keys in its keystore (creating the keystore if
needed), a recovery code and the account's genesis link, and registers the
account with Command. The recovery code is shown once (or written, mode 0600,
to --recovery-code-file); it is the only way to recover the account without
another device, and it is never stored on a device. If it may have leaked,
replace it with ` + "`enigm recovery rotate`" + `.
` + logHelp + `

examples:
  enigm init --account alice --server http://127.0.0.1:8470
  enigm init --account bob --org acme --invite 7Q2K-... --recovery-code-file bob.recovery --json
  enigm init --account carol --log-key "$(sed -n 1p log.keys)" --log-key "$(sed -n 2p log.keys)" --log-policy witnesses.policy`,
				Flags: func(fs *pflag.FlagSet) {
					c.newDeviceFlags(fs, &o.name)
					fs.StringVar(&o.account, "account", "", "account `NAME`: 1-64 of a-z 0-9 . _ - (required)")
					fs.StringVar(&o.org, "org", "", "organisation id the invite is for (managed accounts)")
					fs.StringVar(&o.invite, "invite", "", "organisation invite `CODE` (managed accounts)")
					fs.DurationVar(&o.recoveryDelay, "recovery-delay", 24*time.Hour, "waiting period of recovery (unmanaged accounts; the server may impose a minimum)")
					fs.StringVar(&o.codeFile, "recovery-code-file", "", "write the recovery code to this new `FILE` (0600) instead of printing it")
					c.logFlags(fs, &o.log)
				}, Run: c.do(func(c *Ctx) error { return runAccountInit(c, o) })}
		},
		func(c *Ctx) *clikit.Command {
			o := &enrollOpts{}
			return &clikit.Command{Path: "enroll", Group: "account", Summary: "ask to join an account with this device", Usage: "--account NAME [--no-wait]",
				Help: `Generates this device's keys and sends an enrollment request with its public
keys. Show the pairing code to the account's other device and run
` + "`enigm approve REQUEST_ID --code PAIRING_CODE`" + ` there; compare the SAS both
devices show. Without --no-wait this command waits for the approval (and an
organisation admin's, where required) and completes the enrollment;
with --no-wait, finish later with ` + "`enigm sync`" + `.
` + logHelp + `

examples:
  enigm enroll --account alice --name laptop
  enigm enroll --account alice --no-wait --json
  enigm enroll --account alice --log-policy witnesses.policy --log-max-age 30m`,
				Flags: func(fs *pflag.FlagSet) {
					c.newDeviceFlags(fs, &o.name)
					fs.StringVar(&o.account, "account", "", "account name or id (required)")
					fs.BoolVar(&o.noWait, "no-wait", false, "print the request and return without waiting")
					c.logFlags(fs, &o.log)
				}, Run: c.do(func(c *Ctx) error { return enrollCommon(c, o) })}
		},
		func(c *Ctx) *clikit.Command {
			o := &enrollOpts{}
			return &clikit.Command{Path: "replace", Group: "account", Summary: "replace an old device of the account with this one", Usage: "--account NAME --old DEVICE [--no-wait]",
				Help: "Like enroll, but the new device takes the place of --old (its id, a unique\nprefix of at least 6 hex digits, or its name): only the old device can\napprove (with the pairing code), and it ends retired, its keys destroyed.\nThe --log-* flags are those of enroll (see enigm enroll --help).\n\nexample:\n  enigm replace --account alice --old 4f0c9a1e... --no-wait --json",
				Flags: func(fs *pflag.FlagSet) {
					c.newDeviceFlags(fs, &o.name)
					fs.StringVar(&o.account, "account", "", "account name or id (required)")
					fs.StringVar(&o.old, "old", "", "the device this one replaces: id, id prefix or name (required)")
					fs.BoolVar(&o.noWait, "no-wait", false, "print the request and return without waiting")
					c.logFlags(fs, &o.log)
				}, Run: c.do(func(c *Ctx) error {
					if o.old == "" {
						return Usagef("--old is required")
					}
					return enrollCommon(c, o)
				})}
		},
		func(c *Ctx) *clikit.Command {
			var code string
			return &clikit.Command{Path: "approve", Group: "account", Summary: "approve a new device's enrollment request", Usage: "REQUEST_ID --code PAIRING_CODE",
				Help: `On an active device: checks the pairing code the new device shows against the
request, shows the SAS to compare with the new device's, and signs this
device's approval against the current chain head. On a terminal it asks for
confirmation after showing the SAS.

example:
  enigm approve 3fa9c2... --code 7Q2K-M4XD-0PAB-9TNE`,
				Args: 1, Flags: func(fs *pflag.FlagSet) {
					c.serverFlag(fs)
					fs.StringVar(&code, "code", "", "the pairing `CODE` the new device shows (required)")
				}, Run: c.do(func(c *Ctx) error { return runApprove(c, code) })}
		},
		func(c *Ctx) *clikit.Command {
			var account string
			return &clikit.Command{Path: "devices", Group: "account", Summary: "list an account's devices from its verified chain", Usage: "[--account NAME] [--json]",
				Help: "Verifies the account's chain (refusing rollbacks and forks) and lists its\ndevices: active, revoked and retired, with their protection level and who\napproved them, and the device a pending recovery would add.\n\nexample:\n  enigm devices --json",
				Flags: func(fs *pflag.FlagSet) {
					c.serverFlag(fs)
					fs.StringVar(&account, "account", "", "account name or id (default: this device's)")
				}, Run: c.do(withAgent(func(c *Ctx, a *device.Agent) error { return runDevices(c, a, account) }))}
		},
		func(c *Ctx) *clikit.Command {
			o := &revokeOpts{}
			return &clikit.Command{Path: "revoke", Group: "account", Summary: "revoke a device of this account", Usage: "DEVICE [--yes] [--this-device] [--last-device]",
				Help: `Signs a revoke_device link with this device's identity key. From the moment
Command accepts it, the revoked device cannot authenticate, receives no new
message or call keys, and its queued envelopes are deleted; when it next syncs
it destroys every key. DEVICE is the device's id, a unique prefix of at least
6 hex digits of it, or its name (` + "`enigm devices`" + ` lists them).

Two revocations cannot be undone from another device and need an extra
confirmation: revoking this device itself (--this-device: its keys are
destroyed) and revoking the account's last active device (--last-device:
afterwards only the recovery code brings the account back). On a terminal
without --yes you may type the device id's first 8 characters instead;
--yes alone refuses them.

examples:
  enigm revoke 4f0c9a1e... --yes
  enigm revoke laptop --yes
  enigm revoke 7d21b0c4... --yes --this-device    # this device, another remains`,
				Args: 1, Flags: func(fs *pflag.FlagSet) {
					c.serverFlag(fs)
					fs.BoolVar(&o.thisDevice, "this-device", false, "confirm that the device to revoke is this device")
					fs.BoolVar(&o.lastDevice, "last-device", false, "confirm that the device to revoke is the account's last active device")
				}, Run: c.do(withAgent(func(c *Ctx, a *device.Agent) error { return runRevokeDevice(c, a, o) }))}
		},
		func(c *Ctx) *clikit.Command {
			return &clikit.Command{Path: "rotate", Group: "account", Summary: "rotate this device's identity and KEM keys", Usage: "",
				Help:  "Generates new identity and KEM keys, publishes them in a rotate_keys link\nsigned by the old and new identity keys, then activates them; the old keys\nare superseded (the old KEM key still decrypts for its grace period).\n\nexample:\n  enigm rotate --json",
				Flags: c.serverFlag, Run: c.do(withAgent(runRotateDevice))}
		},
		func(c *Ctx) *clikit.Command {
			o := &recoverOpts{}
			return &clikit.Command{Path: "recover", Group: "account", Summary: "recover an account on this new device with the recovery code", Usage: "--account NAME [--no-wait]",
				Help: `Starts recovery: a recovery_request signed by the recovery key (from the code)
and this device's new keys. The account's devices see it and can veto it
during the waiting period; after it, the recovery completes (with the
organisation's review where required). Recovery restores the account, never
old messages: this device reads only what is sent to it after it joins.
The code comes from $ENIGM_RECOVERY_CODE, --recovery-code-file or a prompt.
The --log-* flags are those of enroll (see enigm enroll --help).

examples:
  ENIGM_RECOVERY_CODE=... enigm recover --account alice --no-wait --json
  enigm sync    # later: completes once the waiting period is over`,
				Flags: func(fs *pflag.FlagSet) {
					c.newDeviceFlags(fs, &o.name)
					fs.StringVar(&o.account, "account", "", "account name or id (required)")
					fs.StringVar(&o.codeFile, "recovery-code-file", "", "read the recovery code from this `FILE`")
					fs.BoolVar(&o.noWait, "no-wait", false, "start the recovery and return")
					c.logFlags(fs, &o.log)
				}, Run: c.do(func(c *Ctx) error { return runRecover(c, o) })}
		},
		func(c *Ctx) *clikit.Command {
			return &clikit.Command{Path: "veto", Group: "account", Summary: "veto a pending recovery of this account", Usage: "[REQUEST_ID]",
				Help: `Any active device can cancel a recovery during its waiting period: it signs a
recovery_veto link naming the request pending in the account's verified chain
(` + "`enigm sync`" + `, ` + "`status`" + ` and ` + "`devices`" + ` show it). Without REQUEST_ID it vetoes
the pending request (the chain holds at most one); with one, it refuses unless
that is the pending request. If you did not start the recovery, your recovery
code has leaked: replace it next with ` + "`enigm recovery rotate`" + `.

examples:
  enigm veto
  enigm veto 9c1e... --json`, Args: clikit.AnyArgs, Flags: c.serverFlag, Run: c.do(runVeto)}
		},
		func(c *Ctx) *clikit.Command {
			var codeFile string
			return &clikit.Command{Path: "recovery rotate", Summary: "replace the account's recovery code", Usage: "[--recovery-code-file F]",
				Help: `Draws a new recovery code and appends a rotate_recovery link signed by this
device and by the new recovery key. From then on the old code is useless: a
recovery started with it is refused, and a pending recovery is cancelled. The
new code is shown once (or written, mode 0600, to --recovery-code-file); it is
never stored on a device. Run it whenever the old code may have leaked, for
instance after vetoing a recovery you did not start.

examples:
  enigm recovery rotate
  enigm recovery rotate --recovery-code-file alice.recovery.new --json`,
				Flags: func(fs *pflag.FlagSet) {
					c.serverFlag(fs)
					fs.StringVar(&codeFile, "recovery-code-file", "", "write the new recovery code to this new `FILE` (0600) instead of printing it")
				}, Run: c.do(func(c *Ctx) error { return runRotateRecovery(c, codeFile) })}
		},
		func(c *Ctx) *clikit.Command {
			var to, in string
			return &clikit.Command{Path: "send", Group: "messages", Summary: "send a message to an account's devices", Usage: "--to ACCOUNT [--in FILE]",
				Help: `Seals the input (stdin by default) under a fresh message key, sealed with
HPKE to every eligible device of the recipient (from its verified chain) and
to this account's other devices, signed by this device.

example:
  echo hello | enigm send --to bob`,
				Flags: func(fs *pflag.FlagSet) {
					c.serverFlag(fs)
					fs.StringVar(&to, "to", "", "recipient `ACCOUNT` name or id (required)")
					fs.StringVar(&in, "in", "-", "message `FILE` (- is stdin)")
				}, Run: c.do(func(c *Ctx) error { return runSend(c, to, in) })}
		},
		func(c *Ctx) *clikit.Command {
			return &clikit.Command{Path: "receive", Group: "messages", Summary: "fetch and open messages for this device", Usage: "[--json]",
				Help:  "Fetches this device's envelopes, verifies each sender against its verified\nchain, and opens them. JSON: messages[] with from, sent_at and body (base64).\n\nexample:\n  enigm receive --json",
				Flags: c.serverFlag, Run: c.do(runReceive)}
		},
		func(c *Ctx) *clikit.Command {
			var to string
			var ttl time.Duration
			return &clikit.Command{Path: "call", Group: "messages", Summary: "set up a secure call with an account", Usage: "--to ACCOUNT [--ttl D] [--json]",
				Help: "Generates a call key (TTL-bounded), delivers it sealed to the eligible\ndevices, and prints the call id and the fingerprint both sides compare.\n\nexample:\n  enigm call --to bob --json",
				Flags: func(fs *pflag.FlagSet) {
					c.serverFlag(fs)
					fs.StringVar(&to, "to", "", "`ACCOUNT` to call (required)")
					fs.DurationVar(&ttl, "ttl", time.Hour, "lifetime of the call key")
				}, Run: c.do(func(c *Ctx) error { return runCall(c, to, ttl) })}
		},
		func(c *Ctx) *clikit.Command {
			return &clikit.Command{Path: "call accept", Summary: "join a call this device was invited to", Usage: "CALL_ID [--json]",
				Help: "Installs the call key delivered to this device and prints its fingerprint.\n\nexample:\n  enigm call accept call-5e0f... --json", Args: 1, Flags: c.serverFlag, Run: c.do(withAgent(runCallAccept))}
		},
		func(c *Ctx) *clikit.Command {
			return &clikit.Command{Path: "call end", Summary: "end a call this device set up (destroy its key)", Usage: "CALL_ID",
				Help: "example:\n  enigm call end call-5e0f...", Args: 1, Run: c.do(withAgent(runCallEnd))}
		},
		func(c *Ctx) *clikit.Command {
			var online bool
			return &clikit.Command{Path: "status", Group: "account", Summary: "show this device's account, state and protection", Usage: "[--online] [--json]",
				Help: "Shows the account, this device's id and state, the keystore's protection and\nwhether it is locked, and a pending recovery of the account, from the last\nverified chain. --online syncs first.\n\nexample:\n  enigm status --online --json",
				Flags: func(fs *pflag.FlagSet) {
					c.serverFlag(fs)
					fs.BoolVar(&online, "online", false, "sync with the server first")
				}, Run: c.do(withAgent(func(c *Ctx, a *device.Agent) error { return runDeviceStatus(c, a, online) }))}
		},
		func(c *Ctx) *clikit.Command {
			return &clikit.Command{Path: "sync", Group: "account", Summary: "fetch and verify the latest state; finish pending requests", Usage: "",
				Help:  "Verifies the account's chain from the server, completes a pending enrollment\nor recovery when it can, and destroys this device's keys if the verified\nchain shows it revoked. On an active device, a recovery of the account that\nis pending in the verified chain is shown (who, since when, when it can\ncomplete) and sync exits with status 4: run `enigm veto` if it is not you.\n\nexample:\n  enigm sync --json",
				Flags: c.serverFlag, Run: c.do(withAgent(runSync))}
		},
	)
}

// accountInitJSON is `init --json`: the recovery code, or the file it is
// in.
type accountInitJSON struct {
	AccountID   string `json:"account_id"`
	DeviceID    string `json:"device_id"`
	Fingerprint string `json:"fingerprint"`
	recoveryCodeJSON
}

// recoveryCodeJSON is where a new recovery code went: in the output, or
// in a file.
type recoveryCodeJSON struct {
	RecoveryCode     string `json:"recovery_code,omitempty"`
	RecoveryCodeFile string `json:"recovery_code_file,omitempty"`
}

// headJSON is a chain head in --json output.
type headJSON struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

func headOut(h chain.Head) headJSON { return headJSON{Seq: h.Seq, Hash: hexID(h.Hash[:])} }

func runAccountInit(c *Ctx, o *accountInitOpts) error {
	name := o.account
	if name == "" {
		return Usagef("--account is required")
	}
	if (o.invite == "") != (o.org == "") {
		return Usagef("--org and --invite go together")
	}
	out := o.codeFile
	codeOut, err := newRecoveryCodeOut(out)
	if err != nil {
		return err
	}
	defer codeOut.discard()
	a, err := c.agentWithLog(&o.log)
	if err != nil {
		return err
	}
	defer a.Close()
	res, err := a.Init(c.Context(), device.InitOptions{Account: name, DeviceName: o.name,
		Invite: o.invite, Org: o.org, RecoveryDelay: o.recoveryDelay, SetRecoveryDelay: true})
	if err != nil {
		return err
	}
	code := res.RecoveryCode.Reveal()
	defer res.RecoveryCode.Destroy()
	j := accountInitJSON{AccountID: hexID(res.Account[:]), DeviceID: hexID(res.Device[:]), Fingerprint: res.Fingerprint}
	if err := codeOut.put(code, &j.recoveryCodeJSON); err != nil {
		return err
	}
	return c.Output(j, func() {
		c.Printf("account %s created\n  account id:  %s\n  device id:   %s\n  fingerprint: %s\n", name, hexID(res.Account[:]), hexID(res.Device[:]), res.Fingerprint)
		codeOut.tell(c, "recovery code", code)
	})
}

// enrollJSON is `enroll --json` and `replace --json`.
type enrollJSON struct {
	RequestID   string    `json:"request_id"`
	AccountID   string    `json:"account_id"`
	DeviceID    string    `json:"device_id"`
	PairingCode string    `json:"pairing_code"`
	SAS         string    `json:"sas,omitempty"` // when one device approves
	SASByDevice []sasJSON `json:"sas_by_device"`
	State       string    `json:"state"`
}

type sasJSON struct {
	DeviceID string `json:"device_id"`
	Name     string `json:"name"`
	SAS      string `json:"sas"`
}

func enrollOut(r *device.EnrollResult) enrollJSON {
	j := enrollJSON{RequestID: r.RequestID, AccountID: hexID(r.Account[:]), DeviceID: hexID(r.Device[:]), PairingCode: r.PairingCode}
	for _, s := range r.SAS {
		j.SASByDevice = append(j.SASByDevice, sasJSON{DeviceID: hexID(s.Device[:]), Name: s.Name, SAS: s.SAS})
	}
	if len(r.SAS) == 1 {
		j.SAS = r.SAS[0].SAS
	}
	return j
}

func (c *Ctx) printEnroll(r *device.EnrollResult, verb string) {
	fmt.Fprintf(c.Stderr, "%s request %s sent for device %s\n", verb, r.RequestID, hexID(r.Device[:]))
	fmt.Fprintf(c.Stderr, "  pairing code: %s   (type it on the approving device: enigm approve %s --code %s)\n", r.PairingCode, r.RequestID, r.PairingCode)
	for _, s := range r.SAS {
		fmt.Fprintf(c.Stderr, "  SAS with %-20s %s   (the approving device must show the same)\n", s.Name+":", s.SAS)
	}
}

func enrollCommon(c *Ctx, o *enrollOpts) error {
	acct := o.account
	if acct == "" {
		return Usagef("--account is required")
	}
	a, err := c.agentWithLog(&o.log)
	if err != nil {
		return err
	}
	defer a.Close()
	old := ""
	if o.old != "" {
		// The device to replace, by id, id prefix or name, among the
		// account's devices.
		d, err := c.pickDevice(a, acct, o.old)
		if err != nil {
			return err
		}
		old = hexID(d[:])
	}
	r, err := a.Enroll(c.Context(), device.EnrollOptions{Account: acct, DeviceName: o.name, Replace: old})
	if err != nil {
		return err
	}
	verb := "enrollment"
	if old != "" {
		verb = "replacement"
	}
	j := enrollOut(r)
	if o.noWait {
		j.State = "pending"
		return c.Output(j, func() { c.printEnroll(r, verb); c.Printf("finish later with: enigm sync\n") })
	}
	c.printEnroll(r, verb)
	if err := a.Wait(c.Context()); err != nil {
		return err
	}
	j.State = "active"
	return c.Output(j, func() { c.Printf("device %s is now active in %s\n", hexID(r.Device[:]), acct) })
}

func runApprove(c *Ctx, code string) error {
	if code == "" {
		return Usagef("--code is required (the pairing code the new device shows)")
	}
	a, err := c.agent()
	if err != nil {
		return err
	}
	defer a.Close()
	confirm := func(sas, name string) error {
		fmt.Fprintf(c.Stderr, "new device %q, SAS %s\n", name, sas)
		if c.Terminal != nil && c.Terminal() && !c.G.Yes {
			return c.Confirm(fmt.Sprintf("does %q show SAS %s?", name, sas))
		}
		return nil
	}
	r, err := a.Approve(c.Context(), c.Args[0], code, confirm)
	if err != nil {
		return err
	}
	return c.Output(struct {
		RequestID string `json:"request_id"`
		State     string `json:"state"`
		DeviceID  string `json:"device_id"`
		Name      string `json:"name"`
		SAS       string `json:"sas"`
	}{r.RequestID, r.State, hexID(r.Device[:]), r.DeviceName, r.SAS},
		func() {
			c.Printf("approved %s (device %q, SAS %s): request is %s\n", r.RequestID, r.DeviceName, r.SAS, r.State)
			if r.State == "device_approved" {
				c.Printf("the organisation's admin must approve it too\n")
			}
		})
}

// devicesJSON is `devices --json`.
type devicesJSON struct {
	AccountID string        `json:"account_id"`
	Head      headJSON      `json:"head"`
	Devices   []deviceJSON  `json:"devices"`
	Recovery  *recoveryJSON `json:"recovery,omitempty"`
}

type deviceJSON struct {
	DeviceID   string `json:"device_id"`
	Name       string `json:"name"`
	State      string `json:"state"`
	Protection string `json:"protection"`
	ApprovedBy string `json:"approved_by"`
	AddedAt    string `json:"added_at"`
	AddedSeq   uint64 `json:"added_seq"`
	EndedAt    string `json:"ended_at,omitempty"`
	Self       bool   `json:"self"`
}

func runDevices(c *Ctx, a *device.Agent, account string) error {
	acct, devs, head, err := a.Devices(c.Context(), account)
	if err != nil && devs == nil {
		return err
	}
	var js []deviceJSON
	for _, d := range devs {
		j := deviceJSON{DeviceID: hexID(d.Device[:]), Name: d.Name, State: d.State, Protection: d.Protection,
			ApprovedBy: d.ApprovedBy, AddedAt: ts(d.AddedAt), AddedSeq: d.AddedSeq, Self: d.Self}
		if !d.EndedAt.IsZero() {
			j.EndedAt = ts(d.EndedAt)
		}
		js = append(js, j)
	}
	ri := a.PendingRecovery(acct)
	j := devicesJSON{AccountID: hexID(acct[:]), Head: headOut(head), Devices: js}
	if ri != nil {
		j.Recovery = recoveryOut(ri)
	}
	out := c.Output(j, func() {
		c.Printf("account %s (verified to seq %d)\n", hexID(acct[:]), head.Seq)
		for _, d := range devs {
			self := ""
			if d.Self {
				self = "  (this device)"
			}
			c.Printf("  %s  %-16s %-8s %-17s approved by %s%s\n", hexID(d.Device[:]), d.Name, d.State, d.Protection, d.ApprovedBy, self)
		}
		if ri != nil {
			c.Printf("  %s  %-16s %-8s recovery requested %s, can complete from %s\n", hexID(ri.Device[:]), ri.Name, "pending", ts(ri.RequestedAt), ts(ri.NotBefore))
		}
	})
	if err != nil {
		return err
	}
	return out
}

// pickDevice resolves ref, a device id, a unique prefix of at least 6 hex
// digits of one, or a device name, among the devices of account ("" for
// this device's).
func (c *Ctx) pickDevice(a *device.Agent, account, ref string) (chain.DeviceID, error) {
	if d, err := client.ParseDeviceID(strings.ToLower(ref)); err == nil {
		return d, nil
	}
	_, devs, _, err := a.Devices(c.Context(), account)
	if err != nil && devs == nil {
		return chain.DeviceID{}, err
	}
	cands := make([]clikit.Candidate, len(devs))
	for i, d := range devs {
		cands[i] = clikit.Candidate{ID: hexID(d.Device[:]), Name: d.Name}
	}
	i, err := clikit.Pick("device", ref, cands)
	if err != nil {
		return chain.DeviceID{}, err
	}
	return devs[i].Device, nil
}

func runRevokeDevice(c *Ctx, a *device.Agent, ro *revokeOpts) error {
	target, err := c.pickDevice(a, "", c.Args[0])
	if err != nil {
		return err
	}
	t, err := a.CheckRevoke(c.Context(), target)
	if err != nil {
		return err
	}
	o := device.RevokeOptions{ThisDevice: ro.thisDevice, LastDevice: ro.lastDevice}
	if err := c.confirmRevoke(t, &o); err != nil {
		return err
	}
	head, err := a.Revoke(c.Context(), target, o)
	if err != nil {
		return err
	}
	return c.Output(struct {
		Revoked string   `json:"revoked"`
		Head    headJSON `json:"head"`
	}{hexID(target[:]), headOut(head)}, func() {
		c.Printf("device %s revoked (chain seq %d)\n", hexID(target[:]), head.Seq)
	})
}

// confirmRevoke asks for the confirmations a revocation needs: the usual
// one, and for this device or the account's last active device an explicit
// one (its flag, or on a terminal without --yes the device id typed).
func (c *Ctx) confirmRevoke(t device.RevokeTarget, o *device.RevokeOptions) error {
	id := hexID(t.Device[:])
	var warn, missing []string
	if t.Self && !o.ThisDevice {
		warn, missing = append(warn, "it is THIS device: every key on it is destroyed"), append(missing, "--this-device")
	}
	if t.Last && !o.LastDevice {
		warn, missing = append(warn, "it is the account's LAST active device: afterwards only the recovery code can bring the account back"),
			append(missing, "--last-device")
	}
	if len(missing) == 0 {
		return c.Confirm(fmt.Sprintf("revoke device %s (%q)? it loses access for good", id, t.Name))
	}
	what := strings.Join(warn, "; ")
	if c.G.Yes || c.Terminal == nil || !c.Terminal() {
		return Usagef("not revoking device %s (%q): %s; to confirm, add %s", id, t.Name, what, strings.Join(append([]string{"--yes"}, missing...), " "))
	}
	fmt.Fprintf(c.Stderr, "revoke device %s (%q)? %s\ntype the device id's first 8 characters to confirm: ", id, t.Name, what)
	line, _ := bufio.NewReader(c.Stdin).ReadString('\n')
	if strings.ToLower(strings.TrimSpace(line)) != id[:8] {
		return errors.New("not confirmed; nothing was revoked")
	}
	o.ThisDevice, o.LastDevice = o.ThisDevice || t.Self, o.LastDevice || t.Last
	return nil
}

func runRotateDevice(c *Ctx, a *device.Agent) error {
	id, kem, err := a.Rotate(c.Context())
	if err != nil {
		return err
	}
	return c.Output(struct {
		IdentityKey string `json:"identity_key"`
		KEMKey      string `json:"kem_key"`
	}{id.String(), kem.String()}, func() {
		c.Printf("rotated: identity key %s, KEM key %s\n", id, kem)
	})
}

func (c *Ctx) recoveryCode(file string) (string, error) {
	if f := file; f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		return strings.TrimSpace(string(b)), nil
	}
	if s := c.Getenv("ENIGM_RECOVERY_CODE"); s != "" {
		return s, nil
	}
	if c.Terminal == nil || !c.Terminal() || c.ReadPassword == nil {
		return "", errors.New("no recovery code: set $ENIGM_RECOVERY_CODE, use --recovery-code-file, or run on a terminal")
	}
	b, err := c.ReadPassword("Recovery code: ")
	return strings.TrimSpace(string(b)), err
}

// recoverJSON is `recover --json`.
type recoverJSON struct {
	RequestID string `json:"request_id"`
	AccountID string `json:"account_id"`
	DeviceID  string `json:"device_id"`
	NotBefore string `json:"not_before"`
	State     string `json:"state"`
}

func runRecover(c *Ctx, o *recoverOpts) error {
	acct := o.account
	if acct == "" {
		return Usagef("--account is required")
	}
	code, err := c.recoveryCode(o.codeFile)
	if err != nil {
		return err
	}
	a, err := c.agentWithLog(&o.log)
	if err != nil {
		return err
	}
	defer a.Close()
	r, err := a.Recover(c.Context(), device.RecoverOptions{Account: acct, DeviceName: o.name, Code: code})
	if err != nil {
		return err
	}
	j := recoverJSON{RequestID: r.RecoveryID, AccountID: hexID(r.Account[:]), DeviceID: hexID(r.Device[:]), NotBefore: ts(r.NotBefore)}
	if o.noWait {
		j.State = "waiting"
		return c.Output(j, func() {
			c.Printf("recovery %s requested for device %s; the account's devices can veto it until %s\nfinish with: enigm sync\n",
				r.RecoveryID, hexID(r.Device[:]), ts(r.NotBefore))
		})
	}
	fmt.Fprintf(c.Stderr, "recovery %s requested; waiting until %s (the account's devices can veto it)\n", r.RecoveryID, ts(r.NotBefore))
	if err := a.Wait(c.Context()); err != nil {
		return err
	}
	j.State = "active"
	return c.Output(j, func() {
		c.Printf("device %s recovered the account; it can read only what is sent from now on\n", hexID(r.Device[:]))
	})
}

func runVeto(c *Ctx) error {
	if len(c.Args) > 1 {
		return Usagef("veto takes at most one argument (the request id), got %d", len(c.Args))
	}
	id := ""
	if len(c.Args) == 1 {
		id = c.Args[0]
	}
	a, err := c.agent()
	if err != nil {
		return err
	}
	defer a.Close()
	ri, head, err := a.Veto(c.Context(), id)
	if err != nil {
		return err
	}
	return c.Output(struct {
		Vetoed   string        `json:"vetoed"`
		Recovery *recoveryJSON `json:"recovery"`
		Head     headJSON      `json:"head"`
	}{ri.RequestID, recoveryOut(ri), headOut(head)}, func() {
		c.Printf("recovery %s vetoed: device %q (%s) will not join\n", ri.RequestID, ri.Name, hexID(ri.Device[:]))
		c.Printf("if you did not start it, the recovery code has leaked: replace it with `enigm recovery rotate`\n")
	})
}

// recoveryCodeOut is where a new recovery code goes: a file created with
// mode 0600 before the code exists (never overwriting one), or the
// command's output.
type recoveryCodeOut struct {
	path string
	f    *os.File
}

func newRecoveryCodeOut(path string) (*recoveryCodeOut, error) {
	o := &recoveryCodeOut{path: path}
	if path != "" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, err
		}
		o.f = f
	}
	return o, nil
}

// discard removes the file if the code never reached it.
func (o *recoveryCodeOut) discard() {
	if o.f != nil {
		o.f.Close()
		os.Remove(o.path)
		o.f = nil
	}
}

// put writes code to the file (and names the file in j), or puts the code
// in j when there is no file.
func (o *recoveryCodeOut) put(code string, j *recoveryCodeJSON) error {
	if o.f == nil {
		j.RecoveryCode = code
		return nil
	}
	if _, err := fmt.Fprintln(o.f, code); err != nil {
		return err
	}
	if err := o.f.Close(); err != nil {
		return err
	}
	o.f = nil
	j.RecoveryCodeFile = o.path
	return nil
}

// tell says where the code went: the file, or (shown once) the code
// itself; what names it in the message.
func (o *recoveryCodeOut) tell(c *Ctx, what, code string) {
	if o.path != "" {
		c.Printf("%s written to %s (mode 0600): keep it offline; it is not stored on this device\n", what, o.path)
		return
	}
	c.Printf("\n%s (shown once; keep it offline, it is not stored anywhere):\n  %s\n", strings.ToUpper(what), code)
}

func runRotateRecovery(c *Ctx, out string) error {
	codeOut, err := newRecoveryCodeOut(out)
	if err != nil {
		return err
	}
	defer codeOut.discard()
	a, err := c.agent()
	if err != nil {
		return err
	}
	defer a.Close()
	rc, head, err := a.RotateRecovery(c.Context())
	if rc == nil {
		return err
	}
	// From here the new code is the account's only code: show it (or keep
	// the file) even if the sync that followed failed.
	defer rc.Destroy()
	j := struct {
		Head headJSON `json:"head"`
		recoveryCodeJSON
	}{Head: headOut(head)}
	if perr := codeOut.put(rc.Reveal(), &j.recoveryCodeJSON); perr != nil {
		return errors.Join(perr, err)
	}
	if oerr := c.Output(j, func() {
		c.Printf("recovery code replaced (chain seq %d): the old code no longer works\n", head.Seq)
		codeOut.tell(c, "new recovery code", rc.Reveal())
	}); oerr != nil {
		return oerr
	}
	return err
}

func runSend(c *Ctx, to, in string) error {
	if to == "" {
		return Usagef("--to is required")
	}
	body, err := c.ReadInput(in, 64<<10)
	if err != nil {
		return err
	}
	a, err := c.agent()
	if err != nil {
		return err
	}
	defer a.Close()
	r, err := a.Send(c.Context(), to, body)
	if err != nil {
		return err
	}
	out := struct {
		Accepted []string       `json:"accepted"`
		Rejected []rejectedJSON `json:"rejected"` // null when none
	}{Accepted: nonNil(r.Accepted)}
	for _, x := range r.Rejected {
		out.Rejected = append(out.Rejected, rejectedJSON{DeviceID: x.DeviceID, Reason: x.Reason})
	}
	return c.Output(out, func() {
		c.Printf("sent to %d device(s)", len(r.Accepted))
		if len(r.Rejected) > 0 {
			c.Printf("; %d refused by the relay", len(r.Rejected))
		}
		c.Printf("\n")
	})
}

// receiveJSON is `receive --json`. skipped and deferred are null when
// there are none.
type receiveJSON struct {
	Messages []messageJSON  `json:"messages"`
	Calls    []string       `json:"calls"`
	Skipped  []envelopeNote `json:"skipped"`
	Deferred []envelopeNote `json:"deferred"`
}

type messageJSON struct {
	ID         string `json:"id"`
	From       string `json:"from"`
	FromName   string `json:"from_name,omitempty"`
	FromDevice string `json:"from_device"`
	SentAt     string `json:"sent_at"`
	Body       string `json:"body"`
}

type rejectedJSON struct {
	DeviceID string `json:"device_id"`
	Reason   string `json:"reason"`
}

type envelopeNote struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

func runReceive(c *Ctx) error {
	a, err := c.agent()
	if err != nil {
		return err
	}
	defer a.Close()
	r, err := a.Receive(c.Context())
	if err != nil {
		return err
	}
	out := receiveJSON{Messages: []messageJSON{}, Calls: nonNil(r.Calls)}
	for _, m := range r.Messages {
		out.Messages = append(out.Messages, messageJSON{ID: m.ID, From: hexID(m.From[:]), FromName: a.NameOf(m.From), FromDevice: hexID(m.FromDevice[:]),
			SentAt: m.SentAt.UTC().Format(time.RFC3339Nano), Body: base64.StdEncoding.EncodeToString(m.Body)})
	}
	for _, s := range r.Skipped {
		out.Skipped = append(out.Skipped, envelopeNote{ID: s.ID, Reason: s.Reason})
	}
	for _, s := range r.Deferred {
		out.Deferred = append(out.Deferred, envelopeNote{ID: s.ID, Reason: s.Reason})
	}
	return c.Output(out, func() {
		for _, m := range r.Messages {
			from := a.NameOf(m.From)
			if from == "" {
				from = hexID(m.From[:])[:16] + "…"
			}
			c.Printf("from %s (device %s) at %s:\n%s\n", from, hexID(m.FromDevice[:])[:12], m.SentAt.Format(time.RFC3339), m.Body)
		}
		for _, id := range r.Calls {
			c.Printf("incoming call %s (join with: enigm call accept %s)\n", id, id)
		}
		for _, s := range r.Skipped {
			c.Printf("refused envelope %s: %s\n", s.ID, s.Reason)
		}
		for _, s := range r.Deferred {
			c.Printf("envelope %s left for later: %s\n", s.ID, s.Reason)
		}
		if len(r.Messages)+len(r.Calls)+len(r.Skipped)+len(r.Deferred) == 0 {
			c.Printf("no new messages\n")
		}
	})
}

func runCall(c *Ctx, to string, ttl time.Duration) error {
	if to == "" {
		return Usagef("--to is required")
	}
	a, err := c.agent()
	if err != nil {
		return err
	}
	defer a.Close()
	r, err := a.Call(c.Context(), to, ttl)
	if err != nil {
		return err
	}
	return c.Output(struct {
		CallID      string   `json:"call_id"`
		Fingerprint string   `json:"fingerprint"`
		Expires     string   `json:"expires"`
		DeliveredTo []string `json:"delivered_to"`
	}{r.CallID, r.Fingerprint, ts(r.Expires), nonNil(r.Send.Accepted)}, func() {
		c.Printf("call %s set up with %d device(s); fingerprint %s (the other side must show the same)\n", r.CallID, len(r.Send.Accepted), r.Fingerprint)
	})
}

func runCallAccept(c *Ctx, a *device.Agent) error {
	fp, err := a.AcceptCall(c.Context(), c.Args[0])
	if err != nil {
		return err
	}
	return c.Output(struct {
		CallID      string `json:"call_id"`
		Fingerprint string `json:"fingerprint"`
	}{c.Args[0], fp}, func() {
		c.Printf("joined call %s; fingerprint %s\n", c.Args[0], fp)
	})
}

func runCallEnd(c *Ctx, a *device.Agent) error {
	if err := a.EndCall(c.Context(), c.Args[0]); err != nil {
		return err
	}
	return c.Output(struct {
		CallID string `json:"call_id"`
		Ended  bool   `json:"ended"`
	}{c.Args[0], true}, func() { c.Printf("call %s ended; its key is destroyed\n", c.Args[0]) })
}

// deviceStatusJSON is `status --json` and `sync --json`.
type deviceStatusJSON struct {
	State       string        `json:"state"`
	Locked      bool          `json:"locked"`
	Protection  string        `json:"protection"`
	Server      string        `json:"server"`
	AccountID   string        `json:"account_id,omitempty"`
	Account     string        `json:"account,omitempty"`
	Head        *headJSON     `json:"head,omitempty"`
	Fingerprint string        `json:"fingerprint,omitempty"`
	DeviceID    string        `json:"device_id,omitempty"`
	Recovery    *recoveryJSON `json:"recovery,omitempty"`
	Pending     *pendingJSON  `json:"pending,omitempty"`
}

type pendingJSON struct {
	Kind        string `json:"kind"`
	RequestID   string `json:"request_id"`
	PairingCode string `json:"pairing_code,omitempty"`
	NotBefore   string `json:"not_before,omitempty"`
}

func statusOut(s *device.StatusInfo) deviceStatusJSON {
	j := deviceStatusJSON{State: s.State, Locked: s.Locked, Protection: s.Protection, Server: s.Server}
	if s.HasAccount {
		h := headOut(s.Head)
		j.AccountID, j.Account, j.Head, j.Fingerprint = hexID(s.AccountID[:]), s.Account, &h, s.Fingerprint
	}
	if s.Device != (chain.DeviceID{}) {
		j.DeviceID = hexID(s.Device[:])
	}
	if s.Recovery != nil {
		j.Recovery = recoveryOut(s.Recovery)
	}
	if s.Pending != nil {
		j.Pending = &pendingJSON{Kind: s.Pending.Kind, RequestID: s.Pending.RequestID, PairingCode: s.Pending.PairingCode}
		if !s.Pending.NotBefore.IsZero() {
			j.Pending.NotBefore = ts(s.Pending.NotBefore)
		}
	}
	return j
}

func (c *Ctx) printStatus(s *device.StatusInfo) {
	if !s.HasAccount {
		c.Printf("no account on this device (enigm init, enroll or recover)\n")
		return
	}
	c.Printf("account     %s %s\ndevice      %s\nstate       %s\nprotection  %s\nkeystore    %s\nserver      %s\nchain head  seq %d\n",
		s.Account, hexID(s.AccountID[:]), hexID(s.Device[:]), s.State, s.Protection, map[bool]string{true: "locked", false: "unlocked"}[s.Locked], s.Server, s.Head.Seq)
	if s.Pending != nil {
		c.Printf("pending     %s %s\n", s.Pending.Kind, s.Pending.RequestID)
	}
	if r := s.Recovery; r != nil {
		c.Printf("RECOVERY    %s: device %q (%s) requested %s, can complete from %s%s\n", r.RequestID, r.Name, hexID(r.Device[:]), ts(r.RequestedAt), ts(r.NotBefore), witnessedText(r))
	}
}

// recoveryJSON is a pending recovery in --json output.
type recoveryJSON struct {
	RequestID   string `json:"request_id"`
	DeviceID    string `json:"device_id"`
	Name        string `json:"name"`
	Seq         uint64 `json:"seq"`
	RequestedAt string `json:"requested_at"`
	NotBefore   string `json:"not_before"`
	// With a witness policy: when the request was first witnessed and
	// the witnessed time before which no recover link is accepted, or
	// why the device could not verify them.
	WitnessedAt        string `json:"witnessed_at,omitempty"`
	WitnessedNotBefore string `json:"witnessed_not_before,omitempty"`
	WitnessError       string `json:"witness_error,omitempty"`
}

func recoveryOut(r *device.RecoveryInfo) *recoveryJSON {
	j := &recoveryJSON{RequestID: r.RequestID, DeviceID: hexID(r.Device[:]), Name: r.Name, Seq: r.Seq,
		RequestedAt: ts(r.RequestedAt), NotBefore: ts(r.NotBefore), WitnessError: r.WitnessError}
	if !r.WitnessedAt.IsZero() {
		j.WitnessedAt, j.WitnessedNotBefore = ts(r.WitnessedAt), ts(r.WitnessedNotBefore)
	}
	return j
}

// witnessedText is what the text output adds about a pending recovery's
// witnessed time ("" without a witness policy).
func witnessedText(r *device.RecoveryInfo) string {
	switch {
	case !r.WitnessedAt.IsZero():
		return fmt.Sprintf("; first witnessed %s, not before %s by witnessed time", ts(r.WitnessedAt), ts(r.WitnessedNotBefore))
	case r.Witnessed || r.WitnessError != "":
		return "; not witnessed as this device requires yet: " + r.WitnessError
	}
	return ""
}

// recoveryPendingError is sync's answer while a recovery of the account is
// pending: exit status ExitRecoveryPending, after the status was printed.
type recoveryPendingError struct{ r *device.RecoveryInfo }

func (e *recoveryPendingError) Error() string {
	r := e.r
	return fmt.Sprintf("a recovery of this account is pending: request %s for new device %q (%s), requested %s; it can complete from %s%s.\n"+
		"If you did not start it, stop it now with `enigm veto`, then replace the recovery code with `enigm recovery rotate`",
		r.RequestID, r.Name, hexID(r.Device[:]), ts(r.RequestedAt), ts(r.NotBefore), witnessedText(r))
}

func runDeviceStatus(c *Ctx, a *device.Agent, online bool) error {
	s, err := a.Status(c.Context(), online)
	if err != nil {
		return err
	}
	return c.Output(statusOut(s), func() { c.printStatus(s) })
}

func runSync(c *Ctx, a *device.Agent) error {
	if a.Pending() != nil {
		if err := a.Finish(c.Context()); err != nil && !errors.Is(err, device.ErrWaiting) {
			return err
		} else if err != nil {
			fmt.Fprintln(c.Stderr, err)
		}
	}
	s, err := a.Status(c.Context(), true)
	if err != nil {
		return err
	}
	if s.State == device.StatusRevoked || s.State == device.StatusRetired {
		// Nothing syncs for a device that is no longer in its account.
		return fmt.Errorf("%w (%s): its keys were destroyed", device.ErrRevoked, s.State)
	}
	if err := c.Output(statusOut(s), func() { c.printStatus(s) }); err != nil {
		return err
	}
	if s.Recovery != nil && s.State == device.StatusActive {
		return &recoveryPendingError{s.Recovery}
	}
	return nil
}

// readTrustedAKs reads the attestation keys a device trusts
// ($ENIGM_TRUST_TPM_AK): hex, one per line, # comments.
func readTrustedAKs(path string) ([]attest.AK, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ENIGM_TRUST_TPM_AK: %w", err)
	}
	return clikit.ParseHexLines[attest.AK](b, path, "attestation key", 32, 0)
}
