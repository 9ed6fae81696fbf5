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
		{"freshness ok", Freshness{Checkpoint: "c", TreeSize: 3, MapIndex: 2, MapRoot: h, Inclusion: [][]byte{h}, MapProof: []byte{0, 0, 1}}, ""},
		{"freshness with head", Freshness{Checkpoint: "c", TreeSize: 3, MapIndex: 2, MapRoot: h, MapProof: []byte{0, 0, 0}, Head: &Head{Seq: 4, Hash: strings.Repeat("ab", 32)}}, ""},
		{"freshness bad head", Freshness{Checkpoint: "c", TreeSize: 3, MapIndex: 2, MapRoot: h, MapProof: []byte{0, 0, 0}, Head: &Head{Seq: 4, Hash: "ab"}}, "head.hash"},
		{"freshness map leaf outside", Freshness{Checkpoint: "c", TreeSize: 3, MapIndex: 3, MapRoot: h, MapProof: []byte{0, 0, 1}}, "not inside a tree"},
		{"freshness short root", Freshness{Checkpoint: "c", TreeSize: 3, MapIndex: 2, MapRoot: h[:31], MapProof: []byte{0, 0, 1}}, "map root is 31 bytes"},
		{"freshness no map proof", Freshness{Checkpoint: "c", TreeSize: 3, MapIndex: 2, MapRoot: h}, "map proof must be"},
		{"freshness huge map proof", Freshness{Checkpoint: "c", TreeSize: 3, MapIndex: 2, MapRoot: h, MapProof: make([]byte, 9000)}, "map proof must be"},
		{"freshness bad inclusion hash", Freshness{Checkpoint: "c", TreeSize: 3, MapIndex: 2, MapRoot: h, MapProof: []byte{0, 0, 1}, Inclusion: [][]byte{h[:3]}}, "hash 0 is 3 bytes"},
		{"freshness no checkpoint", Freshness{TreeSize: 3, MapIndex: 2, MapRoot: h, MapProof: []byte{0, 0, 1}}, "checkpoint must be"},
	}
	for _, c := range cases {
		err := c.v.Validate()
		if (c.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.wantErr)) {
			t.Errorf("%s: %v, want %q", c.desc, err, c.wantErr)
		}
	}
}
