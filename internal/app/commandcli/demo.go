package commandcli

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/soft"
	"github.com/enigm/enigm/command"
	"github.com/enigm/enigm/device"
	"github.com/enigm/enigm/internal/clikit"
	"github.com/enigm/enigm/keystore"
	"github.com/enigm/enigm/lifecycle"
	"github.com/spf13/pflag"
)

// The demo lives in enigm-command, not in the device CLI: it runs Command
// in-process, and the device binary must not contain the server
// (internal/archtest). The devices it plays are device.Agents, the same
// code enigm runs.
func init() {
	register(func(c *ctx) *clikit.Command {
		var keep bool
		return &clikit.Command{
			Path: "demo", Group: "server", Usage: "[--keep]",
			Summary: "walk through every lifecycle event with an in-process Command and a few devices",
			Help: `Starts Enigm Command in this process (SQLite in a temporary directory, on a
loopback port) and walks through the key management model with a few devices
and one managed organisation, printing what happens and why: account setup,
enrollment with a pairing code and SAS, secure messaging and call setup,
rotation, policy denials, admin approval, admin revocation, recovery and its
waiting period. The devices are the same device agents enigm runs, with
software keystores. Nothing outside the temporary directory is touched; it
takes a few seconds. The output is prose for people: --json is refused.

examples:
  enigm-command demo
  enigm-command demo --keep      # keep the temporary directory to look at`,
			Flags: func(fs *pflag.FlagSet) {
				fs.BoolVar(&keep, "keep", false, "keep the temporary directory and print its path")
			},
			Run: c.do(func(c *ctx) error { return runDemo(c, keep) }),
		}
	})
}

type demo struct {
	c      *ctx
	ctx    context.Context
	dir    string
	server string
	cfg    command.Config
	mk     func() (backend.Backend, error)
	step   int
}

func (d *demo) printf(format string, a ...any) { fmt.Fprintf(d.c.Stdout, format, a...) }
func (d *demo) title(s string)                 { d.step++; d.printf("\n%d. %s\n", d.step, s) }
func (d *demo) say(format string, a ...any) {
	d.printf("   "+format+"\n", a...)
}

func denial(err error) string {
	var de *keystore.DeniedError
	if errors.As(err, &de) {
		return "denied: " + strings.Join(de.Codes(), ", ")
	}
	if err == nil {
		return "allowed"
	}
	return "refused: " + err.Error()
}

func (d *demo) device(name string) (*device.Agent, error) {
	pass := []byte("demo passphrase of " + name)
	return device.Open(device.Options{Home: filepath.Join(d.dir, name), Server: d.server,
		Passphrase: func(bool) ([]byte, error) { return append([]byte(nil), pass...), nil },
		Backend:    func(string) (backend.Backend, error) { return d.mk() },
		NewBackend: d.mk, Poll: 200 * time.Millisecond})
}

func runDemo(c *ctx, keep bool) error {
	if c.json {
		return usagef("the demo prints prose only; run it without --json")
	}
	dir, err := os.MkdirTemp("", "enigm-demo-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(dir)
	}
	mk := c.DemoBackend
	if mk == nil {
		mk = func() (backend.Backend, error) { return soft.New(soft.Options{}) }
	}
	d := &demo{c: c, ctx: c.Context, dir: dir, mk: mk}
	d.cfg = command.Config{DataDir: filepath.Join(dir, "command"), KeystorePassphrase: []byte("demo command keystore"),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MinRecoveryDelay: time.Second} // the demo waits 2s
	if c.Env.Config != nil {
		c.Env.Config(&d.cfg)
	}
	srv, err := command.New(d.cfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	sctx, stop := context.WithCancel(d.ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, l) }()
	defer func() { stop(); <-done }()
	d.server = "http://" + l.Addr().String()
	d.printf("Enigm demo: Command runs in this process at %s (SQLite in %s).\n", d.server, d.cfg.DataDir)
	d.printf("Every device below has its own keystore (software backend) in %s.\n", dir)
	if err := d.run(); err != nil {
		return err
	}
	if keep {
		d.printf("\nkept %s\n", dir)
	}
	d.printf("\ndone.\n")
	return nil
}

