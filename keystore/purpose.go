package keystore

import (
	"errors"
	"fmt"
	"strings"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/hybrid"
)

// Purpose is what a signature by an identity or binding key is for. The set
// is closed: the protocol's own purposes (PurposeEnvelope, PurposeAuthToken)
// and application purposes made by AppPurpose, all of them outside the
// chain's contexts. A chain link or approval is signed only through a
// chain.Request (IdentityKey.ChainSigner, BindingKey.ChainSigner), which only
// package chain can make; no Purpose reaches a chain context.
//
// The zero Purpose is refused.
type Purpose struct{ name string } // the context is "enigm/v1/" + name

// The protocol's purposes.
var (
	// PurposeEnvelope: a device signing an envelope it sends (package
	// envelope).
	PurposeEnvelope = Purpose{"envelope"}
	// PurposeAuthToken: a device answering the server's login challenge.
	PurposeAuthToken = Purpose{"auth/token"}
)

// ErrPurpose reports a purpose that is not in the closed set (the zero
// Purpose, or an application label that does not parse).
var ErrPurpose = errors.New("keystore: signing purpose refused")

// AppPurpose returns the application purpose label: signing context
// "enigm/v1/app/<label>", which no protocol signature uses. label is 1-60
// characters of [a-z0-9_.-/].
func AppPurpose(label string) (Purpose, error) {
	if len(label) > 60 {
		return Purpose{}, fmt.Errorf("%w: application purpose %q is longer than 60 characters", ErrPurpose, label)
	}
	if _, err := hybrid.Context(label); err != nil {
		return Purpose{}, fmt.Errorf("%w: application purpose: %v", ErrPurpose, err)
	}
	return Purpose{"app/" + label}, nil
}

// String returns the purpose's name after "enigm/v1/".
func (p Purpose) String() string { return p.name }

// context returns the signing context, refusing the zero Purpose (and so
// anything that did not come from this file).
func (p Purpose) context() (string, error) {
	switch {
	case p == PurposeEnvelope, p == PurposeAuthToken, strings.HasPrefix(p.name, "app/"):
		return hybrid.Context(p.name)
	}
	return "", fmt.Errorf("%w: %q is not a signing purpose (use AppPurpose)", ErrPurpose, p.name)
}

// Sealing is what a KEM key opens: it fixes the HPKE info label, so that
// what was sealed for one purpose opens for no other and a caller cannot
// choose the context. A session key sealed for a message or a call opens
// only into a session key inside the keystore (KEMKey.OpenSession), never
// into bytes; application data opens only as application data
// (KEMKey.OpenData).
type Sealing uint8

// Sealings. Values are never reordered.
const (
	SealMessageKey Sealing = 1 // a message's session key: "enigm/v1/kem/message-key"
	SealCallKey    Sealing = 2 // a call's session key: "enigm/v1/kem/call-key"
	SealAppData    Sealing = 3 // application data: "enigm/v1/kem/app-data"
)

func (s Sealing) String() string {
	switch s {
	case SealMessageKey:
		return "message-key"
	case SealCallKey:
		return "call-key"
	case SealAppData:
		return "app-data"
	}
	return fmt.Sprintf("sealing(%d)", uint8(s))
}

// info returns the HPKE info: "enigm/v1/kem/<sealing>" 0x00 || binding.
func (s Sealing) info(binding []byte) ([]byte, error) {
	if s < SealMessageKey || s > SealAppData {
		return nil, fmt.Errorf("%w: unknown sealing %d", ErrPurpose, uint8(s))
	}
	b := append([]byte("enigm/v1/kem/"+s.String()), 0)
	return append(b, binding...), nil
}

func (s Sealing) sessionKey() bool { return s == SealMessageKey || s == SealCallKey }

var (
	_ chain.RequestSigner        = (*chainSigner)(nil)
	_ chain.BindingRequestSigner = (*bindingChainSigner)(nil)
)
