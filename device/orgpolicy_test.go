package device_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/command"
	"github.com/enigm/enigm/device"
	"github.com/enigm/enigm/internal/testkit"
)

// stripFront is a hostile front that, while on, removes one witness's
// cosignature lines from every checkpoint it passes on: /log/checkpoint
// and the checkpoint of freshness answers (a view the witness never saw,
// kept consistent towards the device).
type stripFront struct {
	on      atomic.Bool
	witness string // the witness's key name
	proxy   *httputil.ReverseProxy
	backend *url.URL
}

func (f *stripFront) strip(note []byte) []byte {
	var out []byte
	for _, l := range bytes.SplitAfter(note, []byte("\n")) {
		if !bytes.HasPrefix(l, []byte("— "+f.witness+" ")) {
			out = append(out, l...)
		}
	}
	return out
}

func (f *stripFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fresh := strings.HasSuffix(r.URL.Path, "/freshness")
	if !f.on.Load() || r.Method != "GET" || (r.URL.Path != "/log/checkpoint" && !fresh) {
		f.proxy.ServeHTTP(w, r)
		return
	}
	resp, b, ok := testkit.Forward(w, r, f.backend)
	if !ok {
		return
	}
	if resp.StatusCode == http.StatusOK {
		if fresh {
			var a api.Freshness
			if err := json.Unmarshal(b, &a); err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			a.Checkpoint = string(f.strip([]byte(a.Checkpoint)))
			b, _ = json.Marshal(a)
			w.Header().Set("Content-Type", "application/json")
		} else {
			b = f.strip(b)
		}
	}
	w.WriteHeader(resp.StatusCode)
	w.Write(b)
}

