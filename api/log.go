package api

import "fmt"

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
