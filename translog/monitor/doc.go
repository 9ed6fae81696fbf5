// Package monitor follows an Enigm transparency log from its tlog-tiles
// alone and checks what the log's operator (Enigm Command) cannot be
// trusted to check on its own behalf.
//
// # What it checks
//
//   - Every checkpoint verifies under all of the log's pinned keys
//     (Ed25519 and ML-DSA-44, translog.VerifyCheckpoint).
//   - Every new checkpoint is consistent with the last one it verified: a
//     smaller tree is a rollback, another root at the same size or a
//     failing consistency proof (built from the log's hash tiles, checked
//     with transparency-dev/merkle) a fork.
//   - The entry bundles hash to the checkpoint's root: leaves are hashed
//     into a compact range kept in the store, and each chunk of leaves is
//     proved a prefix of the checkpoint's tree before any of it is used;
//     the hash tiles hold the hashes those leaves give.
//   - Every leaf is a chain link that chain.Apply accepts after the
//     account's previous links, or a map-root leaf (enigm.map/v1) whose
//     size is its own index; two leaves at one (account, sequence) are
//     reported, whatever their bytes.
//   - The checkpoint is not stale: its served bytes have not stayed the
//     same for longer than MaxAge, and (with witness keys) its newest
//     verified witness cosignature is at most MaxAge old.
//
// Comparing a map-root leaf's root with the heads replayed is delegated
// to a [MapChecker]; without one only the leaf's form and size are checked.
//
// # State
//
// A [Store] (SQLite in a directory) keeps the pinned origin and keys, the
// last verified checkpoint, the compact range of the leaves verified so
// far, and per account its head and the indices of its leaves. Account
// states (chain.State) are cached in memory up to a bound and rebuilt on
// demand by re-reading only that account's leaves, authenticated by the
// stored head hash. A monitor resumes where it stopped.
//
// # Output
//
// Each finding is a [Finding] passed to Config.Report; catch-up progress
// goes to Config.Progress.
package monitor
