package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/enigm/enigm/command/store"
	"github.com/enigm/enigm/command/store/storetest"
	"github.com/enigm/enigm/internal/testkit"
)

func openMarks(t *testing.T, dir string, inMemory int) (*store.Marks, error) {
	t.Helper()
	m, err := store.OpenMarks(context.Background(), filepath.Join(dir, "marks.db"), filepath.Join(dir, "marks.key"), inMemory)
	if err == nil {
		t.Cleanup(func() { m.Close() })
	}
	return m, err
}

func wantMark(t *testing.T, m *store.Marks, account string, want store.Head, wantOK bool) {
	t.Helper()
	h, ok, err := m.Get(context.Background(), account)
	if err != nil || ok != wantOK || h != want {
		t.Fatalf("mark of %s: %v %v %v, want %v %v", account, h, ok, err, want, wantOK)
	}
}

// Marks only go up, survive a reopen (read from the file when they are
// not in memory), and hold under concurrent raises.
func TestMarks(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	m, err := openMarks(t, dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	wantMark(t, m, "a", store.Head{}, false)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%d", "%q"} {
		if out := fmt.Sprintf(verb, m); out != "store.Marks{…}" {
			t.Fatalf("%s prints %q", verb, out)
		}
	}
	h3 := store.Head{Seq: 3, Hash: "h3"}
	if err := m.Raise(ctx, "a", h3); err != nil {
		t.Fatal(err)
	}
	if err := m.Raise(ctx, "a", store.Head{Seq: 2, Hash: "h2"}); err != nil {
		t.Fatal(err)
	}
	wantMark(t, m, "a", h3, true)
	wantMark(t, m, "b", store.Head{}, false) // evicts a from memory
	wantMark(t, m, "a", h3, true)            // from the file
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.Raise(ctx, "c", store.Head{Seq: uint64(i), Hash: "c"}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	testkit.NoErr(t, m.Close())

	m2, err := openMarks(t, dir, 100)
	if err != nil {
		t.Fatal(err)
	}
	wantMark(t, m2, "a", h3, true)
	wantMark(t, m2, "c", store.Head{Seq: 19, Hash: "c"}, true)
	for _, f := range []string{"marks.db", "marks.key"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, fi, err)
		}
	}
}

// A mark changed without the key fails its MAC; a key that is not the
// file's, or one of the two files missing, fails the open with a message
// that says what to do.
func TestMarksTampering(t *testing.T) {
	ctx := context.Background()
	setup := func(t *testing.T) string {
		dir := t.TempDir()
		m, err := openMarks(t, dir, 10)
		if err != nil {
			t.Fatal(err)
		}
		testkit.NoErr(t, m.Raise(ctx, "a", store.Head{Seq: 5, Hash: "h5"}))
		testkit.NoErr(t, m.Raise(ctx, "b", store.Head{Seq: 7, Hash: "h7"}))
		testkit.NoErr(t, m.Close())
		return dir
	}
	for _, tc := range []struct {
		desc    string
		queries []string
		bad     string // the account whose mark no longer verifies
		intact  bool   // b's mark still reads back
	}{
		{"mark lowered", []string{`UPDATE marks SET seq = 1, hash = 'h1' WHERE account_id = 'a'`}, "a", true},
		{"marks swapped", []string{`UPDATE marks SET account_id = 'x' WHERE account_id = 'a'`, `UPDATE marks SET account_id = 'a' WHERE account_id = 'b'`, `UPDATE marks SET account_id = 'b' WHERE account_id = 'x'`}, "b", false},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			dir := setup(t)
			db := storetest.RawDB(t, filepath.Join(dir, "marks.db"))
			for _, q := range tc.queries {
				if _, err := db.Exec(q); err != nil {
					t.Fatal(err)
				}
			}
			db.Close()
			m, err := openMarks(t, dir, 10)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := m.Get(ctx, tc.bad); !errors.Is(err, store.ErrBadMark) {
				t.Fatalf("%s: mark of %s: %v, want ErrBadMark", tc.desc, tc.bad, err)
			}
			if tc.intact {
				wantMark(t, m, "b", store.Head{Seq: 7, Hash: "h7"}, true)
			}
		})
	}
	for _, tc := range []struct {
		desc    string
		mutate  func(dir string) error
		wantErr string
	}{
		{"other key", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "marks.key"), make([]byte, 32), 0o600)
		}, "does not belong to this marks file"},
		{"short key", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "marks.key"), []byte("short"), 0o600)
		}, "has 5 bytes"},
		{"key deleted", func(dir string) error { return os.Remove(filepath.Join(dir, "marks.key")) }, "its key"},
		{"marks deleted", func(dir string) error { return os.Remove(filepath.Join(dir, "marks.db")) }, "the marks file"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			dir := setup(t)
			if err := tc.mutate(dir); err != nil {
				t.Fatal(err)
			}
			_, err := openMarks(t, dir, 10)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("open: %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

// The cost of raising a mark: one commit (fsync) per raise when raises
// come one at a time, shared when they come together.
func BenchmarkMarksRaise(b *testing.B) {
	dir := b.TempDir()
	m, err := store.OpenMarks(context.Background(), filepath.Join(dir, "marks.db"), filepath.Join(dir, "marks.key"), 1000)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	var n atomic.Uint64
	raise := func() {
		i := n.Add(1)
		if err := m.Raise(context.Background(), fmt.Sprintf("account-%d", i%1000), store.Head{Seq: i, Hash: "h"}); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			raise()
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				raise()
			}
		})
	})
}
