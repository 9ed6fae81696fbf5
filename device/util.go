package device

import (
	"encoding/base64"
	"fmt"
	"os"
	"time"

	"github.com/enigm/enigm/chain"
)

// linkTime dates a link that follows st: this device's clock, or the head's
// time when the head is dated later (this clock is behind, or the head was
// dated ahead within Command's skew). A later link may not be older than
// its predecessor, so dating at max(now, head time) keeps a revocation or a
// veto appendable after any link the chain accepted (docs/design/chain.md
// §3.1).
func (a *Agent) linkTime(st *chain.State) time.Time {
	now := a.now()
	if ht := st.Time(); now.Before(ht) {
		return ht
	}
	return now
}

func decodeB64(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("device: malformed base64 from the server")
	}
	return b, nil
}

var osHostname = os.Hostname

func encodeB64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
