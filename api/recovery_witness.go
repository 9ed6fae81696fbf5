package api

import (
	"fmt"
	"time"
)

// RecoveryWitness is GET /v1/recoveries/{rid}/witness: Command's evidence
// that the recovery_request link rid was public at a witnessed time, the
// first checkpoint it kept that includes the request leaf and carries a
// valid cosignature of every witness Command submits to
// (translog.md, "Recovery on witnessed time"). Checkpoint is that signed
// note with its cosignature lines, LeafIndex the request's leaf, Proof its
// RFC 6962 inclusion proof in the checkpoint's tree. WitnessedAt is when
// Command counts the request witnessed (the newest of those
// cosignatures' timestamps) and NotBefore that plus the waiting period:
// the earliest time by witnessed time Command appends the recover link.
// Both are informational: a device computes its own from the
// cosignatures under its own witness policy and trusts nothing else here.
type RecoveryWitness struct {
	RecoveryID  string    `json:"recovery_id"`
	Checkpoint  string    `json:"checkpoint"`
	LeafIndex   uint64    `json:"leaf_index"`
	Proof       [][]byte  `json:"proof"`
	WitnessedAt time.Time `json:"witnessed_at"`
	NotBefore   time.Time `json:"not_before"`
}

// Validate checks the shape: the id, a checkpoint of bounded size, at
// most MaxProofHashes hashes of 32 bytes. It verifies nothing.
func (w RecoveryWitness) Validate() error {
	if err := checkHex("recovery_id", w.RecoveryID, RecoveryIDSize); err != nil {
		return err
	}
	if w.NotBefore.Before(w.WitnessedAt) {
		return fmt.Errorf("recovery witness: not_before %s is before witnessed_at %s", w.NotBefore.Format(time.RFC3339), w.WitnessedAt.Format(time.RFC3339))
	}
	return checkLogProof("recovery witness", w.Checkpoint, w.Proof)
}
