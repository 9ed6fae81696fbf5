package client

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/translog"
	"github.com/enigm/enigm/translog/smap"
	"github.com/enigm/enigm/translog/translogtest"
)

// freshServer serves a log of real chain links with a map leaf after
// every batch, as Command does, and the freshness proofs of its newest
// checkpoint, which the test can replace with a lie.
type freshServer struct {
	mu     sync.Mutex
	t      *testing.T
	signer *translog.Signer
	tree   *testonly.Tree
	leaves [][]byte
	maps   translog.MapChecker
	lie    func(f *api.Freshness) // changes the answer when set
	cosign func([]byte) []byte    // adds witness cosignatures to the checkpoint when set
}

func newFreshServer(t *testing.T) *freshServer {
	return &freshServer{t: t, signer: translogtest.NewSigner(t, testOrigin), tree: testonly.New(rfc6962.DefaultHasher)}
}

// add appends link leaves and then the map leaf of all leaves so far.
func (s *freshServer) add(links ...*chain.Link) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range links {
		s.append(l.Bytes())
	}
	s.append(translog.MapLeaf(s.tree.Size(), s.maps.Map().Root()))
}

func (s *freshServer) append(leaf []byte) {
	if _, err := s.maps.Add(leaf); err != nil {
		s.t.Fatal(err)
	}
	s.leaves = append(s.leaves, leaf)
	s.tree.AppendData(leaf)
}

func (s *freshServer) checkpoint() []byte {
	c := translog.Checkpoint{Origin: testOrigin, Size: s.tree.Size()}
	copy(c.Hash[:], s.tree.Hash())
	signed, err := s.signer.Sign(c)
	if err != nil {
		s.t.Fatal(err)
	}
	if s.cosign != nil {
		signed = s.cosign(signed)
	}
	return signed
}

// freshness is the honest answer for acct at the tree of size leaves
// (whose last leaf must be a map leaf).
func (s *freshServer) freshness(acct chain.AccountID, size uint64) api.Freshness {
	var m translog.MapChecker
	for _, l := range s.leaves[:size-1] {
		m.Add(l)
	}
	tr := m.Map()
	incl, _ := s.tree.InclusionProof(size-1, s.tree.Size())
	root := tr.Root()
	f := api.Freshness{Checkpoint: string(s.checkpoint()), TreeSize: s.tree.Size(), MapIndex: size - 1,
		MapRoot: root[:], Inclusion: incl, MapProof: tr.Prove(smap.Key(acct)).Bytes()}
	if f.Inclusion == nil {
		f.Inclusion = [][]byte{}
	}
	if v, ok := tr.Get(smap.Key(acct)); ok {
		f.Head = &api.Head{Seq: v.Seq, Hash: chain.Hash(v.Head).String()}
	}
	return f
}

