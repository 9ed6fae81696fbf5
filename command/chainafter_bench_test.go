package command

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/internal/testkit"
)

// countingTransport counts the response body bytes a client reads.
type countingTransport struct {
	n atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil {
		resp.Body = &countingBody{ReadCloser: resp.Body, n: &c.n}
	}
	return resp, err
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// longAccount is an account of n links (a genesis, then rotate_keys links
// by its one device) and the client's verified states at each seq.
func longAccount(b *testing.B, e *env, name string, n int) (*tacct, []*chain.State) {
	A := newDev(name + "/A")
	a := e.newAccount(name, A, chain.DefaultPolicy())
	a.sync()
	states := []*chain.State{a.st}
	for i := 1; i < n; i++ {
		l := a.rotateKEMLink(A, i)
		e.want(a.post(A, l), http.StatusCreated, "")
		st, err := chain.Apply(a.st, l, e.clock.Now())
		testkit.NoErr(b, err)
		a.st = st
		states = append(states, st)
	}
	return a, states
}

type memLinks map[chain.AccountID][][]byte

func (m memLinks) Links(a chain.AccountID) ([][]byte, error) { return m[a], nil }
func (m memLinks) Append(a chain.AccountID, l [][]byte) error {
	m[a] = append(m[a], l...)
	return nil
}

// BenchmarkLongChain measures, over loopback HTTP against a real server
// (SQLite), what a device pays for an account of 1,000 links (and of 10,
// for the goal's ratio): a first contact (the whole chain, every link
// verified), and a refresh after one new link three ways — as main's
// client did it (after=SEQ, no hash), as this branch's does (after=SEQ
// &hash=HASH: the server checks the head), and from a new process (the
// verified state is not kept across processes: the stored links are
// verified again, then the one new link is fetched). The variants run in
// alternation within each iteration, so all see the same machine load;
// each reports ns/op and response bytes per op.
func BenchmarkLongChain(b *testing.B) {
	e := newEnv(b)
	e.waitListening()
	_, s10 := longAccount(b, e, "ten", 10)
	_, s1k := longAccount(b, e, "thousand", 1000)
	ts := httptest.NewServer(e.srv.Handler())
	defer ts.Close()
	ct := &countingTransport{}
	c, err := client.New(ts.URL, &http.Client{Transport: ct, Timeout: time.Minute})
	testkit.NoErr(b, err)
	ctx := context.Background()
	now := e.clock.Now()
	acct10, acct1k := s10[0].Account(), s1k[0].Account()
	head1k := s1k[len(s1k)-1].Head()
	prev := s1k[len(s1k)-2] // the client verified all but the newest link
	var stored [][]byte
	{
		view, err := c.Chain(ctx, acct1k, -1)
		testkit.NoErr(b, err)
		stored = view.Links[:len(view.Links)-1]
	}

	variants := []struct {
		name string
		run  func() (*chain.State, error)
	}{
		{"first-contact-10", func() (*chain.State, error) { return c.Sync(ctx, acct10, memLinks{}, now) }},
		{"first-contact-1000", func() (*chain.State, error) { return c.Sync(ctx, acct1k, memLinks{}, now) }},
		{"refresh-main", func() (*chain.State, error) {
			view, err := c.Chain(ctx, acct1k, int64(prev.Head().Seq))
			if err != nil {
				return nil, err
			}
			return client.Extend(acct1k, prev, view, now)
		}},
		{"refresh", func() (*chain.State, error) {
			return c.SyncFrom(ctx, acct1k, memLinks{acct1k: stored}, prev, now)
		}},
		{"refresh-new-process", func() (*chain.State, error) {
			return c.SyncFrom(ctx, acct1k, memLinks{acct1k: stored}, nil, now)
		}},
	}
	dur := make([]time.Duration, len(variants))
	bytes := make([]int64, len(variants))
	for b.Loop() {
		for i, v := range variants {
			n0, t0 := ct.n.Load(), time.Now()
			st, err := v.run()
			dur[i] += time.Since(t0)
			bytes[i] += ct.n.Load() - n0
			testkit.NoErr(b, err)
			want := head1k
			if i == 0 {
				want = s10[len(s10)-1].Head()
			}
			if st.Head() != want {
				b.Fatalf("%s: head %+v, want %+v", v.name, st.Head(), want)
			}
		}
	}
	n := float64(b.N)
	for i, v := range variants {
		b.ReportMetric(float64(dur[i].Nanoseconds())/n/1e6, fmt.Sprintf("%s-ms/op", v.name))
		b.ReportMetric(float64(bytes[i])/n, fmt.Sprintf("%s-B/op", v.name))
	}
	b.ReportMetric(float64(dur[1])/float64(dur[0]), "first-1000/first-10")
}
