package command

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/command/store"
	"github.com/enigm/enigm/translog"
	"github.com/enigm/enigm/translog/translogtest"
)

const testLogOrigin = "command.enigm.test/log"

// TestLogWitnessed: Command submits its checkpoints to a real witness
// process (transparency-dev's omniwitness over SQLite) and serves the
// witness's cosignature with the checkpoint.
func TestLogWitnessed(t *testing.T) {
	cfgLog := withLog(t)
	probe := &Config{}
	cfgLog(probe)
	signer := probe.LogSigner
	rw := translogtest.StartWitness(t, "witness.enigm.test/cmd", testLogOrigin, signer.VerifierKeys()[0])
	w, err := translog.NewWitness(rw.URL, rw.Keys[1], nil)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, cfgLog, func(c *Config) { c.LogWitnesses = []*translog.Witness{w} })
	e.newAccount("wit-alice", newDev("wit/a1"), chain.Policy{})
	srv := httptest.NewServer(e.srv.Handler())
	defer srv.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, _, cp := getURL(t, srv.URL+"/log/checkpoint")
		c, err := translog.VerifyCheckpoint(cp, testLogOrigin, signer.VerifierKeys())
		if err == nil && c.Size == 2 && strings.Contains(string(cp), "\n— witness.enigm.test/cmd ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no cosigned checkpoint of size 2 (the genesis and its map leaf) within 20s; last:\n%s\nwitness:\n%s\nserver:\n%s", cp, rw.Output(), e.logText())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func withLog(t testing.TB) func(*Config) {
	s := translogtest.NewSigner(t, testLogOrigin)
	return func(c *Config) { c.LogSigner, c.LogInterval = s, 20*time.Millisecond }
}

// TestLogPublished: with a log signer, every link Command accepts (two
// accounts' genesis, an enrollment, a revocation) is a leaf, in order; a
// checkpoint covering them is published under /log/ shortly after,
// verifiable with the keys GET /v1/info advertises (golang.org/x/mod's
// verifier for Ed25519); each link's inclusion proof verifies; and
// Tessera's fsck passes against the running server's /log/.
func TestLogPublished(t *testing.T) {
	e := newEnv(t, withLog(t))
	a1, b1 := newDev("log/a1"), newDev("log/b1")
	a := e.newAccount("log-alice", a1, chain.Policy{})
	e.newAccount("log-bob", b1, chain.Policy{})
	a2 := newDev("log/a2")
	a.add(a2, a1)
	e.want(a.post(a1, a.revokeLink(a1, a2)), 201, "")

	info := e.want(e.do("GET", "/v1/info", "", nil), 200, "")
	lg, _ := info.m["log"].(map[string]any)
	keys, _ := lg["public_keys"].([]any)
	if lg["origin"] != testLogOrigin || len(keys) != 2 {
		t.Fatalf("GET /v1/info log: %v", info.m["log"])
	}
	edKey, _ := keys[0].(string)
	v, err := note.NewVerifier(edKey)
	if err != nil {
		t.Fatalf("the advertised Ed25519 key %q: %v", edKey, err)
	}

	ls, err := store.LogStorage(e.srv.store)
	if err != nil {
		t.Fatal(err)
	}
	var links [][]byte
	all, _ := e.srv.store.Links(context.Background(), a.id, -1, 0)
	for _, l := range all {
		links = append(links, l.Data)
	}
	const want = 4 // alice: genesis, add a2, revoke a2; bob: genesis
	srv := httptest.NewServer(e.srv.Handler())
	defer srv.Close()
	pub := []string{edKey, keys[1].(string)}
	c := waitCheckpoint(e, testLogOrigin, pub, want)
	_, _, cp := getURL(t, srv.URL+"/log/checkpoint")
	if n, err := note.Open(cp, note.VerifierList(v)); err != nil || n.Text != string(c.Text()) {
		t.Fatalf("x/mod's note verifier on the served checkpoint: %v", err)
	}
	tl := e.srv.tlog.log
	for seq, data := range links {
		idx, err := ls.LeafIndex(context.Background(), a.id, uint64(seq))
		if err != nil {
			t.Fatal(err)
		}
		p, err := tl.InclusionProof(context.Background(), idx, c.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, idx, c.Size, rfc6962.DefaultHasher.HashLeaf(data), p, c.Hash[:]); err != nil {
			t.Fatalf("alice's link %d (leaf %d) is not in the checkpoint: %v", seq, idx, err)
		}
	}
	idx, _ := ls.LeafIndex(context.Background(), a.id, 2)
	before, err := ls.Leaves(context.Background(), 0, idx)
	if err != nil || countLinks(before) != 3 {
		t.Fatalf("alice's revocation is leaf %d, after %d links; want it after both genesis links and the enrollment", idx, countLinks(before))
	}

	r := translogtest.Fsck(t, srv.URL+"/log/", testLogOrigin, edKey)
	if !r.OK || r.Size != c.Size {
		t.Fatalf("fsck against Command's /log/:\n%s", r.Output)
	}
}

// TestLogOff: without a signer /log/ is not served and /v1/info has no
// log, but links are still sequenced as leaves (so turning the log on
// later publishes them).
func TestLogOff(t *testing.T) {
	e := newEnv(t)
	a := e.newAccount("nolog", newDev("nolog/a"), chain.Policy{})
	if _, ok := e.want(e.do("GET", "/v1/info", "", nil), 200, "").m["log"]; ok {
		t.Fatal("/v1/info advertises a log without a signer")
	}
	e.want(e.do("GET", "/log/checkpoint", "", nil), 404, "not_found")
	ls, _ := store.LogStorage(e.srv.store)
	if idx, err := ls.LeafIndex(context.Background(), a.id, 0); err != nil || idx != 0 {
		t.Fatalf("the genesis link is not leaf 0: %d, %v", idx, err)
	}
}

var getURL = translogtest.Get
