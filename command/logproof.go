package command

import (
	"errors"
	"math"
	"net/http"
	"strconv"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/command/store"
	"github.com/enigm/enigm/translog"
	"github.com/enigm/enigm/translog/smap"
)

// The log's proofs over the API, for devices: they check them against a
// checkpoint they verified themselves (translog.md). Both answers carry
// the newest checkpoint, so one request is enough to check a link.

// noLog answers the proof endpoints of a server that publishes no log.
func noLog() *apiError { return notFound("this server publishes no transparency log") }

// logCheckpoint returns the newest signed checkpoint.
func (s *Server) logCheckpoint(r *http.Request) ([]byte, translog.Checkpoint, *apiError) {
	signed, c, err := s.tlog.log.Checkpoint(r.Context())
	if errors.Is(err, translog.ErrNotFound) {
		return nil, c, errorf(http.StatusServiceUnavailable, "unavailable", "the log has no checkpoint yet; try again in a second")
	}
	if err != nil {
		return nil, c, internal(err)
	}
	return signed, c, nil
}

// treeSize reads the optional ?name= tree size, at most the checkpoint's.
func treeSize(r *http.Request, name string, c translog.Checkpoint) (uint64, *apiError) {
	v, e := queryInt(r, name, -1, 0, math.MaxInt64)
	if e != nil {
		return 0, e
	}
	if v < 0 {
		return c.Size, nil
	}
	if uint64(v) > c.Size {
		return 0, badRequest("%s=%d is beyond the newest checkpoint (%d leaves)", name, v, c.Size)
	}
	return uint64(v), nil
}

// handleLinkProof is GET /v1/accounts/{id}/links/{seq}/proof[?size=N]:
// the leaf index of the link and its inclusion proof in the tree of the
// newest checkpoint (or of N leaves).
func (s *Server) handleLinkProof(w http.ResponseWriter, r *http.Request) *apiError {
	if s.tlog == nil {
		return noLog()
	}
	id := r.PathValue("id")
	if _, e := accountID("account id", id); e != nil {
		return e
	}
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil || seq > chain.MaxSeq {
		return badRequest("seq must be an integer in [0, %d]", uint64(chain.MaxSeq))
	}
	signed, c, e := s.logCheckpoint(r)
	if e != nil {
		return e
	}
	size, e := treeSize(r, "size", c)
	if e != nil {
		return e
	}
	idx, err := s.tlog.ls.LeafIndex(r.Context(), id, seq)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("no link %d of account %s in the log", seq, id)
	}
	if err != nil {
		return storeErr(err)
	}
	if idx >= size {
		return errorf(http.StatusServiceUnavailable, "unavailable", "link %d of account %s is leaf %d, not yet in the tree of %d leaves; try again in a second", seq, id, idx, size)
	}
	p, err := s.tlog.log.InclusionProof(r.Context(), idx, size)
	if err != nil {
		return internal(err)
	}
	writeJSON(w, http.StatusOK, api.InclusionProof{Checkpoint: string(signed), LeafIndex: idx, TreeSize: size, Proof: nonNil(p)})
	return nil
}

// handleConsistency is GET /v1/log/consistency?from=M[&to=N]: the
// consistency proof from the tree of M leaves to the newest checkpoint's
// (or to N leaves).
func (s *Server) handleConsistency(w http.ResponseWriter, r *http.Request) *apiError {
	if s.tlog == nil {
		return noLog()
	}
	if r.URL.Query().Get("from") == "" {
		return badRequest("query parameter from (a tree size) is required")
	}
	signed, c, e := s.logCheckpoint(r)
	if e != nil {
		return e
	}
	from, e := treeSize(r, "from", c)
	if e != nil {
		return e
	}
	to, e := treeSize(r, "to", c)
	if e != nil {
		return e
	}
	if from > to {
		return badRequest("from=%d is after to=%d", from, to)
	}
	p, err := s.tlog.log.ConsistencyProof(r.Context(), from, to)
	if err != nil {
		return internal(err)
	}
	writeJSON(w, http.StatusOK, api.ConsistencyProof{Checkpoint: string(signed), From: from, To: to, Proof: nonNil(p)})
	return nil
}

// nonNil makes an empty proof an empty JSON array rather than null.
func nonNil(p [][]byte) [][]byte {
	if p == nil {
		return [][]byte{}
	}
	return p
}

// handleFreshness is GET /v1/accounts/{id}/freshness: the proof of the
// account's newest link (or its absence) as of the newest checkpoint, for
// a device to check that the head it was shown is the newest
// (translog.Log.Freshness; client.VerifyFreshness).
func (s *Server) handleFreshness(w http.ResponseWriter, r *http.Request) *apiError {
	if s.tlog == nil {
		return noLog()
	}
	id := r.PathValue("id")
	acct, e := accountID("account id", id)
	if e != nil {
		return e
	}
	f, err := s.tlog.log.Freshness(r.Context(), smap.Key(acct))
	if errors.Is(err, translog.ErrNotFound) {
		return errorf(http.StatusServiceUnavailable, "unavailable", "no checkpoint with a map leaf yet (%v); try again in a second", err)
	}
	if err != nil {
		return internal(err)
	}
	out := api.Freshness{Checkpoint: string(f.Checkpoint), TreeSize: f.Size, MapIndex: f.Size - 1,
		MapRoot: f.MapRoot[:], Inclusion: nonNil(f.Inclusion), MapProof: f.Proof.Bytes()}
	if f.Value != nil {
		out.Head = &api.Head{Seq: f.Value.Seq, Hash: chain.Hash(f.Value.Head).String()}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
