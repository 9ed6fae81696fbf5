// Command torchwood checks a c2sp.org/tlog-proof@v1 with
// filippo.io/torchwood's VerifyProof and ParsePolicy, code no one at
// Enigm wrote, for translog's TestProofTorchwood. It is its own module
// (torchwood v0.10.0 needs Go 1.27; the test runs it with
// GOTOOLCHAIN=go1.27.3), not a dependency of Enigm.
//
//	torchwood POLICY-FILE PROOF-FILE LEAF-FILE
//
// prints "verified" and exits 0, or prints why not and exits 1 (2 for a
// usage or policy error). The record hash is RFC 6962's leaf hash of the
// bytes of LEAF-FILE (golang.org/x/mod/sumdb/tlog.RecordHash).
package main

import (
	"fmt"
	"os"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/tlog"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: torchwood POLICY-FILE PROOF-FILE LEAF-FILE")
		os.Exit(2)
	}
	var in [3][]byte
	for i, f := range os.Args[1:] {
		b, err := os.ReadFile(f)
		if err != nil {
			fmt.Println(err)
			os.Exit(2)
		}
		in[i] = b
	}
	policy, err := torchwood.ParsePolicy(in[0])
	if err != nil {
		fmt.Println("policy:", err)
		os.Exit(2)
	}
	if err := torchwood.VerifyProof(policy, tlog.RecordHash(in[2]), in[1]); err != nil {
		fmt.Println("refused:", err)
		os.Exit(1)
	}
	fmt.Println("verified")
}
