package translog

import (
	"context"
	"crypto/sha256"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// TileReader returns the hashes of hash tile (level, index), 32 bytes
// each: what a log serves at tile/<L>/<N> (or the partial tile its tree
// has). Proofs built from them are checked against a root, so the reader
// need not be trusted.
type TileReader func(ctx context.Context, level, index uint64) ([]byte, error)

// ProofFromTiles returns the hashes of the proof n (from proof.Inclusion
// or proof.Consistency of transparency-dev/merkle), each node read from
// the hash tiles that read returns, or hashed from the tile level below
// it. Each tile is read at most once.
func ProofFromTiles(ctx context.Context, n proof.Nodes, read TileReader) ([][]byte, error) {
	tiles := map[[2]uint64][]byte{}
	hs := make([][]byte, len(n.IDs))
	for i, id := range n.IDs {
		h, err := tileNode(ctx, read, tiles, id)
		if err != nil {
			return nil, err
		}
		hs[i] = h
	}
	return n.Rehash(hs, rfc6962.DefaultHasher.HashChildren)
}

// tileNode returns the hash of a perfect subtree node: read from a tile
// when its level is a tile level, otherwise hashed from the 2^r nodes of
// the tile level below it, which lie in one tile.
func tileNode(ctx context.Context, read TileReader, tiles map[[2]uint64][]byte, id compact.NodeID) ([]byte, error) {
	tl, r := uint64(id.Level/tileHeight), id.Level%tileHeight
	first := id.Index << r
	count := uint64(1) << r
	key := [2]uint64{tl, first / TileWidth}
	t, ok := tiles[key]
	if !ok {
		var err error
		t, err = read(ctx, key[0], key[1])
		if err != nil {
			return nil, fmt.Errorf("tile %d/%d for node %d/%d: %w", key[0], key[1], id.Level, id.Index, err)
		}
		tiles[key] = t
	}
	off := first % TileWidth
	if uint64(len(t)) < (off+count)*sha256.Size {
		return nil, fmt.Errorf("%w: tile %d/%d holds %d hashes, node %d/%d needs %d", ErrCorrupt, key[0], key[1], len(t)/sha256.Size, id.Level, id.Index, off+count)
	}
	if r == 0 {
		return t[off*sha256.Size : (off+1)*sha256.Size], nil
	}
	rng := (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)
	for i := off; i < off+count; i++ {
		if err := rng.Append(t[i*sha256.Size:(i+1)*sha256.Size], nil); err != nil {
			return nil, err
		}
	}
	return rng.GetRootHash(nil)
}
