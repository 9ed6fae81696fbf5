package tpm

import (
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
