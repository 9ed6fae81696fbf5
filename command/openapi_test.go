package command

import (
	"fmt"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/chain"
)

// openAPIRoutes lists the "METHOD /path" operations of api/openapi.yaml.
func openAPIRoutes(t *testing.T) []string {
	var out []string
	for path, ops := range loadOpenAPI(t).Paths {
		for method := range ops {
			switch method {
			case "get", "put", "post", "delete", "patch", "head", "options":
				out = append(out, strings.ToUpper(method)+" "+path)
			}
		}
	}
	return out
}

// Every route the server registers is in api/openapi.yaml, and every
// operation there is served.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	e := newEnv(t)
	served := e.srv.Routes()
	doc := openAPIRoutes(t)
	if len(doc) < 20 {
		t.Fatalf("read only %d operations from the OpenAPI file", len(doc))
	}
	for _, r := range served {
		if !slices.Contains(doc, r) {
			t.Errorf("served but not in api/openapi.yaml: %s", r)
		}
	}
	for _, r := range doc {
		if !slices.Contains(served, r) {
			t.Errorf("in api/openapi.yaml but not served: %s", r)
		}
	}
	slices.Sort(doc)
	for i := 1; i < len(doc); i++ {
		if doc[i] == doc[i-1] {
			t.Errorf("operation twice in api/openapi.yaml: %s", doc[i])
		}
	}
}

// The ChainError enum of api/openapi.yaml lists exactly the wire names of
// chain's code table, in its order.
func TestOpenAPIChainErrors(t *testing.T) {
	var doc []string
	for _, name := range asList(loadOpenAPI(t).Components.Schemas["ChainError"]["enum"]) {
		doc = append(doc, fmt.Sprint(name))
	}
	var want []string
	for _, c := range chain.Codes() {
		want = append(want, c.String())
	}
	if !slices.Equal(doc, want) {
		t.Fatalf("api/openapi.yaml ChainError enum:\n%v\nchain's table:\n%v", doc, want)
	}
}

// apiBodies names the api type of every request body and answer of each
// operation; TestOpenAPITypes checks each against api/openapi.yaml.
var apiBodies = map[string]struct {
	request   any
	responses map[string]any // by status
	cbor      bool           // the bodies also travel as application/cbor
}{
	"GET /healthz":                             {nil, map[string]any{"200": api.Health{}}, false},
	"GET /metrics":                             {nil, nil, false},
	"GET /v1/info":                             {nil, map[string]any{"200": api.Info{}}, false},
	"GET /v1/names/{name}":                     {nil, map[string]any{"200": api.Name{}}, false},
	"GET /v1/invites/{code}":                   {nil, map[string]any{"200": api.Invite{}}, false},
	"POST /v1/accounts":                        {api.CreateAccount{}, map[string]any{"201": api.AccountCreated{}}, true},
	"GET /v1/accounts/{id}/chain":              {nil, map[string]any{"200": api.Chain{}}, false},
	"GET /v1/accounts/{id}/devices":            {nil, map[string]any{"200": api.DeviceList{}}, false},
	"POST /v1/accounts/{id}/links":             {api.LinkRequest{}, map[string]any{"201": api.HeadResponse{}}, true},
	"POST /v1/accounts/{id}/enrollments":       {api.EnrollRequest{}, map[string]any{"201": api.Enrollment{}}, true},
	"GET /v1/accounts/{id}/enrollments":        {nil, map[string]any{"200": api.EnrollmentList{}}, false},
	"GET /v1/enrollments/{rid}":                {nil, map[string]any{"200": api.Enrollment{}}, true},
	"POST /v1/enrollments/{rid}/approve":       {api.ApproveRequest{}, map[string]any{"200": api.Enrollment{}}, true},
	"POST /v1/enrollments/{rid}/complete":      {api.LinkRequest{}, map[string]any{"201": api.HeadResponse{}}, true},
	"POST /v1/accounts/{id}/recoveries":        {api.LinkRequest{}, map[string]any{"201": api.Recovery{}}, true},
	"GET /v1/recoveries/{rid}":                 {nil, map[string]any{"200": api.Recovery{}}, true},
	"GET /v1/recoveries/{rid}/witness":         {nil, map[string]any{"200": api.RecoveryWitness{}}, false},
	"POST /v1/recoveries/{rid}/complete":       {api.LinkRequest{}, map[string]any{"201": api.HeadResponse{}, "202": api.Recovery{}}, true},
	"POST /v1/auth/challenge":                  {api.ChallengeRequest{}, map[string]any{"200": api.Challenge{}}, false},
	"POST /v1/auth/token":                      {api.TokenRequest{}, map[string]any{"200": api.Token{}}, false},
	"POST /v1/messages":                        {api.SendRequest{}, map[string]any{"202": api.SendResult{}}, true},
	"GET /v1/messages":                         {nil, map[string]any{"200": api.Envelopes{}}, false},
	"POST /v1/messages/ack":                    {api.AckRequest{}, map[string]any{"200": api.AckResult{}}, false},
	"GET /v1/admin/accounts":                   {nil, map[string]any{"200": api.AccountList{}}, false},
	"GET /v1/admin/accounts/{id}/devices":      {nil, map[string]any{"200": api.DeviceList{}}, false},
	"POST /v1/admin/accounts/{id}/revoke":      {api.RevokeRequest{}, map[string]any{"201": api.HeadResponse{}}, false},
	"POST /v1/admin/accounts/{id}/policy":      {api.PolicyUpdate{}, map[string]any{"201": api.PolicyChange{}}, false},
	"GET /v1/admin/enrollments":                {nil, map[string]any{"200": api.EnrollmentList{}}, false},
	"POST /v1/admin/enrollments/{rid}/approve": {nil, map[string]any{"200": api.Enrollment{}}, false},
	"POST /v1/admin/enrollments/{rid}/deny":    {api.Reason{}, map[string]any{"200": api.Enrollment{}}, false},
	"GET /v1/admin/recoveries":                 {nil, map[string]any{"200": api.RecoveryList{}}, false},
	"POST /v1/admin/recoveries/{rid}/review":   {api.ReviewRequest{}, map[string]any{"200": api.Recovery{}}, false},
	"GET /v1/admin/audit":                      {nil, map[string]any{"200": api.AuditLog{}}, false},
	"GET /v1/accounts/{id}/links/{seq}/proof":  {nil, map[string]any{"200": api.InclusionProof{}}, false},
	"GET /v1/log/consistency":                  {nil, map[string]any{"200": api.ConsistencyProof{}}, false},
	"GET /v1/accounts/{id}/freshness":          {nil, map[string]any{"200": api.Freshness{}}, false},
}

