// Package wire holds Enigm's one encoding: deterministic CBOR (RFC 8949 §4.2
// core deterministic encoding) with integer map keys, decoded strictly.
//
// Strict means: no indefinite lengths, no tags, no floats, no duplicate map
// keys, no unknown fields, bounded nesting, array and map sizes, and input
// size; and the input must be exactly the canonical encoding of what it
// decodes to, so every value has one encoding and a signature or MAC over the
// bytes covers the value. Callers run their own Validate on the result.
package wire

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"sync"

	"github.com/fxamacker/cbor/v2"
)

// Limits for every decode. Message types apply tighter size limits of
// their own before calling Unmarshal.
const (
	MaxNesting  = 8
	MaxElements = 4096
	MaxSize     = 1 << 20
)

// ErrNonCanonical reports input that decodes but is not the canonical
// encoding of its value.
var ErrNonCanonical = errors.New("wire: input is not canonical CBOR")

// ErrTooLarge reports input larger than the caller's limit.
var ErrTooLarge = errors.New("wire: input too large")

var (
	encMode cbor.UserBufferEncMode
	decMode cbor.DecMode
)

func init() {
	var err error
	eo := cbor.CoreDetEncOptions()
	eo.IndefLength = cbor.IndefLengthForbidden
	eo.TagsMd = cbor.TagsForbidden
	eo.Time = cbor.TimeUnix
	if encMode, err = eo.UserBufferEncMode(); err != nil {
		panic(err)
	}
	do := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		MaxNestedLevels:   MaxNesting,
		MaxArrayElements:  MaxElements,
		MaxMapPairs:       MaxElements,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		IntDec:            cbor.IntDecConvertNone,
	}
	if decMode, err = do.DecMode(); err != nil {
		panic(err)
	}
}

// Marshal returns the canonical encoding of v.
func Marshal(v any) ([]byte, error) {
	if err := checkType(reflect.TypeOf(v)); err != nil {
		return nil, err
	}
	return encMode.Marshal(v)
}

// Unmarshal decodes b into v strictly: b must be at most max bytes (and at
// most MaxSize), hold exactly one item, and be the canonical encoding of the
// decoded value.
func Unmarshal(b []byte, v any, max int) error {
	if max <= 0 || max > MaxSize {
		max = MaxSize
	}
	if len(b) > max {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(b), max)
	}
	if err := checkType(reflect.TypeOf(v)); err != nil {
		return err
	}
	rest, err := decMode.UnmarshalFirst(b, v)
	if err != nil {
		return fmt.Errorf("wire: %w", err)
	}
	if len(rest) != 0 {
		return fmt.Errorf("wire: %d bytes of trailing data", len(rest))
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer bufPool.Put(buf)
	if err := encMode.MarshalToBuffer(v, buf); err != nil {
		return fmt.Errorf("wire: re-encode: %w", err)
	}
	if !bytes.Equal(buf.Bytes(), b) {
		return ErrNonCanonical
	}
	return nil
}

// bufPool holds buffers for the canonical re-encoding check, so a strict
// decode allocates no second copy of its input.
var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

var floatFree sync.Map // reflect.Type -> error (nil when float-free)

func checkType(t reflect.Type) error {
	if v, ok := floatFree.Load(t); ok {
		if v == nil {
			return nil
		}
		return v.(error)
	}
	err := noFloats(t, 0)
	if err == nil {
		floatFree.Store(t, nil)
	} else {
		floatFree.Store(t, err)
	}
	return err
}

// noFloats rejects types that contain floating-point fields: Enigm encodings
// never carry floats, so a type that has one is a programming error.
func noFloats(t reflect.Type, depth int) error {
	if t == nil || depth > 16 {
		return nil
	}
	switch t.Kind() {
	case reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return fmt.Errorf("wire: type %s holds a float", t)
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return noFloats(t.Elem(), depth+1)
	case reflect.Map:
		if err := noFloats(t.Key(), depth+1); err != nil {
			return err
		}
		return noFloats(t.Elem(), depth+1)
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			if err := noFloats(t.Field(i).Type, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}
