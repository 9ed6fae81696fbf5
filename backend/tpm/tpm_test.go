package tpm

import (
	"os"
	"testing"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/backendtest"
)

func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		return track(t, newSim(t, Options{}))
	})
}

func TestConformancePCR(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		return track(t, newSim(t, Options{PCRs: []int{0, 7, 16}}))
	})
}

// TestConformanceDevice runs the suite against a real TPM (or swtpm) when
// ENIGM_TPM_DEVICE names one ("/dev/tpmrm0", "unix:/path", "tcp:host:port").
// It is opt-in: the WrongSecret case costs one dictionary-attack try on
// that TPM. Every store it provisions is destroyed afterwards.
func TestConformanceDevice(t *testing.T) {
	dev := os.Getenv("ENIGM_TPM_DEVICE")
	if dev == "" {
		t.Skip("set ENIGM_TPM_DEVICE to run the suite against a real TPM") // opt-in tier, not a missing component
	}
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		b, err := New(Options{Device: dev})
		if err != nil {
			t.Fatal(err)
		}
		return track(t, b)
	})
}
