package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/translog"
	"github.com/enigm/enigm/translog/translogtest"
)

const testOrigin = "client.enigm.test/log"

type memLogStore struct{ s *LogState }

func (m *memLogStore) LogState() (*LogState, error) {
	if m.s == nil {
		return nil, nil
	}
	c := *m.s
	return &c, nil
}
func (m *memLogStore) SetLogState(s *LogState) error { c := *s; m.s = &c; return nil }

// logServer serves a log view that the test changes at will: honest
// growth, a rollback, a fork, other keys, lying proofs.
type logServer struct {
	mu       sync.Mutex
	signer   *translog.Signer // what /v1/info advertises
	sign     *translog.Signer // what signs the served checkpoint
	tree     *testonly.Tree
	lieRange bool              // answer a consistency proof for other sizes
	leafOf   map[uint64]uint64 // the leaf index served for a link seq (default seq)
	proofs   int               // inclusion proofs asked for
	cosign   func(signed []byte) []byte
}

func tree(leaves ...string) *testonly.Tree {
	t := testonly.New(rfc6962.DefaultHasher)
	for _, l := range leaves {
		t.AppendData([]byte(l))
	}
	return t
}

func (s *logServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := translog.Checkpoint{Origin: testOrigin, Size: s.tree.Size()}
	copy(c.Hash[:], s.tree.Hash())
	signed, err := s.sign.Sign(c)
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	if s.cosign != nil {
		signed = s.cosign(signed)
	}
	switch r.URL.Path {
	case "/v1/info":
		json.NewEncoder(w).Encode(api.Info{Version: 1, Log: &api.LogInfo{Origin: testOrigin, PublicKeys: s.signer.VerifierKeys()}})
	case "/log/checkpoint":
		w.Write(signed)
	case "/v1/log/consistency":
		from, _ := strconv.ParseUint(r.URL.Query().Get("from"), 10, 64)
		to, _ := strconv.ParseUint(r.URL.Query().Get("to"), 10, 64)
		if to > s.tree.Size() || from > to {
			w.WriteHeader(400)
			fmt.Fprint(w, `{"error":{"code":"bad_request","message":"bad sizes"}}`)
			return
		}
		if s.lieRange && from > 1 {
			from--
		}
		writeConsistency(w, s.tree, signed, from, to)
	default:
		var acct string
		var seq uint64
		if n, _ := fmt.Sscanf(r.URL.Path, "/v1/accounts/%64s", &acct); n == 1 {
			if _, err := fmt.Sscanf(r.URL.Path[len("/v1/accounts/")+len(acct):], "/links/%d/proof", &seq); err == nil {
				idx, ok := s.leafOf[seq]
				if !ok {
					idx = seq
				}
				size, _ := strconv.ParseUint(r.URL.Query().Get("size"), 10, 64)
				s.proofs++
				if idx >= size && idx < s.tree.Size() { // as Command: newer than the tree asked for
					w.WriteHeader(503)
					fmt.Fprint(w, `{"error":{"code":"unavailable","message":"not yet in the tree; try again in a second"}}`)
					return
				}
				if idx >= size || size > s.tree.Size() {
					w.WriteHeader(404)
					fmt.Fprint(w, `{"error":{"code":"not_found","message":"no such link"}}`)
					return
				}
				p, _ := s.tree.InclusionProof(idx, size)
				if p == nil {
					p = [][]byte{}
				}
				json.NewEncoder(w).Encode(api.InclusionProof{Checkpoint: string(signed), LeafIndex: idx, TreeSize: size, Proof: p})
				return
			}
		}
		http.NotFound(w, r)
	}
}

func (s *logServer) set(f func(s *logServer)) { s.mu.Lock(); f(s); s.mu.Unlock() }

