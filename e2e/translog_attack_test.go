package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/hybrid"
	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/translog/translogtest"
)

// Attacks on the transparency log against the real binaries: a hostile
// front (logProxy) in front of a real enigm-command rolls the log back,
// shows one device a fork (a second real enigm-command over another
// database with the same log keys), serves a chain link that is not in
// the log, and strips, breaks or freezes the cosignatures of a real
// witness process. Each is refused by the real enigm device with a clear
// message; the honest flows work with the log on.

// logProxy is a hostile front for an enigm-command.
type logProxy struct {
	mu         sync.Mutex
	upstream   *url.URL
	checkpoint []byte              // served as /log/checkpoint when set
	rewrite    func([]byte) []byte // applied to the upstream's /log/checkpoint when set
	extra      map[string][]byte   // account id -> a link appended to its chain answers
	hide       map[string]uint64   // account id -> the first seq its chain answers leave out
	url        string
}

func newLogProxy(t *testing.T, upstream string) *logProxy {
	t.Helper()
	p := &logProxy{}
	p.setUpstream(t, upstream)
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	p.url = srv.URL
	return p
}

func (p *logProxy) setUpstream(t *testing.T, upstream string) {
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	p.set(func(p *logProxy) { p.upstream = u })
}

func (p *logProxy) set(f func(p *logProxy)) { p.mu.Lock(); f(p); p.mu.Unlock() }

func (p *logProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	up, cp, rewrite, extra, hide := p.upstream, p.checkpoint, p.rewrite, p.extra, p.hide
	p.mu.Unlock()
	if cp != nil && r.URL.Path == "/log/checkpoint" {
		w.Write(cp)
		return
	}
	resp, body, ok := testkit.Forward(w, r, up)
	if !ok {
		return
	}
	if rewrite != nil && r.URL.Path == "/log/checkpoint" && resp.StatusCode == http.StatusOK {
		body = rewrite(body)
	}
	if strings.HasSuffix(r.URL.Path, "/chain") && resp.StatusCode == http.StatusOK {
		id := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1/accounts/"), "/chain")
		if cut, ok := hide[id]; ok {
			body = hideFrom(r, body, cut)
		}
		var c api.Chain
		if link, ok := extra[strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1/accounts/"), "/chain")]; ok && json.Unmarshal(body, &c) == nil {
			l, err := chain.ParseLink(link)
			if err == nil && c.Head.Seq+1 == l.Seq() {
				c.Links = append(c.Links, link)
				c.Head = api.HeadOf(chain.Head{Seq: l.Seq(), Hash: l.Hash()})
				body, _ = json.Marshal(c)
			}
		}
	}
	testkit.Reply(w, resp, body)
}

// hideFrom rewrites a chain answer as a server hiding the links from
// seq cut on would: those links dropped and the head moved back to the
// last one it still shows (the one the query's after= and hash= name when
// it shows none).
func hideFrom(r *http.Request, body []byte, cut uint64) []byte {
	var c api.Chain
	if json.Unmarshal(body, &c) != nil {
		return body
	}
	kept := c.Links[:0]
	for _, b := range c.Links {
		l, err := chain.ParseLink(b)
		if err != nil || l.Seq() >= cut {
			break
		}
		kept = append(kept, b)
		c.Head = api.HeadOf(chain.Head{Seq: l.Seq(), Hash: l.Hash()})
	}
	if len(kept) == 0 {
		after, err := strconv.ParseUint(r.URL.Query().Get("after"), 10, 64)
		if err != nil {
			return body
		}
		c.Head = api.Head{Seq: after, Hash: r.URL.Query().Get("hash")}
	}
	c.Links = kept
	out, _ := json.Marshal(c)
	return out
}

// via returns h with its devices talking to p instead of the server.
func (h *harness) via(p *logProxy) *harness {
	c := *h
	c.server = p.url
	return &c
}

// logKeys runs `enigm-command log public-key` over h's data directory
// (creating the keystore and the log keys before serve does).
func logKeys(h *harness) []string {
	r := h.runBinary("enigm-command", []string{"ENIGM_COMMAND_PASSPHRASE=" + h.cmdPass}, "", "log", "public-key", "--data", h.data)
	if r.code != 0 {
		h.t.Fatalf("log public-key: %d %s", r.code, r.stderr)
	}
	return strings.Fields(r.stdout)
}

