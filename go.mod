module github.com/enigm/enigm

go 1.26.0

require (
	filippo.io/mldsa v1.0.0
	github.com/fxamacker/cbor/v2 v2.9.0
	github.com/google/go-tpm v0.9.8
	github.com/google/go-tpm-tools v0.4.11
	github.com/miekg/pkcs11 v1.1.2
	go.etcd.io/bbolt v1.4.3
	golang.org/x/crypto v0.59.0
	golang.org/x/term v0.48.0
)

require (
	github.com/x448/float16 v0.8.4 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
