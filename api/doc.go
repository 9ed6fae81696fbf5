// Package api holds the one definition of every request and response body
// of the Enigm Command API (docs/design/command-api.md, api/openapi.yaml),
// shared by the server (command), the device client (client), the admin
// CLI and the load tool. Each type has a Validate method that checks what
// its fields must hold (presence, sizes, id formats) and says which field
// is wrong.
//
// # Encodings
//
// Bodies are JSON (MediaJSON) except on the endpoints that carry chain
// links, enrollment bodies and approval signatures — account creation,
// link appends, enrollment and recovery — which also take and, when the
// request's Accept header names it, answer MediaCBOR: the same types as
// deterministic CBOR maps with small integer keys (the cbor tags), encoded
// and decoded strictly with internal/wire, so a link travels as its own
// bytes instead of base64 inside JSON. [DecodeJSON] is the strict JSON
// decoder of request bodies (unknown, duplicate and case-folded keys are
// refused); [MarshalCBOR] and [UnmarshalCBOR] are the CBOR codec.
//
// In JSON, []byte fields are standard base64 with padding, ids lowercase
// hex and times RFC 3339 UTC in whole seconds; in CBOR, []byte fields are
// byte strings and times integer Unix seconds.
//
// The package imports chain (for sizes, ids and the policy conversion)
// and internal/wire, never the server: devices link it through client.
package api
