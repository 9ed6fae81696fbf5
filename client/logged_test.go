package client

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/translog/translogtest"
)

// TestSyncLogged: a device that follows the log accepts a chain's links
// only with inclusion proofs in the checkpoint it verified, asking only
// for the links it has not accepted before. A link newer than its
// checkpoint is not accepted yet (ErrNotLoggedYet) and one the server
// cannot prove (here its proof is of another leaf) is refused
// (ErrNotLogged); in both cases the logged prefix is stored and the
// state returned is the prefix's.
func TestSyncLogged(t *testing.T) {
	ctx := context.Background()
	links, states := testChain(t, 9)
	full := raw(links)
	acct := states[0].Account()
	now := t0.Add(time.Minute)
	honest := translogtest.NewSigner(t, testOrigin)
	// Other accounts' leaves between this account's: link seq is leaf
	// 2·seq+1.
	ls := &logServer{signer: honest, sign: honest, tree: tree("x", string(full[0]), "y", string(full[1])),
		leafOf: map[uint64]uint64{0: 1, 1: 3, 2: 5}}
	chainSrv := &chainServer{answer: func(q api.ChainQuery) (int, any) {
		return http.StatusOK, answerOf(acct, states[2].Head(), full[q.After+1:])
	}}
	chainCl := chainSrv.start(t)
	chainURL := chainCl.Server()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/chain") {
			resp, err := http.Get(chainURL + r.URL.RequestURI())
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			defer resp.Body.Close()
			w.Header().Set("Content-Type", "application/json")
			io.Copy(w, resp.Body)
			return
		}
		ls.ServeHTTP(w, r)
	}))
	defer srv.Close()
	cl, err := New(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	logSt := &memLogStore{}
	st := memStore{}
	if _, err := cl.SyncLog(ctx, logSt, nil); err != nil {
		t.Fatal(err)
	}

	// Link 2 is not in the tree yet: links 0 and 1 are accepted.
	ls.set(func(s *logServer) { s.tree.AppendData([]byte("z"), full[2]) })
	got, err := cl.SyncLogged(ctx, acct, st, nil, logSt, now)
	if !errors.Is(err, ErrNotLoggedYet) || got == nil || got.Head() != states[1].Head() || len(st[acct]) != 2 {
		t.Fatalf("a link newer than the checkpoint: %v, state %v, %d links stored; want ErrNotLoggedYet and the prefix of 2", err, got, len(st[acct]))
	}
	t.Logf("not yet: %v", err)
	// After the next checkpoint it is accepted; only its proof is asked.
	if _, err := cl.SyncLog(ctx, logSt, nil); err != nil {
		t.Fatal(err)
	}
	ls.set(func(s *logServer) { s.proofs = 0 })
	got, err = cl.SyncLogged(ctx, acct, st, got, logSt, now)
	if err != nil || got.Head() != states[2].Head() || len(st[acct]) != 3 || ls.proofs != 1 {
		t.Fatalf("after the checkpoint: %v, state %v, %d links, %d proofs asked", err, got, len(st[acct]), ls.proofs)
	}
	// Nothing new: no proof asked.
	if _, err := cl.SyncLogged(ctx, acct, st, got, logSt, now); err != nil || ls.proofs != 1 {
		t.Fatalf("nothing new: %v, %d proofs asked", err, ls.proofs)
	}

	// A first contact where the proof of link 1 is of another leaf.
	ls.set(func(s *logServer) { s.leafOf = map[uint64]uint64{0: 1, 1: 2, 2: 5} })
	fresh := memStore{}
	got, err = cl.SyncLogged(ctx, acct, fresh, nil, logSt, now)
	if !errors.Is(err, ErrNotLogged) || got == nil || got.Head() != states[0].Head() || len(fresh[acct]) != 1 {
		t.Fatalf("a link without a valid proof: %v, state %v, %d links stored; want ErrNotLogged and the genesis", err, got, len(fresh[acct]))
	}
	// The genesis itself unproven: nothing stored, no state.
	ls.set(func(s *logServer) { s.leafOf = map[uint64]uint64{0: 0, 1: 3, 2: 5} })
	none := memStore{}
	if got, err := cl.SyncLogged(ctx, acct, none, nil, logSt, now); !errors.Is(err, ErrNotLogged) || got != nil || len(none[acct]) != 0 {
		t.Fatalf("an unlogged genesis: %v, state %v, %d stored", err, got, len(none[acct]))
	}
}