// refused runs d's command and requires exit code 1 and stderr matching
// every pattern; it returns the command's result.
func refused(t *testing.T, d *device, what string, patterns []string, args ...string) result {
	t.Helper()
	r := d.run("", args...)
	if r.code != 1 {
		t.Fatalf("%s: exit %d, want 1 (refused)\nstdout: %s\nstderr: %s", what, r.code, r.stdout, r.stderr)
	}
	for _, p := range patterns {
		if !regexp.MustCompile(p).MatchString(r.stderr) {
			t.Fatalf("%s: stderr does not say %q:\n%s", what, p, r.stderr)
		}
	}
	t.Logf("%s: refused:\n%s", what, r.stderr)
	return r
}

// TestTranslogAttackRollbackAndFork: a device that saw the log grow to n
// leaves refuses a server that serves an older checkpoint (a rollback),
// and one that shows it a forked log (a second, real enigm-command over
// its own database with the same log keys, so its checkpoints verify)
// while another device is shown the real log and keeps working. Both
// refused checkpoints are kept as evidence.
func TestTranslogAttackRollbackAndFork(t *testing.T) {
	forkData := ""
	h := startWith(t, func(h *harness) []string {
		logKeys(h)
		// The fork's data directory starts with the same keystore, so
		// the same log keys and origin.
		forkData = filepath.Join(h.tmp, "fork-data")
		testkit.NoErr(t, os.CopyFS(forkData, os.DirFS(h.data)))
		testkit.NoErr(t, filepath.WalkDir(forkData, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			mode := os.FileMode(0o600)
			if d.IsDir() {
				mode = 0o700
			}
			return os.Chmod(path, mode)
		}))
		return nil
	})
	// The second enigm-command, same flags, its own database.
	forkAddr := freePort(t)
	args := append([]string(nil), h.srv.Args[1:]...)
	for i := range args {
		switch args[i] {
		case "--listen":
			args[i+1] = forkAddr
		case "--data":
			args[i+1] = forkData
		}
	}
	fork := exec.Command(h.srv.Path, args...)
	forkLog := &testkit.Buffer{}
	fork.Env, fork.Stdout, fork.Stderr = h.srv.Env, forkLog, forkLog
	testkit.NoErr(t, fork.Start())
	t.Cleanup(func() { stopServer(fork) })
	waitHealthy(t, "http://"+forkAddr, forkLog)

	px, py := newLogProxy(t, h.server), newLogProxy(t, h.server)
	x, y := h.via(px).device("x"), h.via(py).device("y")
	xi := x.ok("", "init", "--account", "alice", "--name", "x", "--recovery-delay", "0s", "--json").json(t)
	y.ok("", "init", "--account", "bob", "--name", "y", "--recovery-delay", "0s")
	old := waitCheckpoint(t, h.server, 2)
	for _, name := range []string{"carol", "dave"} {
		h.device(name).ok("", "init", "--account", name, "--name", name, "--recovery-delay", "0s")
	}
	waitCheckpoint(t, h.server, 4)
	y.ok("", "devices", "--account", "alice")
	if st := y.ok("", "log", "status", "--json").json(t); st["size"].(float64) < 4 {
		t.Fatalf("y's checkpoint: %v", st)
	}

	// (a) A rollback to the checkpoint of 2 leaves.
	py.set(func(p *logProxy) { p.checkpoint = old })
	oldSize := strings.Split(string(old), "\n")[1]
	refused(t, y, "a rolled-back log", []string{`rolled the transparency log back: its checkpoint has ` + oldSize + ` leaves, this device verified [0-9]+`,
		`(?m)^hint: the server showed this device a history it cannot prove`}, "devices", "--account", "alice")
	x.ok("", "devices", "--account", "alice") // x, shown the real log, is unaffected

	// (b) A fork: the second server's log, signed by the same keys, has
	// other leaves; y is shown it, x is not.
	fh := *h
	fh.server = "http://" + forkAddr
	for _, name := range []string{"f1", "f2", "f3", "f4", "f5"} {
		fh.device(name).ok("", "init", "--account", name, "--name", name, "--recovery-delay", "0s")
	}
	waitCheckpoint(t, fh.server, 5)
	py.set(func(p *logProxy) { p.checkpoint = nil })
	py.setUpstream(t, fh.server)
	refused(t, y, "a forked log", []string{`forked the transparency log: the checkpoint of [0-9]+ leaves does not extend the one of [0-9]+ this device verified`},
		"devices", "--account", "alice")
	if got := x.ok("", "devices", "--account", str(xi, "account_id"), "--json").json(t)["devices"].([]any); len(got) != 1 {
		t.Fatalf("x's view of alice: %v", got)
	}
	st := y.ok("", "log", "status", "--json").json(t)
	if ev := st["refused"].([]any); len(ev) != 2 {
		t.Fatalf("y keeps %d refused checkpoints as evidence, want the rollback and the fork: %v", len(ev), ev)
	}
}

