package client

import (
	"context"

	"github.com/enigm/enigm/api"
)

// Send hands one message to the relay in its message form
// (envelope.SealMessage's Outgoing.Message: the header, body and
// signature once, one entry per device), as application/cbor. The relay
// splits it into each device's envelope and reports which devices it
// queued for and which it rejected (not active at their account's current
// head). A message the relay refuses whole comes back as an *APIError
// whose Code is api.CodeMalformedMessage, api.CodeSenderMismatch,
// api.CodeUnknownRecipient or api.CodeNotOnChain; nothing of it was
// queued.
func (c *Client) Send(ctx context.Context, message []byte) (accepted []string, rejected []Rejected, err error) {
	var r api.SendResult
	err = c.doCBOR(ctx, "POST", "/v1/messages", true, &api.SendMessage{Message: message}, &r)
	return r.Accepted, r.Rejected, err
}
