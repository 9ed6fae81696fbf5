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
//     account's previous links, or a map leaf (enigm.map/v1) that names
//     its own index and commits to the sparse Merkle map (translog/smap)
//     of every account's last link in log order among the leaves before
//     it; two leaves at one (account, sequence) are reported, whatever
//     their bytes.
//   - Every checkpoint ends in its map leaf (translog.CheckCheckpointLeaf),
//     what a freshness proof is made from.
//   - The checkpoint is not stale: its served bytes have not stayed the
//     same for longer than MaxAge, and (with witness keys) its newest
//     verified witness cosignature is at most MaxAge old.
//
// The map root is compared by a [MapChecker]; the default keeps the map
// in memory and updates it, at each map leaf, with the accounts changed
// since the previous one.
//
// # State
//
// A [Store] (SQLite in a directory) keeps the pinned origin and keys, the
// last verified checkpoint, the compact range of the leaves verified so
// far, per account its head and the indices of its leaves, and, where an
// account's last link in log order is one it refused, that link's head
// (the log's map holds it). The map is rebuilt from these heads at the
// first map leaf of each run, not stored. Account
// states (chain.State) are cached in memory up to a bound and rebuilt on
// demand by re-reading only that account's leaves, authenticated by the
// stored head hash. A monitor resumes where it stopped.
//
// # Output
//
// Each finding is a [Finding] passed to Config.Report; catch-up progress
// goes to Config.Progress.
package monitor