// waitCheckpoint waits (20 s at most) until the server's checkpoint has
// at least n leaves, and returns it.
func waitCheckpoint(t *testing.T, server string, n uint64) []byte {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, _, b := translogtest.Get(t, server+"/log/checkpoint")
		if code == 200 {
			lines := strings.SplitN(string(b), "\n", 3)
			var size uint64
			if len(lines) == 3 {
				json.Unmarshal([]byte(lines[1]), &size)
			}
			if size >= n {
				return b
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of %d leaves at %s within 20s", n, server)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitWitnessed waits (20 s at most) for a checkpoint of at least n
// leaves that carries the e2e witness's cosignature.
func waitWitnessed(t *testing.T, server string, n uint64) []byte {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		b := waitCheckpoint(t, server, n)
		if bytes.Contains(b, []byte("\n— witness.enigm.test/e2e ")) {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("no witnessed checkpoint within 20s:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// honestLifecycle sets up alice's A, enrolls B (both with the setup
// flags logArgs), and revokes B: B, syncing, sees its revocation. It
// returns A.
func honestLifecycle(t *testing.T, h *harness, logArgs ...string) *device {
	t.Helper()
	a, b := h.device("a"), h.device("b")
	a.ok("", append([]string{"init", "--account", "alice", "--name", "a", "--recovery-delay", "0s"}, logArgs...)...)
	en := b.ok("", append([]string{"enroll", "--account", "alice", "--name", "b", "--no-wait", "--json"}, logArgs...)...).json(t)
	a.ok("", "approve", str(en, "request_id"), "--code", str(en, "pairing_code"))
	if st := b.ok("", "sync", "--json").json(t); str(st, "state") != "active" {
		t.Fatalf("B after approval: %v", st)
	}
	a.ok("", "revoke", str(en, "device_id"), "--yes")
	if r := b.run("", "sync"); r.code != 3 || !strings.Contains(r.stderr, "no longer active") {
		t.Fatalf("revoked B syncs: %+v", r)
	}
	return a
}

// TestTranslogAttackUnloggedLink: the honest lifecycle works with the log
// on (enroll, approve, revoke; the revoked device destroys its keys), and
// a server that serves a valid chain link it never logged — an
// add_device signed by the account's own device, appended by the front to
// the chain answers but never given to the real server — is refused by a
// device meeting the account; the logged genesis before it is kept.
func TestTranslogAttackUnloggedLink(t *testing.T) {
	h := start(t)
	p := newLogProxy(t, h.server)
	hp := h.via(p)

	// The honest path, through the (honest) front.
	a := honestLifecycle(t, hp)

	// An account whose device keys the attacker holds: its genesis is
	// registered (and logged), its add_device is only served.
	dev, other := newRawDevice(t, "raw"), newRawDevice(t, "ghost")
	seed := make([]byte, hybrid.SeedSize)
	rand.Read(seed)
	rk, _ := hybrid.NewPrivateKey(seed)
	d, err := chain.NewGenesis(time.Now(), &chain.Genesis{Device: dev.rec, Recovery: rk.Public(), Policy: chain.DefaultPolicy()})
	testkit.NoErr(t, err)
	testkit.NoErr(t, d.Sign(chain.RoleSubject, dev.key))
	testkit.NoErr(t, d.Sign(chain.RoleNewRecovery, rk))
	g, err := d.Link()
	testkit.NoErr(t, err)
	cl, _ := client.New(h.server, nil)
	acct, err := cl.CreateAccount(t.Context(), "rawacct", g, "")
	testkit.NoErr(t, err)
	gs, err := chain.Apply(nil, g, time.Now())
	testkit.NoErr(t, err)
	var nonce [chain.NonceSize]byte
	rand.Read(nonce[:])
	ad, err := chain.NewDraft(gs, time.Now(), &chain.AddDevice{Device: other.rec, Nonce: nonce, PairingHash: chain.PairingHash(nonce, "code")})
	testkit.NoErr(t, err)
	testkit.NoErr(t, ad.SignDevice(dev.rec.ID, dev.key))
	testkit.NoErr(t, ad.Sign(chain.RoleSubject, other.key))
	hidden, err := ad.Link()
	testkit.NoErr(t, err)
	id := hex.EncodeToString(acct[:])
	p.set(func(p *logProxy) { p.extra = map[string][]byte{id: hidden.Bytes()} })

	v := hp.device("v")
	v.ok("", "init", "--account", "victor", "--name", "v", "--recovery-delay", "0s")
	refused(t, v, "a link that is not in the log", []string{`link 1 of account ` + id + ` was never logged`,
		`(?m)^hint: the server showed this device a history it cannot prove`}, "devices", "--account", id)
	// Honest again: the genesis was kept, the account has one device.
	p.set(func(p *logProxy) { p.extra = nil })
	if got := v.ok("", "devices", "--account", id, "--json").json(t)["devices"].([]any); len(got) != 1 {
		t.Fatalf("v's view of the account: %v", got)
	}
	// A, which waited for each of its links to be logged, holds a
	// checkpoint with alice's three links, its log trusted at first
	// contact.
	if st := a.ok("", "log", "status", "--json").json(t); st["size"].(float64) < 3 || st["pinned"] != false {
		t.Fatalf("a's log: %v", st)
	}
}

// TestTranslogAttackWitness: with a real witness process cosigning the
// checkpoints of a real enigm-command, devices whose policy requires that
// witness enroll, approve and revoke as usual; a new device refuses a
// front that strips the cosignatures or breaks one, naming the missing
// witness; and a device allowing checkpoints 3 s old refuses a front that
// keeps serving one witnessed checkpoint (the real log moved on).
func TestTranslogAttackWitness(t *testing.T) {
	h, policy := startWitnessed(t)
	p := newLogProxy(t, h.server)
	hp := h.via(p)

	// The honest path, every device requiring the witness.
	honestLifecycle(t, hp, "--log-policy", policy)

	// (d) Cosignatures stripped, then one broken.
	p.set(func(p *logProxy) { p.rewrite = stripWitnesses })
	c := hp.device("c")
	refused(t, c, "cosignatures stripped", []string{`has 0 of 1 required witness cosignatures \(quorum W\): missing W \(witness.enigm.test/e2e\)`,
		`(?m)^hint: the server's checkpoints lack the witness cosignatures this device requires`},
		"init", "--account", "carol", "--log-policy", policy)
	p.set(func(p *logProxy) { p.rewrite = breakWitness })
	refused(t, c, "a cosignature broken", []string{`cosignatures that do not verify: W \(witness.enigm.test/e2e\)`},
		"init", "--account", "carol", "--log-policy", policy)

	// An old witnessed checkpoint served while the log moves on.
	// (The log was idle: a new account makes a freshly witnessed
	// checkpoint for dora's device, which allows only 3 s.)
	p.set(func(p *logProxy) { p.rewrite = nil })
	h.device("e0").ok("", "init", "--account", "erin0", "--name", "e0", "--recovery-delay", "0s")
	dd := hp.device("d")
	dd.ok("", "init", "--account", "dora", "--name", "d", "--recovery-delay", "0s", "--log-policy", policy, "--log-max-age", "3s")
	frozen := waitWitnessed(t, h.server, 5)
	p.set(func(p *logProxy) { p.checkpoint = frozen })
	h.device("e").ok("", "init", "--account", "erin", "--name", "e", "--recovery-delay", "0s")
	time.Sleep(4 * time.Second)
	refused(t, dd, "an old witnessed checkpoint", []string{`the newest witnessed checkpoint \([0-9]+ leaves\) is [0-9]+s old, the device allows 3s`}, "devices")
	// The real, freshly witnessed checkpoint is accepted again.
	p.set(func(p *logProxy) { p.checkpoint = nil })
	h.device("f").ok("", "init", "--account", "fred", "--name", "f", "--recovery-delay", "0s")
	dd.ok("", "devices")
	st := dd.ok("", "log", "status", "--json").json(t)
	if ev := st["refused"].([]any); len(ev) == 0 {
		t.Fatalf("the stale checkpoint is not kept as evidence: %v", st)
	}
}

// startWitnessed starts enigm-command submitting every checkpoint to a
// real witness process (translogtest.StartWitness, named
// witness.enigm.test/e2e: skipped without it, failed under
// ENIGM_REQUIRE_ALL=1), and returns it with the path of a c2sp
// tlog-policy file that requires that witness (quorum 1), for devices'
// --log-policy.
func startWitnessed(t *testing.T) (*harness, string) {
	t.Helper()
	var wit *translogtest.RunningWitness
	h := startWith(t, func(h *harness) []string {
		keys := logKeys(h)
		origin, _, _ := strings.Cut(keys[0], "+")
		wit = translogtest.StartWitness(t, "witness.enigm.test/e2e", origin, keys[0])
		return []string{"--witness", wit.URL + "=" + wit.Keys[0]}
	})
	policy := filepath.Join(h.tmp, "witness.policy")
	testkit.NoErr(t, os.WriteFile(policy, []byte("# the e2e witness\nwitness W "+wit.Keys[0]+"\nquorum W\n"), 0o600))
	return h, policy
}

// stripWitnesses keeps the log's own signature lines only (those named
// by the checkpoint's origin).
func stripWitnesses(b []byte) []byte {
	origin, _, _ := bytes.Cut(b, []byte("\n"))
	var out []byte
	for _, line := range bytes.SplitAfter(b, []byte("\n")) {
		if bytes.HasPrefix(line, []byte("— ")) && !bytes.HasPrefix(line, append([]byte("— "), append(origin, ' ')...)) {
			continue
		}
		out = append(out, line...)
	}
	return out
}

// breakWitness flips a bit of the last byte of every witness signature.
func breakWitness(b []byte) []byte {
	origin, _, _ := bytes.Cut(b, []byte("\n"))
	var out []byte
	for _, line := range bytes.SplitAfter(b, []byte("\n")) {
		if f := strings.Fields(string(line)); len(f) == 3 && f[0] == "—" && f[1] != string(origin) {
			raw, err := base64.StdEncoding.DecodeString(f[2])
			if err == nil {
				raw[len(raw)-1] ^= 1
				line = []byte("— " + f[1] + " " + base64.StdEncoding.EncodeToString(raw) + "\n")
			}
		}
		out = append(out, line...)
	}
	return out
}

// TestTranslogAttackHiddenRevocation: a server that hides a revocation
// from a correspondent — its chain answers stop before the revoke link,
// every link it does show carrying a valid inclusion proof — is refused
// by the correspondent's device on the freshness proof: the log's map
// says the account's newest link is the revocation. Without the freshness
// check the correspondent would keep sealing message keys to the revoked
// device. Honest again, the correspondent sees the revocation.
func TestTranslogAttackHiddenRevocation(t *testing.T) {
	h := start(t)
	p := newLogProxy(t, h.server)
	hp := h.via(p)
	a, b := h.device("a"), h.device("b")
	a.ok("", "init", "--account", "alice", "--name", "a", "--recovery-delay", "0s")
	en := b.ok("", "enroll", "--account", "alice", "--name", "b", "--no-wait", "--json").json(t)
	a.ok("", "approve", str(en, "request_id"), "--code", str(en, "pairing_code"))
	if st := b.ok("", "sync", "--json").json(t); str(st, "state") != "active" {
		t.Fatalf("B after approval: %v", st)
	}
	acct := str(a.ok("", "status", "--json").json(t), "account_id")

	// The correspondent meets alice through the (honest) front: two
	// active devices.
	v := hp.device("v")
	v.ok("", "init", "--account", "victor", "--name", "v", "--recovery-delay", "0s")
	if got := activeDevices(t, v, acct); got != 2 {
		t.Fatalf("v's first view of alice: %d active devices, want 2", got)
	}
	// A revokes B (seq 2); the front hides it from v.
	a.ok("", "revoke", str(en, "device_id"), "--yes")
	p.set(func(p *logProxy) { p.hide = map[string]uint64{acct: 2} })
	refused(t, v, "a hidden revocation", []string{`the log says seq 2 \([0-9a-f]{64}\) is the newest`,
		`(?m)^hint: the server keeps showing an older head than its own log holds`}, "devices", "--account", acct)
	// Honest again: the revocation is seen.
	p.set(func(p *logProxy) { p.hide = nil })
	if got := activeDevices(t, v, acct); got != 1 {
		t.Fatalf("v's view of alice after the revocation: %d active devices, want 1", got)
	}
}

// activeDevices is how many of acct's devices d's `enigm devices` lists as
// active.
func activeDevices(t *testing.T, d *device, acct string) int {
	t.Helper()
	n := 0
	for _, x := range d.ok("", "devices", "--account", acct, "--json").json(t)["devices"].([]any) {
		if x.(map[string]any)["state"] == "active" {
			n++
		}
	}
	return n
}
