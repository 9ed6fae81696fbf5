package chain

// The wire structures: deterministic CBOR through internal/wire, integer map
// keys, one struct per encoded map. Field numbers are the format: never
// renumber or reuse them. docs/design/chain.md shows every one byte by byte.

// linkVersion is the only link format version.
const linkVersion = 1

// suiteV1 is the only cryptographic suite: hybrid Ed25519 + ML-DSA-65
// signatures, HPKE MLKEM768X25519 KEM keys, SHA-256 hashes, P-256 binding
// keys.
const suiteV1 = 1

type wLink struct {
	Version uint64 `cbor:"1,keyasint"`
	Account []byte `cbor:"2,keyasint,omitempty"`
	Seq     uint64 `cbor:"3,keyasint"`
	Prev    []byte `cbor:"4,keyasint,omitempty"`
	Time    uint64 `cbor:"5,keyasint"`
	Type    uint64 `cbor:"6,keyasint"`
	Body    []byte `cbor:"7,keyasint"`
	Sigs    []wSig `cbor:"8,keyasint,omitempty"`
}

type wSig struct {
	Role     uint64     `cbor:"1,keyasint"`
	Signer   []byte     `cbor:"2,keyasint,omitempty"`
	Approval *wApproval `cbor:"3,keyasint,omitempty"`
	Sig      []byte     `cbor:"4,keyasint"`
}

// wApproval is an enrollment approval statement; its encoding is what the
// approving key signs.
type wApproval struct {
	Account  []byte `cbor:"1,keyasint"`
	HeadSeq  uint64 `cbor:"2,keyasint"`
	HeadHash []byte `cbor:"3,keyasint"`
	Nonce    []byte `cbor:"4,keyasint"`
	Pairing  []byte `cbor:"5,keyasint"`
	Body     []byte `cbor:"6,keyasint"`
}

type wDevice struct {
	ID       []byte     `cbor:"1,keyasint"`
	Name     string     `cbor:"2,keyasint"`
	Identity []byte     `cbor:"3,keyasint"`
	KEM      []byte     `cbor:"4,keyasint"`
	Binding  []byte     `cbor:"5,keyasint,omitempty"`
	Level    string     `cbor:"6,keyasint"`
	Evidence *wEvidence `cbor:"7,keyasint,omitempty"`
}

type wEvidence struct {
	Type string `cbor:"1,keyasint"`
	Data []byte `cbor:"2,keyasint"`
}

type wPolicy struct {
	AdminApproval bool   `cbor:"1,keyasint,omitempty"`
	RecoveryDelay uint64 `cbor:"2,keyasint,omitempty"` // seconds
	AdminReview   bool   `cbor:"3,keyasint,omitempty"`
	MinLevel      string `cbor:"4,keyasint,omitempty"`
	Attestation   bool   `cbor:"5,keyasint,omitempty"`
	WitnessPolicy string `cbor:"6,keyasint,omitempty"` // c2sp.org/tlog-policy text
	WitnessMaxAge uint64 `cbor:"7,keyasint,omitempty"` // seconds
}

type wOrg struct {
	ID       string `cbor:"1,keyasint"`
	AdminKey []byte `cbor:"2,keyasint"`
}

type wGenesis struct {
	Suite    uint64  `cbor:"1,keyasint"`
	Device   wDevice `cbor:"2,keyasint"`
	Recovery []byte  `cbor:"3,keyasint"`
	Policy   wPolicy `cbor:"4,keyasint"`
	Org      *wOrg   `cbor:"5,keyasint,omitempty"`
}

type wAddDevice struct {
	Device  wDevice `cbor:"1,keyasint"`
	Nonce   []byte  `cbor:"2,keyasint"`
	Pairing []byte  `cbor:"3,keyasint"`
}

type wRevokeDevice struct {
	ID     []byte `cbor:"1,keyasint"`
	Reason uint64 `cbor:"2,keyasint,omitempty"`
}

type wRotateKeys struct {
	ID       []byte `cbor:"1,keyasint"`
	Identity []byte `cbor:"2,keyasint,omitempty"`
	KEM      []byte `cbor:"3,keyasint,omitempty"`
}

type wReplaceDevice struct {
	Old     []byte  `cbor:"1,keyasint"`
	Device  wDevice `cbor:"2,keyasint"`
	Nonce   []byte  `cbor:"3,keyasint"`
	Pairing []byte  `cbor:"4,keyasint"`
}

type wRecoveryRequest struct {
	Device wDevice `cbor:"1,keyasint"`
}

// wRequestRef is the body of recovery_veto and recover: the hash of the
// recovery_request link they answer.
type wRequestRef struct {
	Request []byte `cbor:"1,keyasint"`
}

type wRotateRecovery struct {
	Recovery []byte `cbor:"1,keyasint"`
}

type wSetPolicy struct {
	Policy wPolicy `cbor:"1,keyasint"`
}
