// Package redact is the one way Enigm's types that hold a secret or a
// bearer token format themselves, and the check that they do.
//
// # The idiom
//
// Such a type implements [fmt.Formatter] and its Format method writes a
// fixed description, whatever the verb and flags:
//
//	func (s *session) Format(f fmt.State, _ rune) { redact.Format(f, "tpm.session") }
//
// String and GoString alone are not enough: fmt calls String only for %v
// and %s (and GoString only for %#v), so %d, %x or %q print the fields.
// Format is called for every verb. It has a value receiver, so that a copy
// of the value and a struct field of the type are covered too, except on
// types that hold a mutex (a copy would copy the lock, which go vet
// refuses): those keep a pointer receiver.
//
// fmt never calls a method of an unexported struct field, so a struct that
// holds such a type in an unexported field needs a Format method of its
// own: by value, the field's contents print; as a pointer (or in an
// interface, map or slice), the pointee's fields print under a verb that
// does not apply to pointers (%s, %q: fmt then shows the pointee with %v
// and calls no method of it).
//
// The pure cores (chain, and hybrid, which they import) may reach no other
// module package, so they write the same one-line method out.
//
// # The check
//
// [Leak] prints a value with every verb of [Verbs], as a value, a pointer
// and a field of a struct, and reports any output that shows one of the
// given secrets in a usual encoding.
package redact

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"sync"
)

// Format writes name + "(redacted)" to f. It is the whole Format method of
// a type that holds a secret.
func Format(f fmt.State, name string) { io.WriteString(f, name+"(redacted)") }

// Verbs are the verbs [Leak] prints with.
var Verbs = []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%d", "%q"}

// Leak formats v with each of [Verbs] and returns an error naming the verb
// and form (v itself; its pointee or a pointer to it; v as a field of a
// struct) whose output shows one of secrets: its bytes, hex in either case,
// base64 in any alphabet, the decimal or Go-syntax list of its bytes, or
// the quoted forms %q gives. The error never contains the secret. A
// pointee whose type holds a lock is not copied (go vet refuses such
// copies in code). For tests.
func Leak(v any, secrets ...[]byte) error { return leak(v, Verbs, secrets) }

func leak(v any, verbs []string, secrets [][]byte) error {
	if len(secrets) == 0 {
		return fmt.Errorf("redact: no secret given for %T", v)
	}
	for _, s := range secrets {
		if len(s) < 4 {
			return fmt.Errorf("redact: a secret of %d bytes given for %T: too short to look for", len(s), v)
		}
	}
	for _, c := range variants(v) {
		for _, verb := range verbs {
			out := fmt.Sprintf(verb, c.v)
			for i, s := range secrets {
				for j, form := range encodings(s) {
					if strings.Contains(out, form) {
						return fmt.Errorf("%s of %s (%T) shows secret %d (encoding %d)", verb, c.what, c.v, i, j)
					}
				}
			}
		}
	}
	return nil
}

// Field reads the []byte, string or byte array at path, a list of field
// names followed through pointers and interfaces, in the struct v is or
// points to, exported or not: the secrets a type keeps to itself, for
// [Leak]. For tests.
func Field(v any, path ...string) ([]byte, error) {
	rv := reflect.ValueOf(v)
	for _, name := range path {
		for rv.Kind() == reflect.Pointer || rv.Kind() == reflect.Interface {
			rv = rv.Elem()
		}
		if rv.Kind() != reflect.Struct {
			return nil, fmt.Errorf("redact: %T: no struct at %s", v, name)
		}
		if rv = rv.FieldByName(name); !rv.IsValid() {
			return nil, fmt.Errorf("redact: %T has no field %s", v, strings.Join(path, "."))
		}
	}
	switch {
	case rv.Kind() == reflect.String:
		return []byte(rv.String()), nil
	case rv.Kind() == reflect.Slice && rv.Type().Elem().Kind() == reflect.Uint8:
		return bytes.Clone(rv.Bytes()), nil
	case rv.Kind() == reflect.Array && rv.Type().Elem().Kind() == reflect.Uint8:
		b := make([]byte, rv.Len())
		for i := range b {
			b[i] = byte(rv.Index(i).Uint())
		}
		return b, nil
	}
	return nil, fmt.Errorf("redact: %T.%s is a %s, not bytes", v, strings.Join(path, "."), rv.Type())
}

type variant struct {
	what string
	v    any
}

func variants(v any) []variant {
	out := []variant{{"the value given", v}}
	rv := reflect.ValueOf(v)
	switch {
	case !rv.IsValid():
		return out
	case rv.Kind() == reflect.Pointer && !rv.IsNil() && !hasLock(rv.Type().Elem()):
		out = append(out, variant{"its pointee", rv.Elem().Interface()})
	case rv.Kind() != reflect.Pointer:
		p := reflect.New(rv.Type())
		p.Elem().Set(rv)
		out = append(out, variant{"a pointer to it", p.Interface()})
	}
	for _, c := range out[:len(out):len(out)] {
		w := reflect.New(reflect.StructOf([]reflect.StructField{{Name: "V", Type: reflect.TypeOf(c.v)}})).Elem()
		w.Field(0).Set(reflect.ValueOf(c.v))
		out = append(out, variant{"a struct field holding " + c.what, w.Interface()}, variant{"a pointer to a struct holding " + c.what, w.Addr().Interface()})
	}
	return out
}

var lockerType = reflect.TypeFor[sync.Locker]()

// hasLock reports whether a value of t holds a lock (anything whose pointer
// is a sync.Locker, as go vet's copylocks sees it) outside pointers.
func hasLock(t reflect.Type) bool {
	if reflect.PointerTo(t).Implements(lockerType) {
		return true
	}
	switch t.Kind() {
	case reflect.Struct:
		for i := range t.NumField() {
			if hasLock(t.Field(i).Type) {
				return true
			}
		}
	case reflect.Array:
		return hasLock(t.Elem())
	}
	return false
}

// encodings lists how fmt and the usual encoders can show s. It uses the
// first 9 bytes (whole base64 groups), so a prefix of a longer output
// matches too.
func encodings(s []byte) []string {
	w := s[:min(len(s), 9)]
	dec := make([]string, len(w))
	gox := make([]string, len(w))
	qc := make([]string, len(w))
	for i, b := range w {
		dec[i] = strconv.Itoa(int(b))
		gox[i] = fmt.Sprintf("%#x", b)
		qc[i] = strconv.QuoteRune(rune(b))
	}
	q := strconv.Quote(string(w))
	qa := strconv.QuoteToASCII(string(w))
	return []string{
		string(w),
		hex.EncodeToString(w),
		strings.ToUpper(hex.EncodeToString(w)),
		base64.StdEncoding.EncodeToString(w),
		base64.URLEncoding.EncodeToString(w),
		strings.Join(dec, " "),  // %v, %d of []byte and [N]byte
		strings.Join(gox, ", "), // %#v
		strings.Join(qc, " "),   // %q of [N]byte
		q[1 : len(q)-1],         // %q
		qa[1 : len(qa)-1],       // %+q
	}
}
