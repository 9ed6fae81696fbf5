package translog

import "testing"

// FuzzTilePath: a path the handler accepts is the one canonical spelling
// of its tile (parse then format gives back exactly the input), so one
// resource never has two URLs.
func FuzzTilePath(f *testing.F) {
	for _, s := range []string{"0/000", "0/x001/x234/067", "2/005.p/17", "entries/999.p/255", "entries/x001/000",
		"0/x000/005", "00/000", "64/000", "0/000.p/0", "0/000.p/256", "1/001/002", "entries/", "0/000.p/", "x/y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		tp, err := parseTilePath(p)
		if err != nil {
			return
		}
		w := tp.width
		if w == TileWidth {
			w = 0
		}
		var back string
		if tp.entries {
			back = EntriesPath(tp.index, w)
		} else {
			back = TilePath(tp.level, tp.index, w)
		}
		if back != "tile/"+p {
			t.Fatalf("%q parses to %+v, which is spelled %q", p, tp, back)
		}
	})
}
