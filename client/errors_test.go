package client

import (
	"errors"
	"net/http"
	"testing"

	"github.com/enigm/enigm/chain"
)

// TestDecodeChainError: the client reads "chain_error" as a chain code's
// wire name through chain's one table, and names it so in the message.
func TestDecodeChainError(t *testing.T) {
	decode := func(name string) *APIError {
		t.Helper()
		raw := []byte(`{"error":{"code":"chain_rejected","message":"m","chain_error":"` + name + `"}}`)
		var ae *APIError
		if !errors.As(decodeError(&http.Response{StatusCode: 422, Header: http.Header{}}, raw), &ae) {
			t.Fatal("not an APIError")
		}
		return ae
	}
	for _, c := range chain.Codes() {
		ae := decode(c.String())
		if got, ok := ae.ChainCode(); !ok || got != c || ae.ChainError != c.String() {
			t.Errorf("%s: ChainCode() = %v, %v (ChainError %q)", c.String(), got, ok, ae.ChainError)
		}
	}
	ae := decode("no_device_approval")
	if want := "server: m (422 chain_rejected) [no_device_approval]"; ae.Error() != want {
		t.Errorf("Error() = %q, want %q", ae.Error(), want)
	}
	// An old Go identifier or a name from a newer server is kept as sent
	// but is no code of this build.
	for _, name := range []string{"ErrNoDeviceApproval", "some_future_code", ""} {
		if c, ok := decode(name).ChainCode(); ok {
			t.Errorf("%q decoded as code %v", name, c)
		}
	}
	if errors.Is(decode("stale"), chain.ErrStale) {
		t.Error("a server's chain_error matches a local chain error under errors.Is")
	}
}
