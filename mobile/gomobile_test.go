package mobile

import (
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"sort"
	"strings"
	"sync"
	"testing"
)

// The packages an app binds with `gomobile bind`. Types from them may
// appear in each other's API.
var bound = []string{
	"github.com/enigm/enigm/mobile",
	"github.com/enigm/enigm/backend/platform/bridge",
}

// gomobileProblems lists every exported symbol of pkg whose type gomobile
// cannot bind, by gomobile's rules (golang.org/x/mobile/cmd/gobind):
//
//   - basic types: bool, string, signed integers, float32/64 (no unsigned
//     integers, no complex numbers, no named basic types);
//   - []byte, and no other slice, array, map or channel;
//   - pointers to exported structs of a bound package (fields and methods
//     following these rules), interfaces of a bound package (methods
//     following these rules), and error;
//   - functions and methods with parameters of those types and no, one,
//     or (T, error) results; no variadic functions, no function values.
func gomobileProblems(pkg *types.Package, bound map[string]bool) []string {
	var out []string
	bad := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	scope := pkg.Scope()
	for _, name := range scope.Names() {
		obj := scope.Lookup(name)
		if !obj.Exported() {
			continue
		}
		where := pkg.Name() + "." + name
		switch obj := obj.(type) {
		case *types.Const:
			if b, ok := obj.Type().(*types.Basic); !ok || !basicOK(b) {
				bad("%s: constant of type %s", where, obj.Type())
			}
		case *types.Var:
			if why := typeProblem(obj.Type(), bound); why != "" {
				bad("%s: variable of type %s: %s", where, obj.Type(), why)
			}
		case *types.Func:
			for _, p := range sigProblems(obj.Type().(*types.Signature), bound) {
				bad("%s: %s", where, p)
			}
		case *types.TypeName:
			named, ok := obj.Type().(*types.Named)
			if !ok || obj.IsAlias() {
				bad("%s: type alias", where)
				continue
			}
			switch u := named.Underlying().(type) {
			case *types.Struct:
				for i := 0; i < u.NumFields(); i++ {
					f := u.Field(i)
					if f.Embedded() && f.Exported() {
						bad("%s: embedded field %s", where, f.Name())
						continue
					}
					if !f.Exported() {
						continue
					}
					if why := typeProblem(f.Type(), bound); why != "" {
						bad("%s.%s: field of type %s: %s", where, f.Name(), f.Type(), why)
					}
				}
				ms := types.NewMethodSet(types.NewPointer(named))
				for i := 0; i < ms.Len(); i++ {
					m := ms.At(i).Obj().(*types.Func)
					if !m.Exported() {
						continue
					}
					for _, p := range sigProblems(m.Type().(*types.Signature), bound) {
						bad("%s.%s: %s", where, m.Name(), p)
					}
				}
			case *types.Interface:
				for i := 0; i < u.NumMethods(); i++ {
					m := u.Method(i)
					if !m.Exported() {
						bad("%s: unexported interface method %s (cannot be implemented in Swift or Kotlin)", where, m.Name())
						continue
					}
					for _, p := range sigProblems(m.Type().(*types.Signature), bound) {
						bad("%s.%s: %s", where, m.Name(), p)
					}
				}
			default:
				bad("%s: named type over %s (gomobile binds only structs and interfaces)", where, u)
			}
		}
	}
	return out
}

func basicOK(b *types.Basic) bool {
	switch b.Kind() {
	case types.Bool, types.String, types.Int, types.Int8, types.Int16, types.Int32, types.Int64,
		types.Float32, types.Float64, types.UntypedBool, types.UntypedString, types.UntypedInt,
		types.UntypedRune, types.UntypedFloat:
		return true
	}
	return false
}

var errorType = types.Universe.Lookup("error").Type()

