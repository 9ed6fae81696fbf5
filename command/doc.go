// Package command is Enigm Command, the server of the Enigm key management
// system: it keeps each account's device chain, runs the enrollment,
// revocation, rotation, replacement and recovery workflows, administers
// organisations, and relays opaque envelopes only to eligible devices. It
// holds public material only. The API is docs/design/command-api.md
// (normative) and api/openapi.yaml; the design is docs/design/command.md.
//
// # Running a server
//
// [New] opens (and migrates) the database of a [Config] — SQLite in
// Config.DataDir by default, PostgreSQL with Config.DatabaseURL — and
// returns a [Server]. [Server.Handler] is its http.Handler (for tests and
// embedding); [Server.Serve] serves a listener until its context ends and
// then shuts down gracefully; [Server.Close] closes the database.
//
// # Trust
//
// Every link is verified with the chain package before it is stored, at the
// server's clock with a maximum link age. Chains loaded from the database
// are verified again (cached per account by head): a stored chain that
// does not verify is never used, and requests that need it get 500
// integrity. Every authenticated device request re-checks that the device
// is active at the account's current verified head.
//
// # Organisations
//
// [CreateOrg] and [CreateInvite] run on a server's data (the
// `enigm-command org` commands). Organisation admin keys live in Command's
// own keystore in Config.DataDir, opened for each signing operation, and
// never in the database; admin tokens and invite codes are stored hashed.
//
// # Errors
//
// API errors carry a stable code (bad_request, unauthorized,
// device_revoked, forbidden, not_found, conflict, not_on_chain, name_taken, too_early,
// expired, too_large, chain_rejected, policy_rejected, rate_limited,
// integrity, internal, unavailable, and for a refused message form
// malformed_message, sender_mismatch, unknown_recipient); a chain_rejected answer names the
// [chain.Code] in "chain_error" by its wire name (e.g. no_device_approval).
package command