func (s *freshServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case r.URL.Path == "/log/checkpoint":
		w.Write(s.checkpoint())
	case r.URL.Path == "/v1/log/consistency":
		from, _ := strconv.ParseUint(r.URL.Query().Get("from"), 10, 64)
		to, _ := strconv.ParseUint(r.URL.Query().Get("to"), 10, 64)
		writeConsistency(w, s.tree, s.checkpoint(), from, to)
	case strings.HasPrefix(r.URL.Path, "/v1/accounts/") && strings.HasSuffix(r.URL.Path, "/freshness"):
		var acct chain.AccountID
		hex.Decode(acct[:], []byte(strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1/accounts/"), "/freshness")))
		f := s.freshness(acct, s.tree.Size())
		if s.lie != nil {
			s.lie(&f)
		}
		json.NewEncoder(w).Encode(f)
	default:
		http.NotFound(w, r)
	}
}

func headOf(l *chain.Link) chain.Head { return chain.Head{Seq: l.Seq(), Hash: l.Hash()} }

// TestVerifyFreshness plays a server against a device that holds an
// account's head. The honest log proves the head; a server that showed
// the device an old head (hiding a newer link, here the link after it)
// is caught with ErrStaleHead naming both sequence numbers; forged map
// proofs, an older map leaf passed as the newest, a proof for another
// tree, another link at the head's seq and a checkpoint under other keys
// are refused; a head not yet logged is ErrHeadNotLogged; a newer
// consistent checkpoint is accepted and stored.
func TestVerifyFreshness(t *testing.T) {
	ctx := context.Background()
	a, b := translogtest.NewChain(t, "fresh-a"), translogtest.NewChain(t, "fresh-b")
	a.Next(t)
	fs := newFreshServer(t)
	fs.add(a.Links[0], b.Links[0])
	fs.add(a.Links[1])
	cl := serveLog(t, fs)
	pin := &LogPin{Origin: testOrigin, PublicKeys: fs.signer.VerifierKeys()}
	st := &memLogStore{}
	if _, err := cl.SyncLog(ctx, st, pin); err != nil {
		t.Fatal(err)
	}
	held := headOf(a.Links[1])
	if _, err := cl.VerifyFreshness(ctx, a.ID, held, st); err != nil {
		t.Fatalf("the honest log: %v", err)
	}
	if _, err := cl.VerifyFreshness(ctx, b.ID, headOf(b.Links[0]), st); err != nil {
		t.Fatalf("the honest log, account b: %v", err)
	}

	// The server appends a's next link (say a revocation) to the log but
	// keeps showing the device the chain up to seq 1.
	hidden := a.Next(t)
	fs.add(hidden)
	_, err := cl.VerifyFreshness(ctx, a.ID, held, st)
	if !errors.Is(err, ErrStaleHead) || !strings.Contains(err.Error(), "showed head seq 1") || !strings.Contains(err.Error(), "seq 2") {
		t.Fatalf("a stale head: %v, want ErrStaleHead naming seq 1 and seq 2", err)
	}
	if st.s.Size != fs.tree.Size() {
		t.Fatalf("the newer consistent checkpoint was not stored: %d, want %d", st.s.Size, fs.tree.Size())
	}
	t.Logf("stale head: %v", err)

	// Lies that try to make seq 1 look like the newest.
	staleHead := &api.Head{Seq: 1, Hash: a.Links[1].Hash().String()}
	var fake smap.Tree
	fake.Set(smap.Key(a.ID), smap.Value{Seq: 1, Head: a.Links[1].Hash()})
	fakeRoot := fake.Root()
	older := fs.freshness(a.ID, 5) // the map leaf after a's seq 1, a genuine but older leaf
	for _, c := range []struct {
		desc string
		lie  func(f *api.Freshness)
		want error
		text string
	}{
		{"the old head with the genuine map proof", func(f *api.Freshness) { f.Head = staleHead }, ErrNotFresh, "map proof"},
		{"a map of the server's making", func(f *api.Freshness) {
			f.Head, f.MapRoot, f.MapProof = staleHead, fakeRoot[:], fake.Prove(smap.Key(a.ID)).Bytes()
		}, ErrNotFresh, "not the last leaf"},
		{"the account hidden (absent from an empty map)", func(f *api.Freshness) {
			f.Head, f.MapRoot, f.MapProof = nil, smap.EmptyHash[:], (&smap.Tree{}).Prove(smap.Key(a.ID)).Bytes()
		}, ErrNotFresh, "not the last leaf"},
		{"an older map leaf, named as such", func(f *api.Freshness) {
			f.MapIndex, f.MapRoot, f.Inclusion, f.MapProof, f.Head = older.MapIndex, older.MapRoot, older.Inclusion, older.MapProof, older.Head
		}, ErrNotFresh, "not the checkpoint's last leaf"},
		{"an older map leaf's root passed as the last leaf", func(f *api.Freshness) {
			f.MapRoot, f.MapProof, f.Head = older.MapRoot, older.MapProof, older.Head
		}, ErrNotFresh, "not the last leaf"},
		{"a proof for a smaller tree", func(f *api.Freshness) { f.TreeSize--; f.MapIndex-- }, ErrNotFresh, "tree of"},
		{"a malformed map proof", func(f *api.Freshness) { f.MapProof = append(f.MapProof, 0) }, ErrNotFresh, "map proof"},
		{"a checkpoint under other keys", func(f *api.Freshness) {
			o := translogtest.NewSigner(t, testOrigin)
			var c translog.Checkpoint
			c.Origin, c.Size = testOrigin, fs.tree.Size()
			copy(c.Hash[:], fs.tree.Hash())
			signed, _ := o.Sign(c)
			f.Checkpoint = string(signed)
		}, ErrLogKeys, ""},
	} {
		fs.set(func() { fs.lie = c.lie })
		_, err := cl.VerifyFreshness(ctx, a.ID, held, st)
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) {
			t.Errorf("%s: %v, want %v (%q)", c.desc, err, c.want, c.text)
		}
	}
	fs.set(func() { fs.lie = nil })
	if _, err := cl.VerifyFreshness(ctx, a.ID, headOf(hidden), st); err != nil {
		t.Fatalf("the newest head after the lies: %v", err)
	}

	// A head the log has not got yet.
	ahead := a.Next(t)
	if _, err := cl.VerifyFreshness(ctx, a.ID, headOf(ahead), st); !errors.Is(err, ErrHeadNotLogged) {
		t.Fatalf("a head newer than the log's: %v, want ErrHeadNotLogged", err)
	}
	stranger := translogtest.NewChain(t, "fresh-stranger")
	if _, err := cl.VerifyFreshness(ctx, stranger.ID, headOf(stranger.Links[0]), st); !errors.Is(err, ErrHeadNotLogged) {
		t.Fatalf("an account the log does not hold: %v, want ErrHeadNotLogged", err)
	}
	// Another link at seq 2 (a fork shown to this device).
	fork := a.ForkAt(1)
	if _, err := cl.VerifyFreshness(ctx, a.ID, headOf(fork.Next(t)), st); !errors.Is(err, ErrNotFresh) || !strings.Contains(err.Error(), "forked") {
		t.Fatalf("another link at the head's seq: %v, want ErrNotFresh naming a fork", err)
	}
	// No checkpoint stored yet.
	if _, err := cl.VerifyFreshness(ctx, a.ID, held, &memLogStore{}); !errors.Is(err, ErrNotFresh) || !strings.Contains(err.Error(), "SyncLog first") {
		t.Fatalf("without a stored checkpoint: %v", err)
	}
}