// typeProblem says why t cannot cross the gomobile boundary, or "".
func typeProblem(t types.Type, bound map[string]bool) string {
	if types.Identical(t, errorType) {
		return ""
	}
	switch t := t.(type) {
	case *types.Basic:
		if basicOK(t) {
			return ""
		}
		return "unsupported basic type"
	case *types.Slice:
		if b, ok := t.Elem().(*types.Basic); ok && b.Kind() == types.Byte {
			return ""
		}
		return "only []byte slices are supported"
	case *types.Pointer:
		n, ok := t.Elem().(*types.Named)
		if !ok {
			return "pointer to a non-named type"
		}
		if _, ok := n.Underlying().(*types.Struct); !ok {
			return "pointer to a non-struct"
		}
		if n.Obj().Pkg() == nil || !bound[n.Obj().Pkg().Path()] || !n.Obj().Exported() {
			return "struct from a package that is not bound"
		}
		return ""
	case *types.Named:
		if _, ok := t.Underlying().(*types.Interface); ok {
			if t.Obj().Pkg() != nil && bound[t.Obj().Pkg().Path()] && t.Obj().Exported() {
				return ""
			}
			return "interface from a package that is not bound"
		}
		if _, ok := t.Underlying().(*types.Struct); ok {
			return "struct by value (use a pointer)"
		}
		return "named type"
	}
	return fmt.Sprintf("%T is not supported", t)
}

func sigProblems(sig *types.Signature, bound map[string]bool) []string {
	var out []string
	if sig.Variadic() {
		out = append(out, "variadic")
	}
	for i := 0; i < sig.Params().Len(); i++ {
		p := sig.Params().At(i)
		if why := typeProblem(p.Type(), bound); why != "" {
			out = append(out, fmt.Sprintf("parameter %s %s: %s", p.Name(), p.Type(), why))
		}
	}
	res := sig.Results()
	switch {
	case res.Len() > 2:
		out = append(out, fmt.Sprintf("%d results", res.Len()))
	case res.Len() == 2 && !types.Identical(res.At(1).Type(), errorType):
		out = append(out, "two results and the second is not error")
	}
	for i := 0; i < res.Len(); i++ {
		if why := typeProblem(res.At(i).Type(), bound); why != "" {
			out = append(out, fmt.Sprintf("result %s: %s", res.At(i).Type(), why))
		}
	}
	return out
}

var (
	loadOnce sync.Once
	loaded   map[string]*types.Package
	loadErr  error
)

// load type-checks the bound packages from source, once.
func load(t *testing.T) map[string]*types.Package {
	t.Helper()
	loadOnce.Do(func() {
		imp := importer.ForCompiler(token.NewFileSet(), "source", nil)
		loaded = map[string]*types.Package{}
		for _, path := range bound {
			pkg, err := imp.Import(path)
			if err != nil {
				loadErr = fmt.Errorf("type-checking %s: %w", path, err)
				return
			}
			loaded[path] = pkg
		}
	})
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	return loaded
}

// The exported API of the mobile package and of the bridge binds.
func TestGomobileAPI(t *testing.T) {
	pkgs := load(t)
	set := map[string]bool{}
	for _, p := range bound {
		set[p] = true
	}
	for _, path := range bound {
		pkg := pkgs[path]
		if pkg.Scope().Len() < 5 {
			t.Fatalf("%s: only %d symbols; the importer did not load the package", path, pkg.Scope().Len())
		}
		for _, p := range gomobileProblems(pkg, set) {
			t.Errorf("%s: %s", path, p)
		}
	}
}

