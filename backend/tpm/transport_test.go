package tpm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"

	"github.com/enigm/enigm/internal/testkit"
)

// serveSim relays raw TPM commands from ln to the simulator, as swtpm's
// server sockets do. With oneShot, each connection carries one command.
func serveSim(t *testing.T, ln net.Listener, oneShot bool) {
	t.Helper()
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				for {
					hdr := make([]byte, 10)
					if _, err := io.ReadFull(c, hdr); err != nil {
						return
					}
					n := binary.BigEndian.Uint32(hdr[2:6])
					if n < 10 || n > 1<<16 {
						return
					}
					cmd := make([]byte, n)
					copy(cmd, hdr)
					if _, err := io.ReadFull(c, cmd[10:]); err != nil {
						return
					}
					rsp, err := simConn{}.Send(cmd)
					if err != nil {
						return
					}
					if _, err := c.Write(rsp); err != nil || oneShot {
						return
					}
				}
			}()
		}
	}()
}

// roundTrip provisions, seals, unseals, signs and destroys through b.
func roundTrip(t *testing.T, b *Backend) {
	t.Helper()
	st := mustProvision(t, b)
	s := mustOpen(t, b, st)
	got, err := s.Unseal(ctx, "l", mustSeal(t, s, "l", key32))
	if err != nil || !bytes.Equal(got, key32) {
		t.Fatalf("unseal: %x, %v", got, err)
	}
	testkit.NoErr(t, b.Destroy(ctx, st))
}

func TestDeviceTCP(t *testing.T) {
	startSim(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveSim(t, ln, false)
	b, err := New(Options{Device: "tcp:" + ln.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, b)
}

func TestDeviceUnix(t *testing.T) {
	startSim(t)
	path := filepath.Join(t.TempDir(), "swtpm.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	serveSim(t, ln, true)
	b, err := New(Options{Device: "unix:" + path})
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, b)
}

// A TCP peer that answers with an absurd response size is refused.
func TestDeviceTCPBadResponse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.ReadFull(c, make([]byte, 10))
				c.Write([]byte{0x80, 0x01, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
			}()
		}
	}()
	conn, err := dialRaw(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Send([]byte{0x80, 0x01, 0, 0, 0, 10, 0, 0, 1, 0x7b}); err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("err = %v, want a size error", err)
	}
}

// "Not now" answers (TPM_RC_RETRY, _YIELDED, _TESTING) make the backend
// send the same command again.
func TestRetry(t *testing.T) {
	calls := 0
	r := retrying{fakeTPM(func(cmd []byte) []byte {
		calls++
		if calls < 3 {
			return []byte{0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x09, 0x22} // TPM_RC_RETRY
		}
		return []byte{0x80, 0x01, 0, 0, 0, 10, 0, 0, 0, 0}
	})}
	rsp, err := r.Send([]byte{0x80, 0x01, 0, 0, 0, 10, 0, 0, 1, 0x7b})
	if err != nil || calls != 3 || !bytes.Equal(rsp[6:], []byte{0, 0, 0, 0}) {
		t.Fatalf("calls %d, rsp %x, err %v", calls, rsp, err)
	}
}

type fakeTPM func([]byte) []byte

func (f fakeTPM) Send(cmd []byte) ([]byte, error) { return f(cmd), nil }
func (fakeTPM) Close() error                      { return nil }
