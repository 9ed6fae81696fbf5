package command

import (
	"maps"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/enigm/enigm/api"
)

// GET …/chain and …/devices after a head the caller verified (after=SEQ
// &hash=HASH) send only the links after it, and refuse with 409
// not_on_chain and the server's head when that head is not on the
// account's chain: another link at that seq, or a chain that ends before
// it. The device list is whole in every answer.
func TestChainAfterVerifiedHead(t *testing.T) {
	e := newEnv(t)
	a, _, _ := e.twoDevices("hana")
	a.sync()
	h0, h1 := a.st.Head(), a.head() // the head after B's enrollment: seq 1
	genesis := a.id                 // the account id is the genesis hash
	if h0.Seq != 1 {
		t.Fatalf("head seq %d, want 1", h0.Seq)
	}
	for _, ep := range []string{"chain", "devices"} {
		base := "/v1/accounts/" + a.id + "/" + ep
		var got api.DeviceList
		e.want(e.do("GET", base+"?after=0&hash="+genesis, "", nil), 200, "").decode(t, &got)
		if len(got.Links) != 1 || got.Head != h1 {
			t.Fatalf("%s after the genesis: %d links, head %+v", ep, len(got.Links), got.Head)
		}
		if ep == "devices" && len(got.Devices) != 2 {
			t.Fatalf("devices after the genesis: %d devices, want 2", len(got.Devices))
		}
		e.want(e.do("GET", base+"?after=1&hash="+h1.Hash, "", nil), 200, "").decode(t, &got)
		if len(got.Links) != 0 || got.Head != h1 {
			t.Fatalf("%s at the head: %d links, head %+v", ep, len(got.Links), got.Head)
		}
		for _, q := range []string{
			"?after=1&hash=" + genesis,                  // another link at seq 1
			"?after=0&hash=" + strings.Repeat("ab", 32), // another genesis
			"?after=5&hash=" + h1.Hash,                  // beyond the head
		} {
			r := e.want(e.do("GET", base+q, "", nil), http.StatusConflict, api.CodeNotOnChain)
			var body api.Error
			r.decode(t, &body)
			if body.Head == nil || *body.Head != h1 {
				t.Fatalf("%s%s: 409 without the server's head: %s", ep, q, r.body)
			}
		}
		for _, q := range []string{
			"?hash=" + h1.Hash,  // a hash without a seq
			"?after=1&hash=xyz", // not a hash
			"?after=1&hash=" + genesis[:10],
		} {
			e.want(e.do("GET", base+q, "", nil), http.StatusBadRequest, "bad_request")
		}
	}
}

// The query parameters of the chain and device-list operations in
// api/openapi.yaml are exactly the query tags of api.ChainQuery, with the
// types it parses.
func TestOpenAPIChainQuery(t *testing.T) {
	b, err := os.ReadFile("../api/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths      map[string]map[string]yamlObj `yaml:"paths"`
		Components struct {
			Parameters map[string]yamlObj `yaml:"parameters"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	typ := reflect.TypeFor[api.ChainQuery]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		kind := "string"
		if f.Type.Kind() == reflect.Int64 {
			kind = "integer"
		}
		want[f.Tag.Get("query")] = kind
	}
	for _, path := range []string{"/v1/accounts/{id}/chain", "/v1/accounts/{id}/devices"} {
		got := map[string]string{}
		for _, p := range asList(doc.Paths[path]["get"]["parameters"]) {
			ref, _ := obj(p)["$ref"].(string)
			param := doc.Components.Parameters[strings.TrimPrefix(ref, "#/components/parameters/")]
			if param == nil {
				t.Fatalf("%s: parameter %v not found", path, p)
			}
			if param["in"] == "query" {
				got[param["name"].(string)], _ = obj(param["schema"])["type"].(string)
			}
		}
		if !maps.Equal(got, want) {
			t.Errorf("%s: query parameters %v, api.ChainQuery has %v", path, got, want)
		}
	}
}
