package monitor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/enigm/enigm/translog"
)

// Fetcher reads a c2sp.org/tlog-tiles log. Nothing it returns is trusted:
// the monitor checks it against signed checkpoints. It must be safe for
// concurrent use.
type Fetcher interface {
	// Checkpoint returns the served signed checkpoint.
	Checkpoint(ctx context.Context) ([]byte, error)
	// Tile returns hash tile (level, index), its first width hashes
	// (width TileWidth for a full tile).
	Tile(ctx context.Context, level, index, width uint64) ([]byte, error)
	// Entries returns entry bundle index with width entries.
	Entries(ctx context.Context, index, width uint64) ([]byte, error)
}

// ErrNotServed: the log answered 404 for a resource its checkpoint covers,
// or answered something other than 200.
var ErrNotServed = errors.New("monitor: the log does not serve")

// Response size bounds.
const (
	maxTileBytes   = translog.TileWidth * 32
	maxBundleBytes = translog.TileWidth * (2 + translog.MaxLeafSize)
)

// HTTPFetcher returns a Fetcher of the log whose tiles are under prefix
// (for Enigm Command: the server's URL followed by /log/). client nil
// means http.DefaultClient.
func HTTPFetcher(prefix string, client *http.Client) Fetcher {
	if client == nil {
		client = http.DefaultClient
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return &httpFetcher{prefix: prefix, c: client}
}

type httpFetcher struct {
	prefix string
	c      *http.Client
}

func (h *httpFetcher) Checkpoint(ctx context.Context) ([]byte, error) {
	return h.get(ctx, "checkpoint", translog.MaxCheckpointSize)
}

func (h *httpFetcher) Tile(ctx context.Context, level, index, width uint64) ([]byte, error) {
	return h.get(ctx, translog.TilePath(level, index, width), maxTileBytes)
}

func (h *httpFetcher) Entries(ctx context.Context, index, width uint64) ([]byte, error) {
	return h.get(ctx, translog.EntriesPath(index, width), maxBundleBytes)
}

func (h *httpFetcher) get(ctx context.Context, path string, max int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.prefix+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := h.c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching %s%s: %w", h.prefix, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w %s%s: it answered %s", ErrNotServed, h.prefix, path, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s%s: %w", h.prefix, path, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w %s%s: more than %d bytes", ErrNotServed, h.prefix, path, max)
	}
	return b, nil
}
