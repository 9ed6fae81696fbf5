package translog_test

import (
	"strings"
	"testing"

	"github.com/enigm/enigm/translog/translogtest"
)

// TestFsck: Tessera's fsck, which no one here wrote, re-derives every
// tile and the root of a served log of 700 leaves (full and partial
// tiles on two levels) from its entry bundles, and finds them equal to
// what the log serves and signs; after one bit of one stored tile flips,
// it fails.
func TestFsck(t *testing.T) {
	l, st, s := newLog(t, 700)
	srv := serve(t, l)
	r := translogtest.Fsck(t, srv.URL+"/log/", testOrigin, s.VerifierKeys()[0])
	if !r.OK || r.Size != 700 {
		t.Fatalf("fsck did not pass on a good log (size %d):\n%s", r.Size, r.Output)
	}

	t.Logf("fsck on the good log:\n%s", r.Output)
	corruptTile(st, 0, 1, 40)
	r = translogtest.Fsck(t, srv.URL+"/log/", testOrigin, s.VerifierKeys()[0])
	if r.OK || !strings.Contains(r.Output, "fsck failed") || !strings.Contains(r.Output, "tile/0/001") {
		t.Fatalf("fsck did not fail on a corrupted tile 0/001:\n%s", r.Output)
	}
}
