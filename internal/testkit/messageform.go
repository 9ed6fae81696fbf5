package testkit

import (
	"testing"

	"github.com/enigm/enigm/internal/wire"
)

// MessageForm is the wire fields of envelope's message form (version 4,
// envelope/envelope.go's wMessage), for the tests of other packages that
// play a sender, a relay or a network that rewrites them. (testkit cannot
// import envelope, whose own tests import testkit; envelope's tests use
// envelope.MessageWire.)
type MessageForm struct {
	Version uint8    `cbor:"0,keyasint"`
	Header  []byte   `cbor:"1,keyasint"`
	Body    []byte   `cbor:"2,keyasint"`
	Sig     []byte   `cbor:"3,keyasint"`
	Entries [][]byte `cbor:"4,keyasint"`
}

// EditMessageForm decodes the message form msg, applies change and
// encodes it again. A msg that does not decode fails the test.
func EditMessageForm(t testing.TB, msg []byte, change func(*MessageForm)) []byte {
	t.Helper()
	var f MessageForm
	NoErr(t, wire.Unmarshal(msg, &f, 0))
	change(&f)
	return Must(wire.Marshal(&f))
}
