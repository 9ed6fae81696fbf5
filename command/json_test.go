package command

import (
	"bytes"
	"encoding/json"
	"io"
	"testing"
)

// strictJSON decodes like decode's encoding/json path.
func strictJSON(b []byte, v any) bool {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if dec.Decode(v) != nil {
		return false
	}
	_, err := dec.Token()
	return err == io.EOF
}

func TestDecodeFlat(t *testing.T) {
	for _, tc := range []struct {
		desc, body string
		fast       bool // taken by the fast path
	}{
		{"link", `{"link":"oA=="}`, true},
		{"spaces", " {\n\t\"link\" : \"oA==\" } \r\n", true},
		{"empty object", `{}`, true},
		{"empty value", `{"link":""}`, true},
		{"escape", `{"link":"o\u0041=="}`, false},
		{"backslash", `{"link":"a\\b"}`, false},
		{"unknown key", `{"link":"a","x":"b"}`, false},
		{"other case", `{"LINK":"a"}`, false},
		{"duplicate", `{"link":"a","link":"b"}`, false},
		{"number", `{"link":1}`, false},
		{"null", `{"link":null}`, false},
		{"trailing", `{"link":"a"} {}`, false},
		{"trailing comma", `{"link":"a",}`, false},
		{"unterminated", `{"link":"a`, false},
		{"non-ASCII", `{"link":"é"}`, false},
		{"array", `["link"]`, false},
		{"empty", ``, false},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var fast linkRequest
			got := decodeFlat([]byte(tc.body), fast.flat())
			if got != tc.fast {
				t.Fatalf("fast path took it: %v, want %v", got, tc.fast)
			}
			if !got && fast != (linkRequest{}) {
				t.Fatalf("a refused body set fields: %+v", fast)
			}
			var slow linkRequest
			if got && (!strictJSON([]byte(tc.body), &slow) || slow != fast) {
				t.Fatalf("the fast path decoded %+v, encoding/json %+v", fast, slow)
			}
		})
	}
}

// Whenever the fast path takes a body, encoding/json takes it too and
// decodes the same values.
func FuzzDecodeFlat(f *testing.F) {
	for _, s := range []string{`{"account_id":"ab","device_id":"cd","challenge":"AA==","signature":"BB=="}`, `{}`, `{"challenge":"x"}`,
		`{"device_id":"a","device_id":"b"}`, `{"signature":"\u0041"}`, ` {"account_id" :"a" , "challenge":""} `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast tokenRequest
		if !decodeFlat(b, fast.flat()) {
			if fast != (tokenRequest{}) {
				t.Fatalf("a refused body set fields: %+v", fast)
			}
			return
		}
		var slow tokenRequest
		if !strictJSON(b, &slow) {
			t.Fatalf("the fast path took %q, encoding/json refuses it", b)
		}
		if slow != fast {
			t.Fatalf("%q: fast path %+v, encoding/json %+v", b, fast, slow)
		}
	})
}