func (s *freshServer) set(f func()) { s.mu.Lock(); f(); s.mu.Unlock() }

// policyLogStore is a device's log store with a witness policy.
type policyLogStore struct {
	memLogStore
	pol LogPolicy
}

func (p *policyLogStore) WitnessPolicy() (LogPolicy, error) { return p.pol, nil }

// TestVerifyFreshnessWitnessPolicy: the freshness answer is no side door
// for a checkpoint the device's witnesses have not cosigned. A newer
// checkpoint without the quorum is refused (ErrWitness) and not stored,
// even though its proof is valid; cosigned, it is accepted and stored.
func TestVerifyFreshnessWitnessPolicy(t *testing.T) {
	ctx := context.Background()
	a := translogtest.NewChain(t, "fresh-w")
	w := translogtest.NewCosigner(t, "w.example")
	pol, err := translog.ParsePolicy([]byte("witness W " + w.Key + "\nquorum W\n"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	fs := newFreshServer(t)
	fs.cosign = func(b []byte) []byte { return w.Cosign(b, now.Unix()) }
	fs.add(a.Links[0])
	cl := serveLog(t, fs)
	st := &policyLogStore{pol: LogPolicy{Pin: &LogPin{Origin: testOrigin, PublicKeys: fs.signer.VerifierKeys()}, Witnesses: pol}}
	if _, err := cl.SyncLogPolicy(ctx, st, st.pol); err != nil {
		t.Fatal(err)
	}
	held := headOf(a.Links[0])
	if _, err := cl.VerifyFreshness(ctx, a.ID, held, st); err != nil {
		t.Fatalf("the witnessed checkpoint the device holds: %v", err)
	}
	// A newer checkpoint the witness never saw.
	fs.set(func() { fs.cosign = nil })
	fs.add(a.Next(t))
	size := st.s.Size
	if _, err := cl.VerifyFreshness(ctx, a.ID, held, st); !errors.Is(err, ErrWitness) || st.s.Size != size {
		t.Fatalf("an unwitnessed newer checkpoint: %v, stored size %d (was %d); want ErrWitness and nothing stored", err, st.s.Size, size)
	}
	// Cosigned, it is adopted (and shows the newer head).
	fs.set(func() { fs.cosign = func(b []byte) []byte { return w.Cosign(b, now.Unix()) } })
	if _, err := cl.VerifyFreshness(ctx, a.ID, held, st); !errors.Is(err, ErrStaleHead) || st.s.Size == size {
		t.Fatalf("the witnessed newer checkpoint: %v, stored size %d; want ErrStaleHead (seq 1 is newer) and the checkpoint stored", err, st.s.Size)
	}
}
