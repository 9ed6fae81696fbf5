package translog

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Cache headers of c2sp.org/tlog-tiles: the checkpoint changes, tiles
// and entry bundles (full or partial of a given width) never do.
const (
	cacheCheckpoint = "no-cache"
	cacheImmutable  = "public, max-age=31536000, immutable"
)

// Handler serves the log in c2sp.org/tlog-tiles form, for requests whose
// path is relative to the log's prefix: mount it with
// http.StripPrefix("/log", l.Handler()) to serve /log/checkpoint,
// /log/tile/<L>/<N>[.p/<W>] and /log/tile/entries/<N>[.p/<W>]. Only what
// the newest checkpoint covers is served.
func (l *Log) Handler() http.Handler {
	return http.HandlerFunc(l.serve)
}

func (l *Log) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "the log is read with GET", http.StatusMethodNotAllowed)
		return
	}
	p := strings.TrimPrefix(r.URL.Path, "/")
	if p == "checkpoint" {
		l.serveCheckpoint(w, r)
		return
	}
	rest, ok := strings.CutPrefix(p, "tile/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	t, err := parseTilePath(rest)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	var body []byte
	if t.entries {
		body, err = l.bundle(r, t)
	} else {
		body, err = l.tile(r, t)
	}
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		http.Error(w, "the log's storage failed; try again", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", cacheImmutable)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method == http.MethodGet {
		w.Write(body)
	}
}

func (l *Log) serveCheckpoint(w http.ResponseWriter, r *http.Request) {
	s, err := l.st.State(r.Context())
	if err != nil {
		http.Error(w, "the log's storage failed; try again", http.StatusServiceUnavailable)
		return
	}
	if s.Checkpoint == nil {
		http.Error(w, "the log has no checkpoint yet", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", cacheCheckpoint)
	w.Header().Set("Content-Length", strconv.Itoa(len(s.Checkpoint)))
	if r.Method == http.MethodGet {
		w.Write(s.Checkpoint)
	}
}

// tile returns the hashes of a hash tile: a full tile only once it has
// TileWidth hashes, a partial one of width W once it has at least W.
func (l *Log) tile(r *http.Request, t tilePath) ([]byte, error) {
	h, err := l.st.Tile(r.Context(), t.level, t.index)
	if err != nil {
		return nil, err
	}
	if len(h)%sha256.Size != 0 || len(h) > TileWidth*sha256.Size {
		return nil, fmt.Errorf("%w: tile %d/%d of %d bytes", ErrCorrupt, t.level, t.index, len(h))
	}
	if n := uint64(len(h) / sha256.Size); n < t.width {
		return nil, fmt.Errorf("%w: tile %d/%d has %d hashes, %d asked", ErrNotFound, t.level, t.index, n, t.width)
	}
	return h[:t.width*sha256.Size], nil
}

// bundle returns an entry bundle: leaves within the newest checkpoint,
// each prefixed with its length as a big-endian uint16.
func (l *Log) bundle(r *http.Request, t tilePath) ([]byte, error) {
	s, err := l.st.State(r.Context())
	if err != nil {
		return nil, err
	}
	start := t.index * TileWidth
	end := start + t.width
	if t.index > (1<<64-1)/TileWidth-1 || end > s.Size {
		return nil, fmt.Errorf("%w: entries [%d, %d) beyond the checkpoint's %d", ErrNotFound, start, end, s.Size)
	}
	leaves, err := l.st.Leaves(r.Context(), start, end)
	if err != nil {
		return nil, err
	}
	if uint64(len(leaves)) != t.width {
		return nil, fmt.Errorf("%w: %d of the %d integrated leaves [%d, %d) could be read", ErrCorrupt, len(leaves), t.width, start, end)
	}
	var b []byte
	for _, leaf := range leaves {
		if len(leaf) > MaxLeafSize {
			return nil, fmt.Errorf("%w: leaf of %d bytes", ErrCorrupt, len(leaf))
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(leaf)))
		b = append(b, leaf...)
	}
	return b, nil
}

// tilePath is a parsed tile/... path.
type tilePath struct {
	entries bool
	level   uint64
	index   uint64
	width   uint64 // TileWidth for a full tile
}

// parseTilePath parses the path after "tile/": "<L>/<N>[.p/<W>]" or
// "entries/<N>[.p/<W>]", in the one canonical spelling of tlog-tiles
// (no leading zeros, no x000 elements in front), so that one resource has
// one URL.
func parseTilePath(p string) (tilePath, error) {
	var t tilePath
	el := strings.Split(p, "/")
	if len(el) < 2 {
		return t, errors.New("not a tile path: want tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>]")
	}
	if el[0] == "entries" {
		t.entries = true
	} else {
		lv, err := decimal(el[0], 63)
		if err != nil {
			return t, fmt.Errorf("tile level %q: %v", el[0], err)
		}
		t.level = lv
	}
	el = el[1:]
	t.width = TileWidth
	if n := len(el); n >= 2 && strings.HasSuffix(el[n-2], ".p") {
		w, err := decimal(el[n-1], TileWidth-1)
		if err != nil || w == 0 {
			return t, fmt.Errorf("partial tile width %q: want 1 to %d", el[n-1], TileWidth-1)
		}
		t.width = w
		el[n-2] = strings.TrimSuffix(el[n-2], ".p")
		el = el[:n-1]
	}
	if len(el) > 7 {
		return t, errors.New("tile index too long")
	}
	for i, e := range el {
		last := i == len(el)-1
		if !last {
			if !strings.HasPrefix(e, "x") {
				return t, fmt.Errorf("tile index element %q: all but the last start with x", e)
			}
			e = e[1:]
		}
		if len(e) != 3 || strings.Trim(e, "0123456789") != "" {
			return t, fmt.Errorf("tile index element %q: want three digits", e)
		}
		if i == 0 && !last && e == "000" {
			return t, errors.New("tile index: no leading x000 element")
		}
		d, _ := strconv.ParseUint(e, 10, 64)
		if t.index > (1<<64-1-d)/1000 {
			return t, errors.New("tile index too large")
		}
		t.index = t.index*1000 + d
	}
	return t, nil
}

// decimal parses a decimal number at most max, without leading zeros.
func decimal(s string, max uint64) (uint64, error) {
	if s == "" || (len(s) > 1 && s[0] == '0') || strings.Trim(s, "0123456789") != "" {
		return 0, errors.New("not a decimal number without leading zeros")
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v > max {
		return 0, fmt.Errorf("at most %d", max)
	}
	return v, nil
}

// TilePath returns the path of a tile (level, index) after the log's
// prefix, with ".p/<W>" for a partial width 0 < W < TileWidth: the
// counterpart of what Handler serves.
func TilePath(level, index, width uint64) string {
	return "tile/" + strconv.FormatUint(level, 10) + "/" + indexPath(index, width)
}

// EntriesPath returns the path of an entry bundle after the log's prefix.
func EntriesPath(index, width uint64) string {
	return "tile/entries/" + indexPath(index, width)
}

func indexPath(index, width uint64) string {
	s := fmt.Sprintf("%03d", index%1000)
	for index >= 1000 {
		index /= 1000
		s = fmt.Sprintf("x%03d/", index%1000) + s
	}
	if width > 0 && width < TileWidth {
		s += ".p/" + strconv.FormatUint(width, 10)
	}
	return s
}
