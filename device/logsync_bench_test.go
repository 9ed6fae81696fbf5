package device_test

import (
	"context"
	"testing"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/device"
	"github.com/enigm/enigm/internal/testkit"
)

type benchLinks map[chain.AccountID][][]byte

func (m benchLinks) Links(a chain.AccountID) ([][]byte, error) { return m[a], nil }
func (m benchLinks) Append(a chain.AccountID, l [][]byte) error {
	m[a] = append(m[a], l...)
	return nil
}

type benchLog struct{ s *client.LogState }

func (m *benchLog) LogState() (*client.LogState, error) {
	if m.s == nil {
		return nil, nil
	}
	c := *m.s
	return &c, nil
}
func (m *benchLog) SetLogState(s *client.LogState) error { c := *s; m.s = &c; return nil }

// BenchmarkChainSyncLog measures a device's chain sync of an account of
// 10 links against a running Command (in process, over loopback HTTP)
// with the transparency log enforced (client.SyncLog, then
// client.SyncLogged) against the same sync without it (client.SyncFrom),
// in one run: at first contact (every link verified and, with the log,
// proven: 10 inclusion proofs, 8 at a time) and as a refresh with nothing
// new (with the log: one checkpoint fetch, no proof).
//
//	go test -run XXX -bench BenchmarkChainSyncLog -benchtime 50x ./device/
func BenchmarkChainSyncLog(b *testing.B) {
	ctx := context.Background()
	w, _ := logWorld(b)
	a, d := w.agent("a"), w.agent("b")
	res := testkit.Must(a.Init(ctx, device.InitOptions{Account: "bench", DeviceName: "a"}))
	enroll(b, ctx, a, d, "bench")
	for range 8 {
		if _, _, err := d.Rotate(ctx); err != nil {
			b.Fatal(err)
		}
	}
	acct := res.Account
	cl, err := client.New(w.url, nil)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	full := benchLinks{}
	state, err := cl.SyncFrom(ctx, acct, full, nil, now)
	if err != nil || state.Head().Seq != 9 {
		b.Fatalf("setup: %v %v", state, err)
	}
	pinned := &benchLog{}
	if _, err := cl.SyncLog(ctx, pinned, nil); err != nil {
		b.Fatal(err)
	}
	b.Run("first-contact/log-off", func(b *testing.B) {
		for b.Loop() {
			if _, err := cl.SyncFrom(ctx, acct, benchLinks{}, nil, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("first-contact/log-on", func(b *testing.B) {
		for b.Loop() {
			ls := &benchLog{s: pinned.s}
			if _, err := cl.SyncLog(ctx, ls, nil); err != nil {
				b.Fatal(err)
			}
			if _, err := cl.SyncLogged(ctx, acct, benchLinks{}, nil, ls, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("refresh/log-off", func(b *testing.B) {
		for b.Loop() {
			if _, err := cl.SyncFrom(ctx, acct, full, state, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("refresh/log-on", func(b *testing.B) {
		for b.Loop() {
			if _, err := cl.SyncLog(ctx, pinned, nil); err != nil {
				b.Fatal(err)
			}
			if _, err := cl.SyncLogged(ctx, acct, full, state, pinned, now); err != nil {
				b.Fatal(err)
			}
		}
	})
}
