package translogtest

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"time"
)

// Cosign returns the Ed25519 cosignature/v1 line (c2sp.org
// tlog-cosignature) of a witness named name, key priv, at time at, over
// the signed checkpoint signed, and the witness's verifier key (type
// 0x04): for tests of what reads cosignatures, without a witness process.
func Cosign(name string, priv ed25519.PrivateKey, at time.Time, signed []byte) (line []byte, vkey string) {
	pub := priv.Public().(ed25519.PublicKey)
	id := keyID(name, 0x04, pub)
	text := signed[:bytes.Index(signed, []byte("\n\n"))+1]
	ts := uint64(at.Unix())
	msg := fmt.Appendf(nil, "cosignature/v1\ntime %d\n%s", ts, text)
	sig := binary.BigEndian.AppendUint32(nil, id)
	sig = binary.BigEndian.AppendUint64(sig, ts)
	sig = append(sig, ed25519.Sign(priv, msg)...)
	line = fmt.Appendf(nil, "— %s %s\n", name, base64.StdEncoding.EncodeToString(sig))
	vkey = fmt.Sprintf("%s+%08x+%s", name, id, base64.StdEncoding.EncodeToString(append([]byte{0x04}, pub...)))
	return line, vkey
}