// cborRequests names the api type of a request body that travels as
// application/cbor as another object than its JSON body (the others are
// the same object in both).
var cborRequests = map[string]any{
	"POST /v1/messages": api.SendMessage{},
}

type openAPI struct {
	Paths      map[string]map[string]yamlObj `yaml:"paths"`
	Components struct {
		Schemas   map[string]yamlObj `yaml:"schemas"`
		Responses map[string]yamlObj `yaml:"responses"`
	} `yaml:"components"`
}

type yamlObj = map[string]any

func loadOpenAPI(t *testing.T) *openAPI {
	t.Helper()
	b, err := os.ReadFile("../api/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc openAPI
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("api/openapi.yaml: %v", err)
	}
	return &doc
}

// resolve follows a $ref to components.
func (d *openAPI) resolve(o yamlObj) (yamlObj, string) {
	for range 8 {
		ref, ok := o["$ref"].(string)
		if !ok {
			return o, ""
		}
		switch {
		case strings.HasPrefix(ref, "#/components/schemas/"):
			o = d.Components.Schemas[strings.TrimPrefix(ref, "#/components/schemas/")]
		case strings.HasPrefix(ref, "#/components/responses/"):
			o = d.Components.Responses[strings.TrimPrefix(ref, "#/components/responses/")]
		default:
			return nil, "unknown $ref " + ref
		}
		if o == nil {
			return nil, "dangling $ref " + ref
		}
	}
	return nil, "$ref loop"
}

func obj(v any) yamlObj { o, _ := v.(yamlObj); return o }

func asList(v any) []any { l, _ := v.([]any); return l }

// jsonFields lists the JSON fields of a struct type as encoding/json
// sees them (embedded structs flattened): name, type, required (no
// omitempty or omitzero).
type jsonField struct {
	name     string
	typ      reflect.Type
	required bool
}

