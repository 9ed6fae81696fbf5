// Package translog is Enigm Command's transparency log: an append-only
// RFC 6962 Merkle tree whose leaves are the canonical bytes of every chain
// link Command accepts, in the order it accepts them, published in the
// C2SP formats that monitors and witnesses already speak.
//
// # Parts
//
//   - [Storage] is where the log lives. Leaves are sequenced by the
//     storage itself, in the database transaction that moves an account's
//     head (command/store implements it over SQLite and PostgreSQL), so a
//     link is never stored without its leaf or the reverse.
//   - [Log.Integrate] takes the sequenced leaves into the Merkle tree with
//     compact ranges (github.com/transparency-dev/merkle), writes the
//     changed hash tiles and a new signed checkpoint in one storage
//     transaction. Any number of instances may call it: the storage
//     serialises them.
//   - [Signer] signs checkpoints (c2sp.org/tlog-checkpoint) as signed notes
//     (c2sp.org/signed-note) with Ed25519 (signature type 0x01, what the
//     public witness network requires) and ML-DSA-44 (a
//     c2sp.org/tlog-cosignature subtree/v1 signature, type 0x06, what C2SP
//     recommends), both under one key name, the log's origin.
//   - [Log.Handler] serves c2sp.org/tlog-tiles: checkpoint, tile/<L>/<N>,
//     tile/entries/<N>, and their partial .p/<W> forms.
//   - [Log.InclusionProof] and [Log.ConsistencyProof] build RFC 6962 proofs
//     from the stored tiles; [VerifyCheckpoint] checks a checkpoint's
//     signatures.
//   - [Proof] is a c2sp.org/tlog-proof@v1, a leaf's offline proof of
//     inclusion ([Log.Proof] builds one, [ParseProof] reads its one
//     spelling, [Proof.Verify] checks it under the log's keys and an
//     optional [WitnessQuorum]).
//   - Freshness: Integrate keeps a sparse Merkle map (package smap) of
//     every account's newest link and appends, as the last leaf of every
//     checkpoint, a map leaf ([MapLeaf]) committing to its root.
//     [Log.Freshness] proves an account's newest head (or its absence) at
//     the newest checkpoint, [VerifyFreshness] checks such a proof, and
//     [MapChecker] / [CheckMapLeaves] recompute the map from the leaves,
//     as a monitor does.
//
// The device's checks live in package client (SyncLog, VerifyInclusion,
// VerifyFreshness); the monitor that follows a log from its tiles is
// translog/monitor.
package translog
