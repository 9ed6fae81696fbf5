package api

import (
	"fmt"

	"github.com/enigm/enigm/translog/smap"
)

// Bounds of the log proof answers.
const (
	// MaxProofHashes bounds an inclusion or consistency proof: a tree of
	// at most 2^63 leaves needs at most 2·63 hashes.
	MaxProofHashes = 128
	// MaxCheckpointSize bounds the signed checkpoint an answer carries
	// (the log's two signatures and witness cosignatures).
	MaxCheckpointSize = 64 << 10
	// logHashSize is the size of an RFC 6962 SHA-256 node hash.
	logHashSize = 32
)

// InclusionProof is GET /v1/accounts/{id}/links/{seq}/proof: the leaf
// index of the link (account, seq) in the transparency log and its RFC
// 6962 inclusion proof in the tree of TreeSize leaves. Checkpoint is the
// log's newest signed checkpoint (c2sp.org/tlog-checkpoint, the note with
// its signature lines) when the answer was made; TreeSize is its size
// unless the request asked for a smaller tree (?size=).
type InclusionProof struct {
	Checkpoint string   `json:"checkpoint"`
	LeafIndex  uint64   `json:"leaf_index"`
	TreeSize   uint64   `json:"tree_size"`
	Proof      [][]byte `json:"proof"`
}

// Validate checks the shape: the leaf inside the tree, at most
// MaxProofHashes hashes of 32 bytes, a checkpoint of bounded size. It
// does not verify anything; the client checks the proof against the
// checkpoint it verified.
func (p InclusionProof) Validate() error {
	if p.LeafIndex >= p.TreeSize {
		return fmt.Errorf("inclusion proof: leaf %d is not inside a tree of %d leaves", p.LeafIndex, p.TreeSize)
	}
	return checkLogProof("inclusion proof", p.Checkpoint, p.Proof)
}

// ConsistencyProof is GET /v1/log/consistency: the RFC 6962 consistency
// proof from the tree of From leaves to the tree of To leaves, with the
// log's newest signed checkpoint (To is its size unless the request asked
// for a smaller tree).
type ConsistencyProof struct {
	Checkpoint string   `json:"checkpoint"`
	From       uint64   `json:"from"`
	To         uint64   `json:"to"`
	Proof      [][]byte `json:"proof"`
}

// Validate checks the shape: From ≤ To, at most MaxProofHashes hashes of
// 32 bytes, a checkpoint of bounded size.
func (p ConsistencyProof) Validate() error {
	if p.From > p.To {
		return fmt.Errorf("consistency proof: from %d is after to %d", p.From, p.To)
	}
	return checkLogProof("consistency proof", p.Checkpoint, p.Proof)
}

func checkLogProof(what, checkpoint string, proof [][]byte) error {
	if checkpoint == "" || len(checkpoint) > MaxCheckpointSize {
		return fmt.Errorf("%s: the checkpoint must be 1 to %d bytes", what, MaxCheckpointSize)
	}
	if len(proof) > MaxProofHashes {
		return fmt.Errorf("%s: %d hashes, at most %d", what, len(proof), MaxProofHashes)
	}
	for i, h := range proof {
		if len(h) != logHashSize {
			return fmt.Errorf("%s: hash %d is %d bytes, want %d", what, i, len(h), logHashSize)
		}
	}
	return nil
}

// Freshness is GET /v1/accounts/{id}/freshness: the proof that Head is
// the account's newest link as of the log's newest checkpoint (or, Head
// absent, that the log holds no link of it). The checkpoint's last leaf,
// index MapIndex = TreeSize-1, is the map leaf "enigm.map/v1\n" MapIndex
// "\n" base64(MapRoot) "\n"; Inclusion is its RFC 6962 inclusion proof in
// the tree of TreeSize leaves; MapProof is the sparse Merkle map proof
// (translog/smap encoding) of the account under MapRoot
// (docs/design/translog.md, "Freshness").
type Freshness struct {
	Checkpoint string   `json:"checkpoint"`
	TreeSize   uint64   `json:"tree_size"`
	MapIndex   uint64   `json:"map_index"`
	MapRoot    []byte   `json:"map_root"`
	Inclusion  [][]byte `json:"inclusion"`
	Head       *Head    `json:"head,omitempty"`
	MapProof   []byte   `json:"map_proof"`
}

// Validate checks the shape: the map leaf inside the tree, a 32-byte
// root, bounded proofs, a valid head if any. That the map leaf is the
// last leaf, and every proof, the client checks against the checkpoint it
// verified.
func (f Freshness) Validate() error {
	if f.MapIndex >= f.TreeSize {
		return fmt.Errorf("freshness proof: map leaf %d is not inside a tree of %d leaves", f.MapIndex, f.TreeSize)
	}
	if len(f.MapRoot) != logHashSize {
		return fmt.Errorf("freshness proof: the map root is %d bytes, want %d", len(f.MapRoot), logHashSize)
	}
	if len(f.MapProof) == 0 || len(f.MapProof) > smap.MaxProofSize {
		return fmt.Errorf("freshness proof: the map proof must be 1 to %d bytes", smap.MaxProofSize)
	}
	if f.Head != nil {
		if err := f.Head.Validate(); err != nil {
			return fmt.Errorf("freshness proof: %w", err)
		}
	}
	return checkLogProof("freshness proof", f.Checkpoint, f.Inclusion)
}
