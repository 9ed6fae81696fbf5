package tpm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"
	"github.com/google/go-tpm/tpm2/transport/linuxudstpm"
)

// DefaultDevice is the kernel's resource-managed TPM device.
const DefaultDevice = "/dev/tpmrm0"

// opener returns how to reach the TPM named by device:
//
//	""                  /dev/tpmrm0
//	"/dev/…" or a path  a TPM character device
//	"unix:/path"        swtpm's UnixIO server socket (raw TPM commands)
//	"tcp:host:port"     swtpm's TCP server socket (raw TPM commands)
func opener(device string) (func() (transport.TPMCloser, error), error) {
	switch {
	case device == "":
		return func() (transport.TPMCloser, error) { return linuxtpm.Open(DefaultDevice) }, nil
	case strings.HasPrefix(device, "unix:"):
		path := strings.TrimPrefix(device, "unix:")
		if path == "" {
			return nil, errors.New("tpm: empty socket path in device \"unix:\"")
		}
		return func() (transport.TPMCloser, error) { return linuxudstpm.Open(path) }, nil
	case strings.HasPrefix(device, "tcp:"):
		addr := strings.TrimPrefix(device, "tcp:")
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("tpm: device %q: want tcp:host:port: %w", device, err)
		}
		return func() (transport.TPMCloser, error) { return dialRaw(addr) }, nil
	case strings.Contains(device, ":"):
		return nil, fmt.Errorf("tpm: unknown device scheme in %q (want a path, unix:PATH or tcp:HOST:PORT)", device)
	default:
		return func() (transport.TPMCloser, error) { return linuxtpm.Open(device) }, nil
	}
}

// Bounds for the raw TCP transport.
const (
	tpmHeaderSize   = 10
	maxResponseSize = 64 << 10
	commandTimeout  = 5 * time.Minute // key generation on slow TPMs takes seconds
)

// rawConn sends raw TPM commands over TCP, one connection per command:
// swtpm's server socket serves one client at a time, so a connection held
// by one session would block every other.
type rawConn struct{ addr string }

func dialRaw(addr string) (transport.TPMCloser, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	c.Close()
	return &rawConn{addr: addr}, nil
}

func (r *rawConn) Send(cmd []byte) ([]byte, error) {
	c, err := net.DialTimeout("tcp", r.addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(commandTimeout)); err != nil {
		return nil, err
	}
	if _, err := c.Write(cmd); err != nil {
		return nil, err
	}
	hdr := make([]byte, tpmHeaderSize)
	if _, err := io.ReadFull(c, hdr); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(hdr[2:6])
	if size < tpmHeaderSize || size > maxResponseSize {
		return nil, fmt.Errorf("tpm: response size %d out of bounds", size)
	}
	rsp := make([]byte, size)
	copy(rsp, hdr)
	if _, err := io.ReadFull(c, rsp[tpmHeaderSize:]); err != nil {
		return nil, err
	}
	return rsp, nil
}

func (r *rawConn) Close() error { return nil }

// Response codes after which the TPM did not run the command and the same
// command bytes may be sent again (TPM 2.0 Part 2, 6.6.3).
const (
	rcYielded = 0x908
	rcTesting = 0x90A
	rcRetry   = 0x922
)

// retrying resends a command while the TPM answers "not now".
type retrying struct{ transport.TPMCloser }

const maxRetries = 50

func (r retrying) Send(cmd []byte) ([]byte, error) {
	for i := 0; ; i++ {
		rsp, err := r.TPMCloser.Send(cmd)
		if err != nil || len(rsp) < tpmHeaderSize || i == maxRetries {
			return rsp, err
		}
		switch binary.BigEndian.Uint32(rsp[6:10]) {
		case rcYielded, rcTesting, rcRetry:
			time.Sleep(time.Duration(min(i+1, 20)) * 5 * time.Millisecond)
		default:
			return rsp, nil
		}
	}
}