// TestSyncLogHostile: a device accepts an honest server's growing log and
// refuses, with the error naming what is wrong, a server that rolls its
// log back, forks it (at the same or a larger size), signs with other
// keys or answers a consistency proof for other sizes; the stored
// checkpoint is unchanged by every refusal.
func TestSyncLogHostile(t *testing.T) {
	ctx := context.Background()
	honest := translogtest.NewSigner(t, testOrigin)
	ls := &logServer{signer: honest, sign: honest, tree: tree("a", "b", "c")}
	cl := serveLog(t, ls)
	st := &memLogStore{}
	sync := func() (translog.Checkpoint, error) { return cl.SyncLog(ctx, st, nil) }
	mustSize := func(want uint64) {
		t.Helper()
		if st.s == nil || st.s.Size != want {
			t.Fatalf("stored checkpoint %+v, want size %d", st.s, want)
		}
	}

	if c, err := sync(); err != nil || c.Size != 3 {
		t.Fatalf("first contact: %+v %v", c, err)
	}
	mustSize(3)
	if st.s.Origin != testOrigin || len(st.s.PublicKeys) != 2 {
		t.Fatalf("pinned %+v", st.s.LogPin)
	}
	ls.set(func(s *logServer) { s.tree.AppendData([]byte("d"), []byte("e")) })
	if c, err := sync(); err != nil || c.Size != 5 {
		t.Fatalf("honest growth: %+v %v", c, err)
	}
	mustSize(5)
	good := *st.s

	other := translogtest.NewSigner(t, testOrigin)
	refusals := []struct {
		desc string
		set  func(s *logServer)
		want error
	}{
		{"rollback to 4 leaves", func(s *logServer) { s.tree = tree("a", "b", "c", "d") }, ErrLogRollback},
		{"fork at the same size", func(s *logServer) { s.tree = tree("a", "b", "c", "d", "X") }, ErrLogFork},
		{"fork, larger", func(s *logServer) { s.tree = tree("a", "b", "X", "d", "e", "f", "g") }, ErrLogFork},
		{"other keys, advertised too", func(s *logServer) { s.tree = tree("a", "b", "c", "d", "e", "f"); s.sign, s.signer = other, other }, ErrLogKeys},
		{"a proof for other sizes", func(s *logServer) { s.tree = tree("a", "b", "c", "d", "e", "f"); s.lieRange = true }, ErrLogFork},
	}
	for _, r := range refusals {
		ls.set(func(s *logServer) { s.sign, s.signer, s.lieRange = honest, honest, false; r.set(s) })
		_, err := sync()
		t.Logf("%s: %v", r.desc, err)
		if !errors.Is(err, r.want) {
			t.Errorf("%s: %v, want %v", r.desc, err, r.want)
		}
		if st.s.Size != good.Size || string(st.s.Checkpoint) != string(good.Checkpoint) {
			t.Errorf("%s: the stored checkpoint changed to %d leaves", r.desc, st.s.Size)
		}
	}
	// A configured pin that differs from the pinned keys.
	ls.set(func(s *logServer) {
		s.sign, s.signer, s.lieRange = honest, honest, false
		s.tree = tree("a", "b", "c", "d", "e", "f")
	})
	if _, err := cl.SyncLog(ctx, st, &LogPin{Origin: testOrigin, PublicKeys: other.VerifierKeys()}); !errors.Is(err, ErrLogKeys) {
		t.Errorf("a configured pin other than the stored one: %v", err)
	}
	// Back to honest: accepted from the stored checkpoint.
	if c, err := sync(); err != nil || c.Size != 6 {
		t.Fatalf("honest again: %+v %v", c, err)
	}
	mustSize(6)

	// A device configured with the log's keys refuses a server that
	// advertises (and signs with) others from its first contact.
	ls.set(func(s *logServer) { s.sign, s.signer = other, other })
	if _, err := cl.SyncLog(ctx, &memLogStore{}, &LogPin{Origin: testOrigin, PublicKeys: honest.VerifierKeys()}); !errors.Is(err, ErrLogKeys) {
		t.Errorf("configured keys, server signing with others: %v", err)
	}
}

// TestVerifyInclusion: a link is accepted as logged only with a proof
// that verifies against the checkpoint the device stored; a server that
// points at another leaf, proves against another tree, or says the link
// was never logged is refused with ErrNotLogged.
func TestVerifyInclusion(t *testing.T) {
	ctx := context.Background()
	honest := translogtest.NewSigner(t, testOrigin)
	ls := &logServer{signer: honest, sign: honest, tree: tree("l0", "l1", "l2", "l3", "l4")}
	cl := serveLog(t, ls)
	st := &memLogStore{}
	var acct chain.AccountID
	if err := cl.VerifyInclusion(ctx, acct, 0, []byte("l0"), st); !errors.Is(err, ErrNotLogged) {
		t.Fatalf("no stored checkpoint: %v", err)
	}
	if _, err := cl.SyncLog(ctx, st, nil); err != nil {
		t.Fatal(err)
	}
	for seq := range uint64(5) {
		if err := cl.VerifyInclusion(ctx, acct, seq, []byte(fmt.Sprintf("l%d", seq)), st); err != nil {
			t.Fatalf("link %d: %v", seq, err)
		}
	}
	if err := cl.VerifyInclusion(ctx, acct, 2, []byte("forged"), st); !errors.Is(err, ErrNotLogged) {
		t.Errorf("a link that is not the leaf: %v", err)
	}
	ls.set(func(s *logServer) { s.leafOf = map[uint64]uint64{3: 1} })
	if err := cl.VerifyInclusion(ctx, acct, 3, []byte("l3"), st); !errors.Is(err, ErrNotLogged) {
		t.Errorf("a proof of another leaf: %v", err)
	}
	if err := cl.VerifyInclusion(ctx, acct, 9, []byte("l9"), st); !errors.Is(err, ErrNotLogged) {
		t.Errorf("a link never logged: %v", err)
	}
	// A server that forked after the device's checkpoint proves against
	// its own tree: the proof does not verify against the stored root.
	ls.set(func(s *logServer) { s.leafOf = nil; s.tree = tree("l0", "l1", "X2", "l3", "l4") })
	if err := cl.VerifyInclusion(ctx, acct, 2, []byte("X2"), st); !errors.Is(err, ErrNotLogged) {
		t.Errorf("a leaf of a forked tree: %v", err)
	}
}

// serveLog serves h (a test log server) for the test and returns a
// client of it.
func serveLog(t testing.TB, h http.Handler) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cl, err := New(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// writeConsistency answers a consistency request from..to with tree's
// proof and the checkpoint signed, as Command does.
func writeConsistency(w http.ResponseWriter, tree *testonly.Tree, signed []byte, from, to uint64) {
	p, err := tree.ConsistencyProof(from, to)
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	if p == nil {
		p = [][]byte{}
	}
	json.NewEncoder(w).Encode(api.ConsistencyProof{Checkpoint: string(signed), From: from, To: to, Proof: p})
}