func (d *demo) run() error {
	ctx := d.ctx
	laptop, err := d.device("alice-laptop")
	if err != nil {
		return err
	}
	defer laptop.Close()

	d.title("Account setup: alice's laptop creates the account")
	res, err := laptop.Init(ctx, device.InitOptions{Account: "alice", DeviceName: "laptop", RecoveryDelay: 2 * time.Second, SetRecoveryDelay: true})
	if err != nil {
		return err
	}
	code := res.RecoveryCode.Reveal()
	d.say("identity key (Ed25519 + ML-DSA-65) and KEM key (ML-KEM-768 + X25519) generated in the laptop's keystore;")
	d.say("they are stored only wrapped, and became active when Command accepted the signed genesis link")
	d.say("account id %s…, fingerprint %s…", hex.EncodeToString(res.Account[:8]), res.Fingerprint[:23])
	d.say("recovery code %s-… shown once; only its public key is in the chain (recovery delay: 2s for the demo)", strings.SplitN(code, "-", 2)[0])

	d.title("Every key use is decided against the device state")
	ks := laptop.Keystore()
	keys, _ := ks.List()
	var idKey keystore.KeyID
	for _, k := range keys {
		if k.Class == keystore.ClassIdentity && k.State == lifecycle.Active {
			idKey = k.ID
		}
	}
	h, err := ks.Identity(idKey)
	if err != nil {
		return err
	}
	ks.SetAppAuthorized(false)
	_, err = h.Sign(demoPurpose, []byte("x"))
	d.say("app signed out      -> %s", denial(err))
	ks.SetAppAuthorized(true)
	ks.Lock()
	_, err = h.Sign(demoPurpose, []byte("x"))
	d.say("keystore locked     -> %s", denial(err))
	d.say("(each decision, allowed or denied, goes to the laptop's hash-chained audit log)")

	phone, err := d.device("alice-phone")
	if err != nil {
		return err
	}
	defer phone.Close()
	d.title("Enrollment: the phone asks to join; no private key is ever copied")
	er, err := phone.Enroll(ctx, device.EnrollOptions{Account: "alice", DeviceName: "phone"})
	if err != nil {
		return err
	}
	d.say("the phone generated its own keys and sent request %s… with its public keys only", er.RequestID[:8])
	d.say("the phone shows pairing code %s; the user types it on the laptop", er.PairingCode)
	ap, err := laptop.Approve(ctx, er.RequestID, er.PairingCode, func(sas, name string) error {
		d.say("laptop: pairing code matches the request; SAS %s (phone shows %s): the user compares", sas, er.SAS[0].SAS)
		return nil
	})
	if err != nil {
		return err
	}
	d.say("laptop signed the approval against the current chain head (request %s)", ap.State)
	if err := phone.Finish(ctx); err != nil {
		return err
	}
	d.say("phone added its proof of possession; Command verified the link and appended it")
	_, devs, head, err := phone.Devices(ctx, "")
	if err != nil {
		return err
	}
	d.say("the phone verified the chain itself (seq %d): %d active devices", head.Seq, len(devs))

	d.title("Secure messaging setup: one message key per message, sealed to each eligible device")
	sent, err := laptop.Send(ctx, "alice", []byte("hello from the laptop"))
	if err != nil {
		return err
	}
	d.say("laptop sealed a fresh message key to %d device(s) of the verified chain and destroyed it", len(sent.Accepted))
	got, err := phone.Receive(ctx)
	if err != nil {
		return err
	}
	for _, m := range got.Messages {
		d.say("phone opened: %q (sender verified against the chain; Command relayed only ciphertext)", m.Body)
	}

	d.title("Secure call setup: a TTL-bounded call key, delivered only to eligible devices")
	call, err := laptop.Call(ctx, "alice", 10*time.Minute)
	if err != nil {
		return err
	}
	fp, err := phone.AcceptCall(ctx, call.CallID)
	if err != nil {
		return err
	}
	d.say("laptop fingerprint %s, phone fingerprint %s: the same key", call.Fingerprint, fp)
	laptop.EndCall(ctx, call.CallID)

	d.title("Rotation: the phone replaces its identity and KEM keys")
	if _, _, err := phone.Rotate(ctx); err != nil {
		return err
	}
	d.say("rotate_keys was signed by the old and the new identity key; the old KEM key decrypts for a grace period only")

	d.title("A managed organisation: enrollment waits for the admin")
	org, err := command.CreateOrg(ctx, d.cfg, command.OrgSpec{Name: "acme", Policy: command.Policy{RequireAdminApproval: true, RecoveryDelaySeconds: 2}})
	if err != nil {
		return err
	}
	inv, err := command.CreateInvite(ctx, d.cfg, "acme", "bob", 0)
	if err != nil {
		return err
	}
	d.say("organisation acme created; its admin key is in Command's keystore, never in the database")
	desk, err := d.device("bob-desk")
	if err != nil {
		return err
	}
	defer desk.Close()
	bres, err := desk.Init(ctx, device.InitOptions{Account: "bob", DeviceName: "desk", Invite: inv.Code, Org: org.ID})
	if err != nil {
		return err
	}
	d.say("bob's desk joined acme's account bob (Command counter-signed the genesis with the organisation key)")
	tablet, err := d.device("bob-tablet")
	if err != nil {
		return err
	}
	defer tablet.Close()
	ter, err := tablet.Enroll(ctx, device.EnrollOptions{Account: "bob", DeviceName: "tablet"})
	if err != nil {
		return err
	}
	tap, err := desk.Approve(ctx, ter.RequestID, ter.PairingCode, nil)
	if err != nil {
		return err
	}
	d.say("desk approved the tablet -> request %s", tap.State)
	if err := tablet.Finish(ctx); err != nil && !errors.Is(err, device.ErrWaiting) {
		return err
	} else if err != nil {
		d.say("tablet: %v", err)
	}
	if err := d.admin(org.AdminToken, "POST", "/v1/admin/enrollments/"+ter.RequestID+"/approve", "{}"); err != nil {
		return err
	}
	d.say("the admin approved: Command signed the organisation's approval (it holds no device key)")
	if err := tablet.Finish(ctx); err != nil {
		return err
	}
	d.say("tablet is active")

	d.title("Revocation cuts messaging, calls and future key use")
	tid := tablet.Keystore().DeviceID()
	if err := d.admin(org.AdminToken, "POST", "/v1/admin/accounts/"+hex.EncodeToString(bres.Account[:])+"/revoke",
		fmt.Sprintf(`{"device_id":"%s"}`, hex.EncodeToString(tid[:]))); err != nil {
		return err
	}
	d.say("the admin revoked the tablet: Command signed revoke_device with the organisation key")
	_, err = desk.Send(ctx, "bob", []byte("for the tablet?"))
	d.say("desk sending to bob's other devices -> %s", denial(err))
	_, err = tablet.Receive(ctx)
	d.say("tablet syncing -> %s", denial(err))
	tks := tablet.Keystore()
	tkeys, _ := tks.List()
	for _, k := range tkeys {
		if k.Class == keystore.ClassIdentity {
			th, _ := tks.Identity(k.ID)
			_, err := th.Sign(demoPurpose, []byte("x"))
			d.say("tablet's keystore, identity key %s -> %s", k.ID.Short(), denial(err))
			break
		}
	}

	d.title("Recovery restores the account, never old messages")
	bobDesk := []byte("sent before recovery")
	if _, err := desk.Send(ctx, "alice", bobDesk); err != nil {
		return err
	}
	spare, err := d.device("alice-spare")
	if err != nil {
		return err
	}
	defer spare.Close()
	rr, err := spare.Recover(ctx, device.RecoverOptions{Account: "alice", DeviceName: "spare", Code: code})
	if err != nil {
		return err
	}
	d.say("a spare device used the recovery code: request %s…, not before %s", rr.RecoveryID[:8], rr.NotBefore.Format(time.TimeOnly))
	d.say("alice's devices see the pending request in the chain and could veto it (enigm veto)")
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = spare.Wait(wctx)
	cancel()
	if err != nil {
		return err
	}
	d.say("after the waiting period the spare device completed the recovery and is active")
	got, err = spare.Receive(ctx)
	if err != nil {
		return err
	}
	d.say("the spare device opened %d old message(s): what was sent before it joined was never sealed to it", len(got.Messages))
	got, err = laptop.Receive(ctx)
	if err == nil {
		d.say("(the laptop, active at the time, received %d message(s))", len(got.Messages))
	}

	d.title("What the server could not do")
	d.say("Command stored and verified every link, but it cannot add a device: that takes a signature")
	d.say("from an active device (and here the organisation); devices verify the chain themselves and")
	d.say("refuse rollbacks and forks. Command never saw a private key or a message in the clear.")
	return nil
}

// admin calls the admin API with the organisation's admin token.
func (d *demo) admin(token, method, path, body string) error {
	req, err := http.NewRequestWithContext(d.ctx, method, d.server+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("admin %s %s: %s %s", method, path, resp.Status, b)
	}
	return nil
}

// demoPurpose is the application purpose the demo signs for.
var demoPurpose = func() keystore.Purpose {
	p, err := keystore.AppPurpose("demo")
	if err != nil {
		panic(err) // a constant label
	}
	return p
}()