func jsonFields(t reflect.Type) []jsonField {
	var out []jsonField
	for i := range t.NumField() {
		f := t.Field(i)
		tag, ok := f.Tag.Lookup("json")
		if f.Anonymous && !ok {
			out = append(out, jsonFields(f.Type)...)
			continue
		}
		if !f.IsExported() || tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		req := !strings.Contains(","+opts+",", ",omitempty,") && !strings.Contains(","+opts+",", ",omitzero,")
		out = append(out, jsonField{name, f.Type, req})
	}
	return out
}

var (
	timeType  = reflect.TypeFor[time.Time]()
	bytesType = reflect.TypeFor[[]byte]()
)

// checkSchema compares the schema s with the Go type typ, reporting every
// difference under the name where.
func (d *openAPI) checkSchema(where string, s yamlObj, typ reflect.Type) []string {
	s, bad := d.resolve(s)
	if bad != "" {
		return []string{where + ": " + bad}
	}
	if s == nil {
		return []string{where + ": no schema"}
	}
	if parts, ok := s["allOf"].([]any); ok {
		merged := yamlObj{"type": "object", "properties": yamlObj{}, "required": []any{}}
		for _, p := range parts {
			ps, bad := d.resolve(obj(p))
			if bad != "" {
				return []string{where + ": " + bad}
			}
			for k, v := range obj(ps["properties"]) {
				merged["properties"].(yamlObj)[k] = v
			}
			merged["required"] = append(merged["required"].([]any), asList(ps["required"])...)
		}
		s = merged
	}
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	st, _ := s["type"].(string)
	want := func(kind string) []string {
		if st != kind {
			return []string{fmt.Sprintf("%s: schema type %q, the Go type %s is %s", where, st, typ, kind)}
		}
		return nil
	}
	switch {
	case typ == timeType:
		if st != "string" || s["format"] != "date-time" {
			return []string{fmt.Sprintf("%s: schema %v, the Go type is time.Time (a date-time string)", where, s)}
		}
		return nil
	case typ == bytesType:
		if st != "string" || s["contentEncoding"] != "base64" {
			return []string{fmt.Sprintf("%s: schema %v, the Go type is []byte (a base64 string)", where, s)}
		}
		return nil
	}
	switch typ.Kind() {
	case reflect.String:
		if s["contentEncoding"] != nil || s["format"] == "date-time" {
			return []string{fmt.Sprintf("%s: schema %v, the Go type is a plain string", where, s)}
		}
		return want("string")
	case reflect.Bool:
		return want("boolean")
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint64, reflect.Uint32:
		return want("integer")
	case reflect.Slice:
		if errs := want("array"); errs != nil {
			return errs
		}
		return d.checkSchema(where+"[]", obj(s["items"]), typ.Elem())
	case reflect.Struct:
		if errs := want("object"); errs != nil {
			return errs
		}
		var errs []string
		props := obj(s["properties"])
		var required []string
		for _, r := range asList(s["required"]) {
			required = append(required, fmt.Sprint(r))
		}
		fields := jsonFields(typ)
		var goReq []string
		for _, f := range fields {
			p, ok := props[f.name]
			if !ok {
				errs = append(errs, fmt.Sprintf("%s: field %s of %s is not in the schema", where, f.name, typ))
				continue
			}
			errs = append(errs, d.checkSchema(where+"."+f.name, obj(p), f.typ)...)
			if f.required {
				goReq = append(goReq, f.name)
			}
		}
		for name := range props {
			if !slices.ContainsFunc(fields, func(f jsonField) bool { return f.name == name }) {
				errs = append(errs, fmt.Sprintf("%s: property %s is not a field of %s", where, name, typ))
			}
		}
		sort.Strings(required)
		sort.Strings(goReq)
		if !slices.Equal(required, goReq) {
			errs = append(errs, fmt.Sprintf("%s: required %v, the fields of %s without omitempty are %v", where, required, typ, goReq))
		}
		return errs
	}
	return []string{fmt.Sprintf("%s: no rule for the Go type %s", where, typ)}
}

