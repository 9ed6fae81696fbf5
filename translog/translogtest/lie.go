package translogtest

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/enigm/enigm/translog"
	"github.com/enigm/enigm/translog/smap"
)

// Leaves returns the leaves of the checkpoint log holds over st, and its
// map (translog.MapChecker over them, which checks their map leaves).
func Leaves(ctx context.Context, st *MemStorage, log *translog.Log) ([][]byte, *smap.Tree, error) {
	_, c, err := log.Checkpoint(ctx)
	if err != nil {
		return nil, nil, err
	}
	ls, err := st.Leaves(ctx, 0, c.Size)
	if err != nil {
		return nil, nil, err
	}
	var mc translog.MapChecker
	for _, l := range ls {
		if _, err := mc.Add(l); err != nil {
			return nil, nil, err
		}
	}
	return slices.Clone(ls), mc.Map(), nil
}

// SignThrough makes a log sign a tree that ends in leaf, as a hostile
// operator can (a monitor's tests): leaf is sequenced after the k leaves
// of the checkpoint log holds over st and integrated (the integrator
// appends its own map leaf after it), and a checkpoint of the k+1 leaves
// through leaf is signed with signer, the log's. It returns that note and
// k. The log's handler serves the hash tiles and entry bundles of that
// tree (at width k+1); serve the note as the checkpoint.
func SignThrough(ctx context.Context, st *MemStorage, log *translog.Log, signer *translog.Signer, leaf []byte) ([]byte, uint64, error) {
	leaves, _, err := Leaves(ctx, st, log)
	if err != nil {
		return nil, 0, err
	}
	k := uint64(len(leaves))
	if n, _ := st.Leaves(ctx, 0, k+1); uint64(len(n)) != k {
		return nil, 0, fmt.Errorf("translogtest: leaves are waiting to be integrated")
	}
	st.Add(leaf)
	if _, err := log.Integrate(ctx); err != nil {
		return nil, 0, err
	}
	if got, _ := st.Leaves(ctx, k, k+1); len(got) != 1 || !bytes.Equal(got[0], leaf) {
		return nil, 0, fmt.Errorf("translogtest: leaf %d is not the one to sign through", k)
	}
	r := (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)
	for _, l := range append(leaves, leaf) {
		if err := r.Append(rfc6962.DefaultHasher.HashLeaf(l), nil); err != nil {
			return nil, 0, err
		}
	}
	root, err := r.GetRootHash(nil)
	if err != nil {
		return nil, 0, err
	}
	c := translog.Checkpoint{Origin: signer.Origin(), Size: k + 1}
	copy(c.Hash[:], root)
	signed, err := signer.Sign(c)
	return signed, k, err
}
