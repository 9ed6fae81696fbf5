package monitor

import (
	"time"

	"github.com/enigm/enigm/chain"
)

// Kind names what a Finding is about. The names are stable: they are
// the "kind" of the monitor's JSON lines.
type Kind string

// Kinds of findings, and the one progress event.
const (
	// KindCheckpoint is not a finding: a new checkpoint was verified and
	// consistent with the previous one (progress).
	KindCheckpoint Kind = "checkpoint"
	// KindBadSignature: the served checkpoint does not verify under every
	// pinned log key (forged, stripped of a signature, another log's).
	KindBadSignature Kind = "bad_signature"
	// KindInconsistent: the served checkpoint is not an extension of the
	// last verified one (Reason "rollback": a smaller tree; "fork": the
	// same size with another root, or a consistency proof that fails).
	KindInconsistent Kind = "inconsistent_checkpoint"
	// KindBadEntryBundle: entry bundles whose leaves do not hash to the
	// verified checkpoint's tree (for a chunk before the checkpoint's last,
	// this can also be hash tiles that give no valid consistency proof
	// for correct leaves: the message carries the proof's error), a
	// malformed bundle, or a bundle that serves other bytes than when they
	// were verified.
	KindBadEntryBundle Kind = "bad_entry_bundle"
	// KindBadTile: a hash tile whose hashes differ from those the
	// verified leaves give (Index: the first node's index at its level);
	// the log's proofs built from it fail.
	KindBadTile Kind = "bad_tile"
	// KindLinkInvalid: a leaf in the verified tree that is not a link
	// chain.Apply accepts after its account's previous links (Code is the
	// chain error code, such as bad_signature or sequence).
	KindLinkInvalid Kind = "link_invalid"
	// KindDuplicateLink: a second leaf at one (account, sequence);
	// FirstIndex is the leaf that holds it first.
	KindDuplicateLink Kind = "duplicate_link"
	// KindMapLeafInvalid: a map leaf (enigm.map/v1) that is malformed
	// (Reason "malformed"), names another index than its own ("size"),
	// or commits to another map than the links before it give ("root":
	// the MapChecker refused it); or a verified checkpoint whose last leaf
	// is not a map leaf ("missing").
	KindMapLeafInvalid Kind = "map_leaf_invalid"
	// KindStale: the checkpoint is older than MaxAge (Reason "unchanged":
	// the same bytes served for longer; "witness": no verified witness
	// cosignature within MaxAge).
	KindStale Kind = "stale_checkpoint"
)

// Finding is one thing the monitor reports. Fields that do not apply are
// zero (pointers nil).
type Finding struct {
	Kind    Kind
	Message string
	Reason  string

	// Size and Root: the served checkpoint the finding is about.
	Size uint64
	Root []byte
	// PreviousSize and PreviousRoot: the last verified checkpoint.
	PreviousSize uint64
	PreviousRoot []byte

	// Index: the leaf (or the first leaf of the bundle) concerned.
	Index *uint64
	// FirstIndex: for a duplicate link, the leaf that came first.
	FirstIndex *uint64
	Account    *chain.AccountID
	Seq        *uint64
	// Code: for an invalid link, the chain error code name.
	Code string

	// Since: for a stale checkpoint, the time it dates from (first seen
	// unchanged, or its newest witness cosignature; zero if it has none).
	Since time.Time
}

// IsProblem reports whether f is a finding rather than a progress event.
func (f Finding) IsProblem() bool { return f.Kind != KindCheckpoint }

// Progress is the state of a catch-up.
type Progress struct {
	Done, Total uint64  // leaves verified and leaves in the target checkpoint
	Rate        float64 // leaves per second in this run
}

func u64(v uint64) *uint64 { return &v }
