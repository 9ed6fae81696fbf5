package translog_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/enigm/enigm/translog"
	"github.com/enigm/enigm/translog/translogtest"
)

// serve returns a test server with the log mounted under /log/.
func serve(t testing.TB, l *translog.Log) *httptest.Server {
	mux := http.NewServeMux()
	mux.Handle("/log/", http.StripPrefix("/log", l.Handler()))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

var get = translogtest.Get

// TestHandlerTiles: a log of 70000 leaves (the tlog-tiles example: 273
// full level-0 tiles, one partial of width 112, one full level-1 tile,
// one partial of width 17, one partial level-2 tile of width 1) serves
// exactly those tiles, with the headers the spec asks for, and 404 for
// every tile the checkpoint does not cover.
func TestHandlerTiles(t *testing.T) {
	l, st, _ := newLog(t, 70000)
	srv := serve(t, l)
	base := srv.URL + "/log/"

	code, h, cp := get(t, base+"checkpoint")
	if code != 200 || h.Get("Content-Type") != "text/plain; charset=utf-8" || h.Get("Cache-Control") != "no-cache" {
		t.Fatalf("checkpoint: %d %v", code, h)
	}
	if _, err := translog.VerifyCheckpoint(cp, testOrigin, l.VerifierKeys()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want int // hashes, or 0 for 404
	}{
		{translog.TilePath(0, 0, 0), 256},
		{translog.TilePath(0, 272, 0), 256},
		{translog.TilePath(0, 273, 0), 0},
		{translog.TilePath(0, 273, 112), 112},
		{translog.TilePath(0, 273, 111), 111}, // a smaller checkpoint's partial tile
		{translog.TilePath(0, 273, 113), 0},
		{translog.TilePath(0, 274, 1), 0},
		{translog.TilePath(1, 0, 0), 256},
		{translog.TilePath(1, 1, 17), 17},
		{translog.TilePath(1, 1, 0), 0},
		{translog.TilePath(2, 0, 1), 1},
		{translog.TilePath(3, 0, 1), 0},
		{translog.TilePath(0, 0, 7), 7},
		{"tile/0/x000/005", 0},  // non-canonical index
		{"tile/0/1", 0},         // index not three digits
		{"tile/00/000", 0},      // level with a leading zero
		{"tile/64/000", 0},      // level out of range
		{"tile/0/000.p/0", 0},   // empty tile
		{"tile/0/000.p/256", 0}, // width out of range
		{"tile/0/000.p/07", 0},  // width with a leading zero
		{"tile/0/001/002", 0},   // inner element without x
		{"tile/0/x272/000", 0},  // beyond the tree
		{"tile/entries/274", 0}, // beyond the tree
		{"tile/entries/273.p/113", 0},
		{"tiles/0/000", 0},
	} {
		code, h, b := get(t, base+tc.path)
		if tc.want == 0 {
			if code != 404 {
				t.Errorf("%s: %d, want 404", tc.path, code)
			}
			continue
		}
		if code != 200 || len(b) != tc.want*sha256.Size {
			t.Errorf("%s: %d with %d bytes, want 200 with %d hashes", tc.path, code, len(b), tc.want)
			continue
		}
		if h.Get("Content-Type") != "application/octet-stream" || h.Get("Cache-Control") != "public, max-age=31536000, immutable" {
			t.Errorf("%s: headers %v", tc.path, h)
		}
	}

	// Level-0 tile 5 holds the leaf hashes of leaves 1280…1535, and entry
	// bundle 5 those leaves, length-prefixed.
	_, _, tile := get(t, base+translog.TilePath(0, 5, 0))
	_, _, bundle := get(t, base+translog.EntriesPath(5, 0))
	for i := range 256 {
		want := leaf(5*256 + i)
		if n := binary.BigEndian.Uint16(bundle); int(n) != len(want) || !bytes.Equal(bundle[2:2+n], want) {
			t.Fatalf("entry %d of bundle 5 differs", i)
		}
		bundle = bundle[2+len(want):]
		if !bytes.Equal(tile[i*32:(i+1)*32], rfc6962.DefaultHasher.HashLeaf(want)) {
			t.Fatalf("hash %d of tile 0/5 is not the leaf hash", i)
		}
	}
	if len(bundle) != 0 {
		t.Fatalf("%d bytes after the 256 entries of bundle 5", len(bundle))
	}
	// The last entry of the partial bundle is the map leaf.
	if code, _, b := get(t, base+translog.EntriesPath(273, 112)); code != 200 || bytes.Count(b, []byte("leaf ")) != 111 ||
		!bytes.Contains(b, []byte(translog.MapLeafPrefix+"69999\n")) {
		t.Fatalf("partial bundle 273.p/112: %d, %d entries", code, bytes.Count(b, []byte("leaf ")))
	}

	// Leaves sequenced but not integrated are not served.
	st.Add(leaf(70000))
	if code, _, _ := get(t, base+translog.EntriesPath(273, 113)); code != 404 {
		t.Fatalf("an entry beyond the checkpoint was served: %d", code)
	}

	resp, err := http.Post(base+"checkpoint", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST checkpoint: %d", resp.StatusCode)
	}
}

// TestHandlerNoCheckpoint: a log that never integrated answers 404.
func TestHandlerNoCheckpoint(t *testing.T) {
	l := translog.New(newMemStorage(), newSigner(t))
	if code, _, _ := get(t, serve(t, l).URL+"/log/checkpoint"); code != 404 {
		t.Fatalf("checkpoint of a log without one: %d", code)
	}
	if _, _, err := l.Checkpoint(context.Background()); err == nil {
		t.Fatal("Checkpoint of a log without one succeeded")
	}
}

// TestTilePath: paths as tlog-tiles spells them.
func TestTilePath(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{translog.TilePath(0, 1234067, 0), "tile/0/x001/x234/067"},
		{translog.TilePath(2, 5, 17), "tile/2/005.p/17"},
		{translog.TilePath(1, 1000, 0), "tile/1/x001/000"},
		{translog.EntriesPath(999, 255), "tile/entries/999.p/255"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s, want %s", tc.got, tc.want)
		}
	}
}

// failingStorage fails every read, as an unreachable database does.
type failingStorage struct{ *translogtest.MemStorage }

var errDown = errors.New("database down")

func (failingStorage) State(context.Context) (translog.State, error) {
	return translog.State{}, errDown
}
func (failingStorage) Tile(context.Context, uint64, uint64) ([]byte, error) {
	return nil, errDown
}

// TestHandlerStorageDown: when the storage cannot be read the log answers
// 503 (try again) without the storage's error text, never 404 (which a
// client could take for "no such tile"), and proofs fail with the
// storage's error.
func TestHandlerStorageDown(t *testing.T) {
	_, st, s := newLog(t, 300)
	l := translog.New(failingStorage{st}, s)
	base := serve(t, l).URL + "/log/"
	for _, p := range []string{"checkpoint", translog.TilePath(0, 0, 0), translog.EntriesPath(0, 0)} {
		if code, _, body := get(t, base+p); code != http.StatusServiceUnavailable || bytes.Contains(body, []byte(errDown.Error())) {
			t.Errorf("%s with the storage down: %d %q, want 503 without the storage's error", p, code, body)
		}
	}
	if _, err := l.InclusionProof(context.Background(), 0, 300); !errors.Is(err, errDown) {
		t.Fatalf("a proof with the storage down: %v", err)
	}
}
