package command

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/translog"
)

// waitCheckpoint waits until the served checkpoint covers links links
// (its other leaves being map leaves, one after each integration's links,
// the last one last) and returns it verified as origin under keys.
func waitCheckpoint(e *env, origin string, keys []string, links int) translog.Checkpoint {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := e.do("GET", "/log/checkpoint", "", nil)
		if r.code == 200 {
			if c, err := translog.VerifyCheckpoint(r.body, origin, keys); err == nil && c.Size > 0 {
				leaves, err := e.srv.tlog.ls.Leaves(context.Background(), 0, c.Size)
				if err != nil {
					e.t.Fatal(err)
				}
				if countLinks(leaves) == links {
					if !translog.IsMapLeaf(leaves[c.Size-1]) {
						e.t.Fatalf("the checkpoint of %d leaves does not end in a map leaf", c.Size)
					}
					if err := translog.CheckMapLeaves(leaves); err != nil {
						e.t.Fatal(err)
					}
					return c
				}
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("no checkpoint of %d links within 10s: %d %s", links, r.code, r.body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// countLinks counts the leaves that are not map leaves.
func countLinks(leaves [][]byte) int {
	n := 0
	for _, l := range leaves {
		if !translog.IsMapLeaf(l) {
			n++
		}
	}
	return n
}

func infoLogKeys(e *env) []string {
	var info api.Info
	e.want(e.do("GET", "/v1/info", "", nil), 200, "").decode(e.t, &info)
	if info.Log == nil {
		e.t.Fatal("GET /v1/info has no log")
	}
	return info.Log.PublicKeys
}

// TestLogProofsAPI: every link's inclusion proof from GET
// /v1/accounts/{id}/links/{seq}/proof verifies with transparency-dev's
// proof package against the checkpoint the answer carries, which verifies
// under the advertised keys; the consistency proof between an earlier and
// the newest checkpoint verifies; a proof for another leaf, a tampered
// proof or a rolled-back root does not; bad requests are refused clearly.
func TestLogProofsAPI(t *testing.T) {
	e := newEnv(t, withLog(t))
	keys := infoLogKeys(e)
	a1 := newDev("proof/a1")
	a := e.newAccount("proof-alice", a1, chain.Policy{})
	first := waitCheckpoint(e, testLogOrigin, keys, 1)
	e.newAccount("proof-bob", newDev("proof/b1"), chain.Policy{})
	a2 := newDev("proof/a2")
	a.add(a2, a1)
	e.want(a.post(a1, a.revokeLink(a1, a2)), 201, "")
	newest := waitCheckpoint(e, testLogOrigin, keys, 4)

	links, err := e.srv.store.Links(context.Background(), a.id, -1, 0)
	if err != nil || len(links) != 3 {
		t.Fatalf("alice's links: %d %v", len(links), err)
	}
	h := rfc6962.DefaultHasher
	for seq, l := range links {
		var p api.InclusionProof
		e.want(e.do("GET", fmt.Sprintf("/v1/accounts/%s/links/%d/proof", a.id, seq), "", nil), 200, "").decode(t, &p)
		if err := p.Validate(); err != nil {
			t.Fatal(err)
		}
		c, err := translog.VerifyCheckpoint([]byte(p.Checkpoint), testLogOrigin, keys)
		if err != nil || c != newest || p.TreeSize != c.Size {
			t.Fatalf("link %d: the answer's checkpoint %+v (%v), want %+v", seq, c, err, newest)
		}
		if err := proof.VerifyInclusion(h, p.LeafIndex, p.TreeSize, h.HashLeaf(l.Data), p.Proof, c.Hash[:]); err != nil {
			t.Fatalf("link %d (leaf %d): %v", seq, p.LeafIndex, err)
		}
		// The same proof does not place another link there.
		other := links[(seq+1)%len(links)].Data
		if proof.VerifyInclusion(h, p.LeafIndex, p.TreeSize, h.HashLeaf(other), p.Proof, c.Hash[:]) == nil {
			t.Fatalf("link %d's proof verifies another link", seq)
		}
		if len(p.Proof) > 0 {
			p.Proof[0][0] ^= 1
			if proof.VerifyInclusion(h, p.LeafIndex, p.TreeSize, h.HashLeaf(l.Data), p.Proof, c.Hash[:]) == nil {
				t.Fatalf("link %d: a tampered proof verifies", seq)
			}
		}
	}
	// Against an older tree, on request: alice's genesis in the first
	// checkpoint (the genesis and its map leaf).
	var old api.InclusionProof
	e.want(e.do("GET", fmt.Sprintf("/v1/accounts/%s/links/0/proof?size=%d", a.id, first.Size), "", nil), 200, "").decode(t, &old)
	if old.TreeSize != first.Size || proof.VerifyInclusion(h, old.LeafIndex, first.Size, h.HashLeaf(links[0].Data), old.Proof, first.Hash[:]) != nil {
		t.Fatalf("inclusion in the first checkpoint: %+v", old)
	}

	var cp api.ConsistencyProof
	e.want(e.do("GET", fmt.Sprintf("/v1/log/consistency?from=%d", first.Size), "", nil), 200, "").decode(t, &cp)
	if err := cp.Validate(); err != nil {
		t.Fatal(err)
	}
	if c, err := translog.VerifyCheckpoint([]byte(cp.Checkpoint), testLogOrigin, keys); err != nil || c != newest || cp.From != first.Size || cp.To != newest.Size {
		t.Fatalf("consistency answer: %+v %v", cp, err)
	}
	if err := proof.VerifyConsistency(h, first.Size, newest.Size, cp.Proof, first.Hash[:], newest.Hash[:]); err != nil {
		t.Fatalf("consistency %d → %d: %v", first.Size, newest.Size, err)
	}
	// A forked or rolled-back earlier root does not verify.
	forged := first.Hash
	forged[0] ^= 1
	if proof.VerifyConsistency(h, first.Size, newest.Size, cp.Proof, forged[:], newest.Hash[:]) == nil {
		t.Fatal("the consistency proof verifies another first root")
	}
	e.want(e.do("GET", "/v1/log/consistency?from=2&to=3", "", nil), 200, "").decode(t, &cp)
	if cp.From != 2 || cp.To != 3 || len(cp.Proof) == 0 {
		t.Fatalf("consistency 2 → 3: %+v", cp)
	}
	e.want(e.do("GET", fmt.Sprintf("/v1/log/consistency?from=%d", newest.Size), "", nil), 200, "").decode(t, &cp)
	if len(cp.Proof) != 0 {
		t.Fatalf("consistency %d → %d has %d hashes", newest.Size, newest.Size, len(cp.Proof))
	}

	beyond := newest.Size + 1
	for _, c := range []struct{ path, code string }{
		{fmt.Sprintf("/v1/accounts/%s/links/3/proof", a.id), "not_found"},
		{fmt.Sprintf("/v1/accounts/%s/links/0/proof?size=%d", a.id, beyond), "bad_request"},
		{fmt.Sprintf("/v1/accounts/%s/links/x/proof", a.id), "bad_request"},
		{"/v1/accounts/zz/links/0/proof", "bad_request"},
		{"/v1/log/consistency", "bad_request"},
		{"/v1/log/consistency?from=3&to=2", "bad_request"},
		{fmt.Sprintf("/v1/log/consistency?from=%d", beyond), "bad_request"},
		{"/v1/log/consistency?from=-1", "bad_request"},
	} {
		r := e.do("GET", c.path, "", nil)
		if r.errCode() != c.code {
			t.Errorf("GET %s: %d %s, want %s", c.path, r.code, r.body, c.code)
		}
	}
	// The revocation is leaf idx, but not in the tree of idx leaves: not yet.
	idx, err := e.srv.tlog.ls.LeafIndex(context.Background(), a.id, 2)
	if err != nil {
		t.Fatal(err)
	}
	r := e.do("GET", fmt.Sprintf("/v1/accounts/%s/links/2/proof?size=%d", a.id, idx), "", nil)
	if r.code != 503 || r.errCode() != "unavailable" {
		t.Errorf("a link beyond the requested tree: %d %s", r.code, r.body)
	}
}

type memLogStore struct{ s *client.LogState }

func (m *memLogStore) LogState() (*client.LogState, error)  { return m.s, nil }
func (m *memLogStore) SetLogState(s *client.LogState) error { m.s = s; return nil }

// TestLogProofsClient: the device client, against a running Command,
// verifies the log's checkpoint and the inclusion of every link of an
// account, and refuses a link that is not the logged one.
func TestLogProofsClient(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, withLog(t))
	a1 := newDev("pc/a1")
	a := e.newAccount("pc-alice", a1, chain.Policy{})
	a.add(newDev("pc/a2"), a1)
	want := waitCheckpoint(e, testLogOrigin, infoLogKeys(e), 2)
	cl := serveClient(t, e)
	st := &memLogStore{}
	if c, err := cl.SyncLog(ctx, st, nil); err != nil || c.Size != want.Size {
		t.Fatalf("SyncLog: %+v %v", c, err)
	}
	var acct chain.AccountID
	if b, err := hex.DecodeString(a.id); err != nil || len(b) != len(acct) {
		t.Fatalf("account id %q", a.id)
	} else {
		copy(acct[:], b)
	}
	links, err := e.srv.store.Links(ctx, a.id, -1, 0)
	if err != nil || len(links) != 2 {
		t.Fatalf("links: %d %v", len(links), err)
	}
	for seq, l := range links {
		if err := cl.VerifyInclusion(ctx, acct, uint64(seq), l.Data, st); err != nil {
			t.Fatalf("link %d: %v", seq, err)
		}
	}
	if err := cl.VerifyInclusion(ctx, acct, 1, links[0].Data, st); !errors.Is(err, client.ErrNotLogged) {
		t.Fatalf("link 0's bytes as link 1: %v", err)
	}
}

// TestLogProofsNoLog: without a log the proof endpoints answer 404 with
// a message saying so.
func TestLogProofsNoLog(t *testing.T) {
	e := newEnv(t)
	a := e.newAccount("nolog-alice", newDev("nolog/a1"), chain.Policy{})
	for _, p := range []string{"/v1/accounts/" + a.id + "/links/0/proof", "/v1/log/consistency?from=0"} {
		e.want(e.do("GET", p, "", nil), 404, "not_found")
	}
}

// TestLogFreshnessAPI: against a running Command, the device client
// verifies its account's freshness proof (GET
// /v1/accounts/{id}/freshness) against the checkpoint it synced; once a
// revocation is accepted and integrated, a device still holding the head
// before it is told ErrStaleHead, naming both sequence numbers; the head
// after it verifies; an unknown account proves absent
// (ErrHeadNotLogged); without a log the endpoint answers 404.
func TestLogFreshnessAPI(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, withLog(t))
	a1, a2 := newDev("fr/a1"), newDev("fr/a2")
	a := e.newAccount("fr-alice", a1, chain.Policy{})
	a.add(a2, a1)
	waitCheckpoint(e, testLogOrigin, infoLogKeys(e), 2)
	cl := serveClient(t, e)
	st := &memLogStore{}
	if _, err := cl.SyncLog(ctx, st, nil); err != nil {
		t.Fatal(err)
	}
	var acct chain.AccountID
	b, _ := hex.DecodeString(a.id)
	copy(acct[:], b)
	held := a.st.Head()
	if _, err := cl.VerifyFreshness(ctx, acct, held, st); err != nil {
		t.Fatalf("the honest head: %v", err)
	}

	e.want(a.post(a1, a.revokeLink(a1, a2)), 201, "")
	waitCheckpoint(e, testLogOrigin, infoLogKeys(e), 3)
	a.sync()
	if a.st.Head().Seq != 2 {
		t.Fatalf("alice's head after the revocation: %d", a.st.Head().Seq)
	}
	_, err := cl.VerifyFreshness(ctx, acct, held, st)
	if !errors.Is(err, client.ErrStaleHead) || !strings.Contains(err.Error(), "showed head seq 1") || !strings.Contains(err.Error(), "seq 2") {
		t.Fatalf("the head before the revocation: %v, want ErrStaleHead naming seq 1 and 2", err)
	}
	if _, err := cl.VerifyFreshness(ctx, acct, a.st.Head(), st); err != nil {
		t.Fatalf("the head after the revocation: %v", err)
	}
	var f api.Freshness
	e.want(e.do("GET", "/v1/accounts/"+a.id+"/freshness", "", nil), 200, "").decode(t, &f)
	if err := f.Validate(); err != nil || f.MapIndex != f.TreeSize-1 || f.Head == nil || f.Head.Seq != 2 {
		t.Fatalf("the answer: %+v %v", f, err)
	}
	var nobody chain.AccountID
	nobody[0] = 7
	if _, err := cl.VerifyFreshness(ctx, nobody, chain.Head{}, st); !errors.Is(err, client.ErrHeadNotLogged) {
		t.Fatalf("an unknown account: %v, want ErrHeadNotLogged (proven absent)", err)
	}
	e.want(e.do("GET", "/v1/accounts/zz/freshness", "", nil), 400, "bad_request")

	off := newEnv(t)
	off.want(off.do("GET", "/v1/accounts/"+a.id+"/freshness", "", nil), 404, "not_found")
}

// serveClient serves e's Command for the test and returns a client of it.
func serveClient(t *testing.T, e *env) *client.Client {
	t.Helper()
	srv := httptest.NewServer(e.srv.Handler())
	t.Cleanup(srv.Close)
	cl, err := client.New(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}
