package client

import (
	"fmt"

	"github.com/enigm/enigm/internal/redact"
)

// The client holds a bearer token; it prints nothing of it, whatever the
// verb (internal/redact).
func (*Client) Format(f fmt.State, _ rune) { redact.Format(f, "client.Client") }
