package device

import (
	"encoding/base64"
	"fmt"
	"os"
)

func decodeB64(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("device: malformed base64 from the server")
	}
	return b, nil
}

var osHostname = os.Hostname

func encodeB64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
