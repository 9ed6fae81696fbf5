package api

import (
	"net/url"
	"strconv"
	"testing"

	"github.com/enigm/enigm/chain"
)

// ChainQuery accepts every link (-1) or a seq with an optional link hash,
// refuses a hash without a seq, a malformed hash and seqs out of range, and
// encodes to the query the server reads back.
func TestChainQuery(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		q       ChainQuery
		wantErr string
		query   string
	}{
		{"every link", ChainQuery{After: -1}, "", ""},
		{"after a seq", ChainQuery{After: 7}, "", "?after=7"},
		{"after a verified head", ChainQuery{After: 7, Hash: acct}, "", "?after=7&hash=" + acct},
		{"the last seq", ChainQuery{After: chain.MaxSeq, Hash: acct}, "", "?after=" + strconv.Itoa(chain.MaxSeq) + "&hash=" + acct},
		{"hash without a seq", ChainQuery{After: -1, Hash: acct}, "give after as well", ""},
		{"short hash", ChainQuery{After: 1, Hash: "abcd"}, "hash must be 64 lowercase hex digits", ""},
		{"upper-case hash", ChainQuery{After: 1, Hash: "AB" + acct[2:]}, "hash must be 64 lowercase hex digits", ""},
		{"below -1", ChainQuery{After: -2}, "after must be -1", ""},
		{"beyond the last seq", ChainQuery{After: chain.MaxSeq + 1}, "after must be -1", ""},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if wantErr(t, tc.q.Validate(), tc.wantErr) {
				return
			}
			if got := tc.q.Encode(); got != tc.query {
				t.Fatalf("Encode = %q, want %q", got, tc.query)
			}
			if tc.query == "" {
				return
			}
			v, err := url.ParseQuery(tc.query[1:])
			if err != nil || v.Get("after") != strconv.FormatInt(tc.q.After, 10) || v.Get("hash") != tc.q.Hash {
				t.Fatalf("%q reads back as %v (%v)", tc.query, v, err)
			}
		})
	}
	h := chain.Head{Seq: 3, Hash: chain.Hash{0xab}}
	if q := ChainQueryAfter(h); q.After != 3 || q.Hash != h.Hash.String() || q.Validate() != nil {
		t.Fatalf("ChainQueryAfter(%v) = %+v", h, q)
	}
}