// Every request body and answer in api/openapi.yaml has exactly the
// properties, required fields and types of the api type the server
// decodes or writes; the CBOR endpoints list application/cbor with the
// same schema; the error answer is api.Error.
func TestOpenAPITypes(t *testing.T) {
	doc := loadOpenAPI(t)
	e := newEnv(t)
	for _, r := range e.srv.Routes() {
		if _, ok := apiBodies[r]; !ok {
			t.Errorf("route %s has no entry in apiBodies", r)
		}
	}
	errType := reflect.TypeFor[api.Error]()
	for route, want := range apiBodies {
		method, path, _ := strings.Cut(route, " ")
		op := doc.Paths[path][strings.ToLower(method)]
		if op == nil {
			t.Errorf("%s: not in api/openapi.yaml", route)
			continue
		}
		media := func(content yamlObj, where string, cborType any) {
			if _, ok := content["application/json"]; !ok && want.request != nil {
				t.Errorf("%s: no application/json", where)
			}
			_, cbor := content["application/cbor"]
			if cbor != want.cbor {
				t.Errorf("%s: application/cbor listed %v, the server takes it %v", where, cbor, want.cbor)
			}
			switch {
			case cbor && cborType != nil:
				for _, msg := range doc.checkSchema(where+" (cbor)", obj(content["application/cbor"].(yamlObj)["schema"]), reflect.TypeOf(cborType)) {
					t.Error(msg)
				}
			case cbor && !reflect.DeepEqual(content["application/cbor"].(yamlObj)["schema"], content["application/json"].(yamlObj)["schema"]):
				t.Errorf("%s: the CBOR and JSON schemas differ", where)
			}
		}
		body := obj(op["requestBody"])
		switch {
		case want.request == nil && body != nil:
			t.Errorf("%s: a request body in the file, none in the server", route)
		case want.request != nil && body == nil:
			t.Errorf("%s: no request body in the file, the server decodes %T", route, want.request)
		case want.request != nil:
			content := obj(body["content"])
			media(content, route+" request", cborRequests[route])
			for _, msg := range doc.checkSchema(route+" request", obj(obj(content["application/json"])["schema"]), reflect.TypeOf(want.request)) {
				t.Error(msg)
			}
		}
		responses := obj(op["responses"])
		for status, typ := range want.responses {
			resp, bad := doc.resolve(obj(responses[status]))
			if resp == nil {
				t.Errorf("%s: no %s answer in the file (%s)", route, status, bad)
				continue
			}
			content := obj(resp["content"])
			media(content, route+" "+status, nil)
			for _, msg := range doc.checkSchema(route+" "+status, obj(obj(content["application/json"])["schema"]), reflect.TypeOf(typ)) {
				t.Error(msg)
			}
		}
		// Every operation that can fail lists the error answer (health and
		// info answer from memory; health's 503 is its own body).
		if want.responses != nil && route != "GET /healthz" && route != "GET /v1/info" {
			def, _ := doc.resolve(obj(responses["default"]))
			if def == nil {
				t.Errorf("%s: no default (error) answer", route)
				continue
			}
			for _, msg := range doc.checkSchema(route+" error", obj(obj(obj(def["content"])["application/json"])["schema"]), errType) {
				t.Error(msg)
			}
		}
	}
}

// The type check is itself checked: a schema that lacks a field, has one
// too many, marks the wrong ones required or gives a wrong type is found.
func TestOpenAPITypeCheckCatches(t *testing.T) {
	doc := loadOpenAPI(t)
	typ := reflect.TypeFor[api.LinkRequest]()
	good := yamlObj{"type": "object", "required": []any{"link"}, "properties": yamlObj{"link": yamlObj{"type": "string", "contentEncoding": "base64"}}}
	if errs := doc.checkSchema("good", good, typ); errs != nil {
		t.Fatalf("a matching schema: %v", errs)
	}
	for name, s := range map[string]yamlObj{
		"missing field":  {"type": "object", "required": []any{}, "properties": yamlObj{}},
		"extra property": {"type": "object", "required": []any{"link"}, "properties": yamlObj{"link": yamlObj{"type": "string", "contentEncoding": "base64"}, "x": yamlObj{"type": "string"}}},
		"not required":   {"type": "object", "required": []any{}, "properties": yamlObj{"link": yamlObj{"type": "string", "contentEncoding": "base64"}}},
		"wrong type":     {"type": "object", "required": []any{"link"}, "properties": yamlObj{"link": yamlObj{"type": "string"}}},
		"not an object":  {"type": "string"},
	} {
		if errs := doc.checkSchema(name, s, typ); errs == nil {
			t.Errorf("%s: not found", name)
		}
	}
	if errs := doc.checkSchema("enrollment as head", yamlObj{"$ref": "#/components/schemas/Head"}, reflect.TypeFor[api.Enrollment]()); errs == nil {
		t.Error("the Head schema passed for api.Enrollment")
	}
}