// The checker itself catches every kind of unsupported type.
func TestGomobileCheckerCatches(t *testing.T) {
	const src = `package bad

type OK struct{ A int; B string; C []byte; D *OK; E error }
func Good(a int64, b bool, c *OK, i Iface) (*OK, error) { return nil, nil }
type Iface interface { M(x []byte) (string, error) }
const C = 1
const S = "s"

type Level string
type Struct struct{ U uint32; M map[string]int; L []string; F func(); Ch chan int; A [4]byte; V OK }
func Three() (int, int, error) { return 0, 0, nil }
func NotErr() (int, int) { return 0, 0 }
func Variadic(x ...int) {}
func Ptr(p *int) {}
func FuncParam(f func()) {}
type I2 interface { m(); N(u uint) }
const U uint8 = 1
var V []string
func Foreign(x *ast.File) {}
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "bad.go", strings.Replace(src, "package bad\n", "package bad\nimport \"go/ast\"\n", 1), 0)
	if err != nil {
		t.Fatal(err)
	}
	pkg, err := (&types.Config{Importer: importer.Default()}).Check("example.com/bad", fset, []*ast.File{f}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := gomobileProblems(pkg, map[string]bool{"example.com/bad": true})
	sort.Strings(got)
	joined := strings.Join(got, "\n")
	for _, want := range []string{
		"bad.Level: named type over string",
		"bad.Struct.U: field of type uint32",
		"bad.Struct.M: field of type map[string]int",
		"bad.Struct.L: field of type []string",
		"bad.Struct.F: field of type func()",
		"bad.Struct.Ch: field of type chan int",
		"bad.Struct.A: field of type [4]byte",
		"bad.Struct.V: field of type example.com/bad.OK: struct by value",
		"bad.Three: 3 results",
		"bad.NotErr: two results and the second is not error",
		"bad.Variadic: variadic",
		"bad.Ptr: parameter p *int: pointer to a non-named type",
		"bad.FuncParam: parameter f func()",
		"bad.I2: unexported interface method m",
		"bad.I2.N: parameter u uint",
		"bad.U: constant of type uint8",
		"bad.V: variable of type []string",
		"bad.Foreign: parameter x *go/ast.File: struct from a package that is not bound",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("the checker missed %q; it reported:\n%s", want, joined)
		}
	}
	for _, p := range got {
		for _, ok := range []string{"bad.OK", "bad.Good", "bad.Iface", "bad.C:", "bad.S:"} {
			if strings.HasPrefix(p, ok) {
				t.Errorf("false positive: %s", p)
			}
		}
	}
}

// byteOutputs lists every exported function, method and field of the mobile
// package that hands out bytes, with what they are. None is private key
// material; a new one must be reviewed and added here.
var byteOutputs = map[string]string{
	"mobile.Keystore.Sign":             "a signature",
	"mobile.Keystore.KEMOpen":          "a decrypted message",
	"mobile.Keystore.BindingPublicKey": "a public key",
	"mobile.Keystore.BindingSign":      "a signature",
	"mobile.SealTo":                    "a ciphertext",
	"mobile.KeyInfo.Public":            "a public key",
}

func TestNoPrivateKeyOutputs(t *testing.T) {
	pkg := load(t)[bound[0]]
	isBytes := func(t types.Type) bool {
		s, ok := t.(*types.Slice)
		if !ok {
			return false
		}
		b, ok := s.Elem().(*types.Basic)
		return ok && b.Kind() == types.Byte
	}
	found := map[string]bool{}
	check := func(name string, sig *types.Signature) {
		for i := 0; i < sig.Results().Len(); i++ {
			if isBytes(sig.Results().At(i).Type()) {
				found[name] = true
			}
		}
	}
	scope := pkg.Scope()
	for _, n := range scope.Names() {
		switch obj := scope.Lookup(n).(type) {
		case *types.Func:
			if obj.Exported() {
				check("mobile."+n, obj.Type().(*types.Signature))
			}
		case *types.TypeName:
			if !obj.Exported() {
				continue
			}
			named := obj.Type().(*types.Named)
			if st, ok := named.Underlying().(*types.Struct); ok {
				for i := 0; i < st.NumFields(); i++ {
					if f := st.Field(i); f.Exported() && isBytes(f.Type()) {
						found["mobile."+n+"."+f.Name()] = true
					}
				}
			}
			ms := types.NewMethodSet(types.NewPointer(named))
			for i := 0; i < ms.Len(); i++ {
				if m := ms.At(i).Obj(); m.Exported() {
					check("mobile."+n+"."+m.Name(), m.Type().(*types.Signature))
				}
			}
		}
	}
	for name := range found {
		if _, ok := byteOutputs[name]; !ok {
			t.Errorf("%s returns bytes and is not reviewed: add it to byteOutputs if it is not secret", name)
		}
	}
	for name := range byteOutputs {
		if !found[name] {
			t.Errorf("%s is listed but no longer returns bytes", name)
		}
	}
}
