package api

import (
	"strings"
	"testing"
)

func TestLogProofValidate(t *testing.T) {
	h := make([]byte, 32)
	many := make([][]byte, MaxProofHashes+1)
	for i := range many {
		many[i] = h
	}
	cases := []struct {
		desc    string
		v       interface{ Validate() error }
		wantErr string
	}{
		{"inclusion ok", InclusionProof{Checkpoint: "c", LeafIndex: 0, TreeSize: 2, Proof: [][]byte{h}}, ""},
		{"inclusion leaf outside the tree", InclusionProof{Checkpoint: "c", LeafIndex: 2, TreeSize: 2}, "not inside a tree"},
		{"inclusion short hash", InclusionProof{Checkpoint: "c", TreeSize: 2, Proof: [][]byte{h[:31]}}, "hash 0 is 31 bytes"},
		{"inclusion no checkpoint", InclusionProof{TreeSize: 1}, "checkpoint must be"},
		{"inclusion huge checkpoint", InclusionProof{Checkpoint: strings.Repeat("x", MaxCheckpointSize+1), TreeSize: 1}, "checkpoint must be"},
		{"inclusion too many hashes", InclusionProof{Checkpoint: "c", TreeSize: 1, Proof: many}, "at most 128"},
		{"consistency ok", ConsistencyProof{Checkpoint: "c", From: 1, To: 3, Proof: [][]byte{h, h}}, ""},
		{"consistency empty", ConsistencyProof{Checkpoint: "c", From: 3, To: 3}, ""},
		{"consistency backwards", ConsistencyProof{Checkpoint: "c", From: 4, To: 3}, "is after"},
		{"consistency long hash", ConsistencyProof{Checkpoint: "c", From: 1, To: 3, Proof: [][]byte{append(h, 0)}}, "33 bytes"},
	}
	for _, c := range cases {
		err := c.v.Validate()
		if (c.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.wantErr)) {
			t.Errorf("%s: %v, want %q", c.desc, err, c.wantErr)
		}
	}
}
