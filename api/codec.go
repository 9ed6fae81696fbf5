package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"strconv"

	"github.com/enigm/enigm/internal/wire"
)

// Media types of request and response bodies.
const (
	MediaJSON = "application/json"
	MediaCBOR = "application/cbor"
)

// MaxRequestSize bounds every request body (413 too_large beyond).
const MaxRequestSize = 1 << 20

// ErrTooLarge is wrapped by a Validate error for a field larger than the
// API allows (the server answers 413 too_large).
var ErrTooLarge = errors.New("too large")

// CBORBody is implemented by the request types that may travel as
// MediaCBOR; their responses may too.
type CBORBody interface {
	cborBody()
}

// MediaType returns the media type of a Content-Type or Accept value
// without its parameters ("" when it does not parse).
func MediaType(v string) string {
	if v == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(v)
	if err != nil {
		return ""
	}
	return mt
}

// MarshalCBOR returns the deterministic CBOR encoding of v.
func MarshalCBOR(v any) ([]byte, error) { return wire.Marshal(v) }

// UnmarshalCBOR decodes b into v strictly (internal/wire): one canonical
// item, integer keys the type knows, no duplicates, at most MaxRequestSize
// bytes.
func UnmarshalCBOR(b []byte, v any) error {
	if err := wire.Unmarshal(b, v, MaxRequestSize); err != nil {
		return fmt.Errorf("malformed CBOR body: %v", err)
	}
	return nil
}

// DecodeJSON decodes the JSON request body b into v strictly: exactly one
// JSON object, nothing after it, every key in every object made of
// [a-z0-9_] and given once, and no key v does not have. encoding/json on
// its own matches keys case-insensitively (also under Unicode folding:
// "ſignature" is "signature" to it) and keeps the last of two equal keys;
// both are refused here, so that a body means one thing to every parser.
func DecodeJSON(b []byte, v any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return errors.New("empty request body, expected a JSON object")
	}
	if err := checkKeys(b); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("malformed JSON: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("malformed JSON: data after the request object")
	}
	return nil
}

// maxDepth bounds the nesting checkKeys follows (encoding/json allows
// 10,000 levels; no request nests more than 3).
const maxDepth = 16

// checkKeys walks the JSON value in b and refuses keys that are not
// lowercase snake_case, keys given twice in one object, and nesting
// deeper than maxDepth.
func checkKeys(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	type frame struct {
		object bool
		keys   map[string]bool
		key    bool // the next token of the object is a key
	}
	var stack []*frame
	path := func() string {
		if len(stack) == 0 {
			return "the body"
		}
		return "an object at depth " + strconv.Itoa(len(stack))
	}
	first := true
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("malformed JSON: %v", err)
		}
		if first {
			if d, ok := tok.(json.Delim); !ok || d != '{' {
				return errors.New("malformed JSON: the body must be a JSON object")
			}
			first = false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.key {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				continue
			}
			k, _ := tok.(string)
			if !snakeCase(k) {
				return fmt.Errorf("malformed JSON: key %q in %s: keys are lowercase snake_case, exactly as the API names them", k, path())
			}
			if top.keys[k] {
				return fmt.Errorf("malformed JSON: key %q twice in %s", k, path())
			}
			top.keys[k] = true
			top.key = false
			continue
		}
		if top != nil && top.object {
			top.key = true // after this value, a key or '}'
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{':
				stack = append(stack, &frame{object: true, keys: map[string]bool{}, key: true})
			case '[':
				stack = append(stack, &frame{})
			case '}', ']':
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].object {
					stack[len(stack)-1].key = true
				}
			}
			if len(stack) > maxDepth {
				return fmt.Errorf("malformed JSON: nested deeper than %d levels", maxDepth)
			}
		}
	}
}

func snakeCase(s string) bool { return lowerAlnum(s, 1, math.MaxInt, "_") }