// TestOrgWitnessPolicy: an organisation requires a witness of its
// accounts' devices in the account's chain (transparency-dev's witness as
// its own process, to which Command submits every checkpoint); the device
// has no witness policy of its own. Played against a front that strips
// the witness's cosignatures towards that device (the other device of the
// account and the admin talk to Command directly):
//
//   - the device refuses new links under the stripped checkpoints, naming
//     the organisation's policy and the missing witness; a correspondent
//     without a policy of its own accepts them (the policy binds the
//     account's own devices);
//   - Command, which holds the organisation key, removes the policy with
//     a genuine set_policy: the device refuses that link too, since it is
//     only in checkpoints the policy it removes has not witnessed, and
//     accepts it once the witness's cosignatures are back; from then on it
//     accepts stripped checkpoints;
//   - the organisation sets the policy again: the set_policy link is
//     accepted (under the policy before it, none), the links after it wait
//     for a checkpoint that meets it.
func TestOrgWitnessPolicy(t *testing.T) {
	ctx := context.Background()
	w, rw := realWitnessWorld(t, "witness.enigm.test/org")
	backend := w.url
	u, _ := url.Parse(backend)
	front := &stripFront{witness: "witness.enigm.test/org", proxy: httputil.NewSingleHostReverseProxy(u), backend: u}
	w.front(t, front)

	policy := "witness W " + rw.Keys[0] + "\nquorum W\n"
	org := testkit.Must(command.CreateOrg(ctx, w.cfg, command.OrgSpec{Name: "acme", Policy: command.Policy{RecoveryDelaySeconds: 3600, WitnessPolicy: policy}}))
	inv := testkit.Must(command.CreateInvite(ctx, w.cfg, "acme", "alice", 0))
	agent := func(name, server string) *device.Agent {
		o := w.softOptions(t.TempDir()+"/"+name, "pw "+name)
		o.Server, o.LogWait = server, 2*time.Second
		return w.open(o)
	}
	a, b := agent("a", w.url), agent("b", backend)
	res := testkit.Must(a.Init(ctx, device.InitOptions{Account: "alice", Invite: inv.Code, Org: org.ID}))
	acct := res.Account
	if st := testkit.Must(a.Sync(ctx, acct)); st.Policy().WitnessPolicy != policy {
		t.Fatalf("the genesis policy: %+v", st.Policy())
	}
	enroll(t, ctx, a, b, "alice")
	setPolicy := func(body string) {
		t.Helper()
		code, err := httpPostJSON(backend+"/v1/admin/accounts/"+hex.EncodeToString(acct[:])+"/policy", org.AdminToken, body)
		if err != nil || code != http.StatusCreated {
			t.Fatalf("set-policy %s: %d %v", body, code, err)
		}
	}
	head := func(ag *device.Agent) uint64 {
		t.Helper()
		st := testkit.Must(ag.Sync(ctx, acct))
		return st.Head().Seq
	}
	const orgRefusal = "required witness cosignatures of the witness policy the account's organisation set in its chain (quorum W): missing W (witness.enigm.test/org)"
	// refused syncs a under the stripped view: refused, naming the
	// organisation's policy, with the links up to stored accepted.
	refused := func(what string, stored uint64) {
		t.Helper()
		time.Sleep(1100 * time.Millisecond) // logReuse: a asks for the checkpoint again
		_, err := a.Sync(ctx, acct)
		if !errors.Is(err, client.ErrWitness) || !strings.Contains(err.Error(), orgRefusal) {
			t.Fatalf("%s: %v, want ErrWitness naming the organisation's policy and W", what, err)
		}
		t.Logf("%s: refused: %v", what, err)
		if si := testkit.Must(a.Status(ctx, false)); si.Head.Seq != stored {
			t.Fatalf("%s: the device stored the links up to %d, want %d", what, si.Head.Seq, stored)
		}
	}
	// Stripped: b's rotation (seq 2) waits; a correspondent accepts it.
	carol := agent("carol", w.url)
	testkit.Must(carol.Init(ctx, device.InitOptions{Account: "carol", DeviceName: "c"}))
	if h := head(a); h != 1 {
		t.Fatalf("after the enrollment: head %d, want 1", h)
	}
	front.on.Store(true)
	rotate(t, ctx, b)
	refused("b's rotation under stripped checkpoints", 1)
	if h := head(carol); h != 2 {
		t.Fatalf("the correspondent's head %d, want 2", h)
	}

	// Command removes the policy; the stripped view does not carry it.
	setPolicy(`{"witness_policy": ""}`)
	refused("the policy's removal under stripped checkpoints", 1)
	front.on.Store(false)
	st := testkit.Must(a.Sync(ctx, acct))
	if st.Head().Seq != 3 || st.Policy().WitnessPolicy != "" {
		t.Fatalf("honest again: head %v, policy %+v", st.Head(), st.Policy())
	}
	front.on.Store(true)
	rotate(t, ctx, b)
	time.Sleep(1100 * time.Millisecond)
	if h := head(a); h != 4 {
		t.Fatalf("without the policy, under stripped checkpoints: head %d, want 4", h)
	}

	// The organisation sets it again: the links after it wait for it.
	setPolicy(`{"witness_policy": ` + string(testkit.Must(json.Marshal(policy))) + `, "witness_max_age_seconds": 1800}`)
	rotate(t, ctx, b)
	refused("the link after the policy set again, under stripped checkpoints", 5)
	front.on.Store(false)
	st = testkit.Must(a.Sync(ctx, acct))
	if st.Head().Seq != 6 || st.Policy().WitnessPolicy != policy || st.Policy().WitnessMaxAge != 30*time.Minute {
		t.Fatalf("honest again: head %v, policy %+v", st.Head(), st.Policy())
	}

	// A new device meeting the account (to join it) is held to the
	// policy from its first contact: the genesis carries it, so the links
	// after it wait for a checkpoint that meets it.
	front.on.Store(true)
	d := agent("d", w.url)
	_, err := d.Enroll(ctx, device.EnrollOptions{Account: "alice", DeviceName: "d"})
	if !errors.Is(err, client.ErrWitness) || !strings.Contains(err.Error(), orgRefusal) {
		t.Fatalf("joining under stripped checkpoints: %v, want ErrWitness naming the organisation's policy", err)
	}
	t.Logf("joining: refused: %v", err)
	front.on.Store(false)
	r := testkit.Must(d.Enroll(ctx, device.EnrollOptions{Account: "alice", DeviceName: "d"}))
	if r.RequestID == "" {
		t.Fatal("no enrollment request")
	}
}

// TestOrgWitnessPolicyWithoutLog: a device whose account's organisation
// requires witnesses follows the log even when its server publishes none
// and it pinned none, so it syncs nothing from that server (the policy
// cannot be met) rather than accept links no witness saw.
func TestOrgWitnessPolicyWithoutLog(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	policy := "witness W witness1.example+111a825d+BDnDsV597eY0/bbja9tOiBsT5rsFFIVvaXTrOEYcJ8/o\nquorum W\n"
	org := testkit.Must(command.CreateOrg(ctx, w.cfg, command.OrgSpec{Name: "acme", Policy: command.Policy{RecoveryDelaySeconds: 3600, WitnessPolicy: policy}}))
	inv := testkit.Must(command.CreateInvite(ctx, w.cfg, "acme", "alice", 0))
	a := w.agent("a")
	res := testkit.Must(a.Init(ctx, device.InitOptions{Account: "alice", Invite: inv.Code, Org: org.ID}))
	_, err := a.Sync(ctx, res.Account)
	if !errors.Is(err, client.ErrLogKeys) || !strings.Contains(err.Error(), "publishes no transparency log") {
		t.Fatalf("a server without a log, an account requiring a witness: %v", err)
	}
	t.Logf("refused: %v", err)
}
