package api

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/internal/redact"
)

var (
	acct = strings.Repeat("ab", AccountIDSize)
	dev  = strings.Repeat("cd", DeviceIDSize)
)

// wantErr fails t unless err says want ("" for no error); it reports
// whether an error was wanted.
func wantErr(t *testing.T, err error, want string) bool {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		return false
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want one saying %q", err, want)
	}
	return true
}

func TestDecodeJSONStrict(t *testing.T) {
	for _, tc := range []struct {
		desc, body, wantErr string
	}{
		{"ok", `{"account_id":"` + acct + `","device_id":"` + dev + `"}`, ""},
		{"ok with spaces", " {\n\"account_id\" : \"" + acct + "\"}\r\n", ""},
		{"duplicate key", `{"account_id":"a","account_id":"b"}`, `key "account_id" twice`},
		{"case-folded key", `{"Account_ID":"` + acct + `"}`, `key "Account_ID"`},
		{"upper case", `{"DEVICE_ID":"` + dev + `"}`, `key "DEVICE_ID"`},
		{"long s folds to s", `{"device_id":"` + dev + `","account_id":"x","ſ":1}`, `key "ſ"`},
		{"Kelvin sign folds to k", `{"\u212a":1}`, "lowercase snake_case"},
		{"escaped upper case", `{"\u0041ccount_id":"x"}`, `key "Account_id"`},
		{"unknown field", `{"account_id":"x","extra":1}`, `unknown field "extra"`},
		{"trailing data", `{"account_id":"x"} {}`, "after the request object"},
		{"trailing garbage", `{"account_id":"x"}]`, "malformed JSON"},
		{"not an object", `["account_id"]`, "must be a JSON object"},
		{"empty", ``, "empty request body"},
		{"blank", " \n", "empty request body"},
		{"unterminated", `{"account_id":"x"`, "malformed JSON"},
		{"deep", strings.Repeat(`{"a":`, 40) + "1" + strings.Repeat("}", 40), "nested deeper"},
		{"wrong type", `{"account_id":7}`, "malformed JSON"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var v ChallengeRequest
			wantErr(t, DecodeJSON([]byte(tc.body), &v), tc.wantErr)
		})
	}
	// Nested objects and objects in arrays are checked too.
	for _, body := range []string{
		`{"head":{"seq":1,"seq":2,"hash":"x"},"signature":"AA=="}`,
		`{"head":{"Seq":1,"hash":"x"},"signature":"AA=="}`,
	} {
		var q ApproveRequest
		if err := DecodeJSON([]byte(body), &q); err == nil {
			t.Errorf("%s accepted", body)
		}
	}
	var s SendRequest
	if err := DecodeJSON([]byte(`{"kind":"message","envelopes":[{"account_id":"a"},{"device_id":"b","device_id":"c"}]}`), &s); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("a duplicate key in an array's object: %v", err)
	}
	// encoding/json itself takes both, which is why DecodeJSON checks keys.
	var q ChallengeRequest
	if err := json.Unmarshal([]byte(`{"Account_ID":"x","account_id":"y","ACCOUNT_ID":"z"}`), &q); err != nil || q.AccountID != "z" {
		t.Fatalf("encoding/json: %v %q (the test's premise changed: revisit DecodeJSON)", err, q.AccountID)
	}
}

func TestValidate(t *testing.T) {
	link := []byte{0xa0}
	sig := make([]byte, 64)
	yes := true
	for _, tc := range []struct {
		desc    string
		v       interface{ Validate() error }
		wantErr string
		tooBig  bool
		chain   bool
	}{
		{"link", LinkRequest{Link: link}, "", false, false},
		{"no link", LinkRequest{}, "link is missing", false, false},
		{"link too large", LinkRequest{Link: make([]byte, chain.MaxLinkSize+1)}, "link size limit", false, true},
		{"account", CreateAccount{Name: "alice", Genesis: link}, "", false, false},
		{"account with invite", CreateAccount{Name: "alice", Genesis: link, Invite: "abcdefghij-0123456789"}, "", false, false},
		{"bad name", CreateAccount{Name: "Alice", Genesis: link}, "name must be", false, false},
		{"long name", CreateAccount{Name: strings.Repeat("a", 65), Genesis: link}, "name must be", false, false},
		{"no genesis", CreateAccount{Name: "alice"}, "genesis is missing", false, false},
		{"bad invite", CreateAccount{Name: "alice", Genesis: link, Invite: "short"}, "malformed invite", false, false},
		{"enroll", EnrollRequest{Type: TypeReplaceDevice, Body: link}, "", false, false},
		{"enroll type", EnrollRequest{Type: "genesis", Body: link}, `type must be`, false, false},
		{"enroll no body", EnrollRequest{Type: TypeAddDevice}, "body is missing", false, false},
		{"enroll body too large", EnrollRequest{Type: TypeAddDevice, Body: make([]byte, chain.MaxBodySize+1)}, "body is", true, false},
		{"approve", ApproveRequest{Head: Head{Hash: acct}, Signature: sig}, "", false, false},
		{"approve bad hash", ApproveRequest{Head: Head{Hash: "AB"}, Signature: sig}, "head.hash must be 64 lowercase hex digits", false, false},
		{"approve no signature", ApproveRequest{Head: Head{Hash: acct}}, "signature is missing", false, false},
		{"approve signature too large", ApproveRequest{Head: Head{Hash: acct}, Signature: make([]byte, 4000)}, "signature is 4000 bytes", true, false},
		{"challenge", ChallengeRequest{AccountID: acct, DeviceID: dev}, "", false, false},
		{"challenge upper-case id", ChallengeRequest{AccountID: strings.ToUpper(acct), DeviceID: dev}, "account_id must be 64 lowercase hex digits", false, false},
		{"challenge short device", ChallengeRequest{AccountID: acct, DeviceID: "abcd"}, "device_id must be 32", false, false},
		{"challenge no device", ChallengeRequest{AccountID: acct}, "device_id is missing", false, false},
		{"token", TokenRequest{AccountID: acct, DeviceID: dev, Challenge: make([]byte, 32), Signature: sig}, "", false, false},
		{"token challenge too large", TokenRequest{AccountID: acct, DeviceID: dev, Challenge: make([]byte, 33), Signature: sig}, "challenge is 33 bytes", true, false},
		{"send", SendRequest{Kind: KindMessage, Envelopes: []OutgoingEnvelope{{AccountID: acct, DeviceID: dev, Ciphertext: link}}}, "", false, false},
		{"send call without id", SendRequest{Kind: KindCall, Envelopes: []OutgoingEnvelope{{AccountID: acct, DeviceID: dev, Ciphertext: link}}}, "call_id", false, false},
		{"send message with call id", SendRequest{Kind: KindMessage, CallID: "c1", Envelopes: []OutgoingEnvelope{{AccountID: acct, DeviceID: dev, Ciphertext: link}}}, "call_id goes with kind call", false, false},
		{"send no envelopes", SendRequest{Kind: KindMessage}, "1-256 envelopes", false, false},
		{"send bad kind", SendRequest{Kind: "sms"}, "kind must be", false, false},
		{"send big ciphertext", SendRequest{Kind: KindMessage, Envelopes: []OutgoingEnvelope{{AccountID: acct, DeviceID: dev, Ciphertext: make([]byte, MaxCiphertext+1)}}}, "ciphertext is", true, false},
		{"send message form", SendMessage{Message: link}, "", false, false},
		{"send message form at its limit", SendMessage{Message: make([]byte, MaxMessageForm)}, "", false, false},
		{"send no message form", SendMessage{}, "message is missing", false, false},
		{"send message form too large", SendMessage{Message: make([]byte, MaxMessageForm+1)}, "message is 606209 bytes", true, false},
		{"send result", SendResult{Accepted: []string{dev}, Rejected: []Rejected{{DeviceID: dev, Reason: "not_active"}}}, "", false, false},
		{"send result bad device", SendResult{Accepted: []string{"xyz"}}, "accepted[] must be", false, false},
		{"ack", AckRequest{IDs: []string{"1", "22"}}, "", false, false},
		{"ack bad id", AckRequest{IDs: []string{"-1"}}, `envelope id "-1"`, false, false},
		{"ack too many", AckRequest{IDs: make([]string, MaxAck+1)}, "at most 1000 ids", false, false},
		{"revoke", RevokeRequest{DeviceID: dev}, "", false, false},
		{"revoke long reason", RevokeRequest{DeviceID: dev, Reason: strings.Repeat("x", 501)}, "reason is at most 500", false, false},
		{"deny long reason", Reason{Reason: strings.Repeat("x", 501)}, "reason is at most 500", false, false},
		{"review", ReviewRequest{Approve: &yes}, "", false, false},
		{"review without approve", ReviewRequest{}, "approve (true or false) is required", false, false},
		{"policy update", PolicyUpdate{RequireAdminReview: &yes}, "", false, false},
		{"empty policy update", PolicyUpdate{}, "no policy field given", false, false},
		{"policy", Policy{RecoveryDelaySeconds: 3600, MinLevel: "hardware-tpm"}, "", false, false},
		{"policy level", Policy{MinLevel: "hardware-magic"}, "unknown protection level", false, false},
		{"policy delay", Policy{RecoveryDelaySeconds: -1}, "recovery delay must be", false, false},
		{"witness policy", Policy{WitnessPolicy: testWitnessPolicy, WitnessMaxAgeSeconds: 1800}, "", false, false},
		{"witness policy that does not parse", Policy{WitnessPolicy: "witness W nokey\nquorum W\n"}, "witness_policy: translog: bad witness policy: line 1", false, false},
		{"witness policy without its last newline", Policy{WitnessPolicy: "quorum none"}, "last line does not end with a newline", false, true},
		{"witness policy too large", Policy{WitnessPolicy: strings.Repeat("#\n", 4097) + "quorum none\n"}, "at most 8192", false, true},
		{"witness maximum age without a policy", Policy{WitnessMaxAgeSeconds: 60}, "needs a witness policy", false, false},
		{"witness maximum age too large", Policy{WitnessPolicy: testWitnessPolicy, WitnessMaxAgeSeconds: 30*24*3600 + 1}, "witness maximum age must be in", false, false},
		{"policy update negative witness age", PolicyUpdate{WitnessMaxAgeSeconds: ptrTo(int64(-1))}, "witness_max_age_seconds must not be negative", false, false},
		{"enrollment", Enrollment{RequestID: strings.Repeat("0", 32), AccountID: acct, DeviceID: dev, Type: TypeAddDevice, Body: link,
			Approvals: []Approval{{Role: "device", Signer: dev, Signature: sig}, {Role: "org", Signature: sig}}}, "", false, false},
		{"enrollment org signer", Enrollment{RequestID: strings.Repeat("0", 32), AccountID: acct, DeviceID: dev, Type: TypeAddDevice, Body: link,
			Approvals: []Approval{{Role: "org", Signer: dev, Signature: sig}}}, "org approval names no signer", false, false},
		{"enrollment bad request id", Enrollment{RequestID: "x", AccountID: acct, DeviceID: dev, Type: TypeAddDevice, Body: link}, "request_id must be 32", false, false},
		{"recovery", Recovery{RecoveryID: acct, AccountID: acct, DeviceID: dev, State: RecoveryReady}, "", false, false},
		{"recovery state", Recovery{RecoveryID: acct, AccountID: acct, DeviceID: dev, State: "lost"}, `unknown recovery state "lost"`, false, false},
		{"chain", Chain{AccountID: acct, Head: Head{Hash: acct}, Links: [][]byte{link}}, "", false, false},
		{"chain empty link", Chain{AccountID: acct, Head: Head{Hash: acct}, Links: [][]byte{{}}}, "links[0] is missing", false, false},
		{"info version", Info{Version: 2}, "API version 2", false, false},
		{"info with log", Info{Version: 1, Log: &LogInfo{Origin: "enigm-command/x", PublicKeys: []string{"k"}}}, "", false, false},
		{"info log without keys", Info{Version: 1, Log: &LogInfo{Origin: "enigm-command/x"}}, "at least one public key", false, false},
		{"info log without origin", Info{Version: 1, Log: &LogInfo{PublicKeys: []string{"k"}}}, "an origin", false, false},
		{"error without code", Error{}, "without a code", false, false},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			err := tc.v.Validate()
			if !wantErr(t, err, tc.wantErr) {
				return
			}
			if errors.Is(err, ErrTooLarge) != tc.tooBig {
				t.Fatalf("%v: ErrTooLarge %v, want %v", err, errors.Is(err, ErrTooLarge), tc.tooBig)
			}
			if _, ok := chain.CodeOf(err); ok != tc.chain {
				t.Fatalf("%v: a chain code %v, want %v", err, ok, tc.chain)
			}
		})
	}
}

// The CBOR bodies, byte for byte (they are the wire format of the link
// endpoints; nothing is signed over them).
func TestCBORGolden(t *testing.T) {
	h := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		desc string
		v    any
		hex  string
	}{
		// a1 map(1); 01 key 1; 43 a0 01 02 bstr(3)
		{"link", &LinkRequest{Link: []byte{0xa0, 0x01, 0x02}}, "a1" + "01" + "43a00102"},
		// a2; 01 64 "test"; 02 41 00
		{"enroll", &EnrollRequest{Type: "test", Body: []byte{0}}, "a2" + "016474657374" + "024100"},
		// a2; 01 a2 {01 07, 02 78 40 "abab…"}; 02 42 0102
		{"approve", &ApproveRequest{Head: Head{Seq: 7, Hash: h}, Signature: []byte{1, 2}}, "a2" + "01a2" + "0107" + "027840" + hex.EncodeToString([]byte(h)) + "02420102"},
		// seq 0 is left out: a1 01 a1 02 78 40 …
		{"head at seq 0", &HeadResponse{Head: Head{Hash: h}}, "a101a1" + "027840" + hex.EncodeToString([]byte(h))},
		// a3; 01 61 "a"; 02 41 a0; 03 61 "i"
		{"account", &CreateAccount{Name: "a", Genesis: []byte{0xa0}, Invite: "i"}, "a3" + "016161" + "0241a0" + "036169"},
		// a3; 04 61 "x"; 05 1a 6a4c2a80 (Unix 1783376512)…
		{"recovery", &Recovery{State: "x", RequestedAt: time.Unix(1783376512, 0), NotBefore: time.Unix(1783380112, 0)}, "a3" + "046178" + "051a6a4c2a80" + "061a6a4c3890"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			b, err := MarshalCBOR(tc.v)
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(b); got != tc.hex {
				t.Fatalf("encoding\n got %s\nwant %s", got, tc.hex)
			}
			back := reflect.New(reflect.TypeOf(tc.v).Elem()).Interface()
			if err := UnmarshalCBOR(b, back); err != nil {
				t.Fatal(err)
			}
			if again, _ := MarshalCBOR(back); !bytes.Equal(again, b) {
				t.Fatalf("round trip: %x", again)
			}
		})
	}
}

// Parse then marshal gives back exactly the input, for every CBOR body:
// one value, one encoding.
func FuzzCBORMalleability(f *testing.F) {
	for _, v := range []any{
		&LinkRequest{Link: []byte{0xa0}}, &EnrollRequest{Type: TypeAddDevice, Body: []byte{1}},
		&ApproveRequest{Head: Head{Seq: 1, Hash: acct}, Signature: []byte{2}}, &CreateAccount{Name: "n", Genesis: []byte{3}},
		&Enrollment{RequestID: "r", Approvals: []Approval{{Role: "org", Signature: []byte{4}}}, CreatedAt: time.Unix(1, 0)},
		&Recovery{RecoveryID: "x", NotBefore: time.Unix(2, 0)}, &HeadResponse{Head: Head{Seq: 3}}, &AccountCreated{AccountID: "a"},
	} {
		b, err := MarshalCBOR(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, v := range []any{&LinkRequest{}, &EnrollRequest{}, &ApproveRequest{}, &CreateAccount{}, &Enrollment{}, &Recovery{}, &HeadResponse{}, &AccountCreated{}} {
			if UnmarshalCBOR(b, v) != nil {
				continue
			}
			again, err := MarshalCBOR(v)
			if err != nil {
				t.Fatalf("%T decoded from %x does not encode: %v", v, b, err)
			}
			if !bytes.Equal(again, b) {
				t.Fatalf("%T: %x decodes and encodes to %x", v, b, again)
			}
		}
	})
}

// api/openapi.yaml's CDDL of the CBOR bodies gives each field the key its
// cbor tag gives it.
func TestOpenAPICDDLMatchesTags(t *testing.T) {
	b, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	types := map[string]reflect.Type{
		"Head": reflect.TypeFor[Head](), "LinkRequest": reflect.TypeFor[LinkRequest](), "CreateAccount": reflect.TypeFor[CreateAccount](),
		"AccountCreated": reflect.TypeFor[AccountCreated](), "EnrollRequest": reflect.TypeFor[EnrollRequest](), "ApproveRequest": reflect.TypeFor[ApproveRequest](),
		"HeadResponse": reflect.TypeFor[HeadResponse](), "Approval": reflect.TypeFor[Approval](), "Enrollment": reflect.TypeFor[Enrollment](),
		"Recovery": reflect.TypeFor[Recovery](),
	}
	entry := regexp.MustCompile(`(\d+): (?:\[\+ )?[A-Za-z]+\]? ?([a-z_]*)`)
	for name, typ := range types {
		i := strings.Index(text, "        "+name+" ")
		if i < 0 {
			t.Errorf("%s: no CDDL in api/openapi.yaml", name)
			continue
		}
		def := text[i:]
		def = def[strings.Index(def, "{")+1 : strings.Index(def, "}")]
		got := map[int]string{}
		for _, m := range entry.FindAllStringSubmatch(def, -1) {
			k, _ := strconv.Atoi(m[1])
			got[k] = m[2]
		}
		want := map[int]string{}
		for i := range typ.NumField() {
			f := typ.Field(i)
			key, _, _ := strings.Cut(f.Tag.Get("cbor"), ",")
			jname, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			k, err := strconv.Atoi(key)
			if err != nil {
				t.Fatalf("%s.%s: cbor key %q", name, f.Name, key)
			}
			want[k] = jname
		}
		// A nested body is named by its type in the CDDL (1: Head).
		for k, v := range got {
			if v == "" {
				got[k] = want[k]
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: CDDL keys %v, cbor tags %v", name, got, want)
		}
	}
}

// The bodies that hold a credential print none of it.
func TestBodiesRedacted(t *testing.T) {
	invite := "inv0123456789abcdefghijklmnopqrstu"
	if err := redact.Leak(CreateAccount{Name: "alice", Invite: invite}, []byte(invite)); err != nil {
		t.Fatal(err)
	}
	tok := "edt_0123456789abcdefghijklmnopqrstuvwxyz"
	if err := redact.Leak(&Token{Token: tok}, []byte(tok)); err != nil {
		t.Fatal(err)
	}
}

const testWitnessPolicy = "witness W witness1.example+111a825d+BDnDsV597eY0/bbja9tOiBsT5rsFFIVvaXTrOEYcJ8/o\nquorum W\n"

func ptrTo[T any](v T) *T { return &v }

// TestPolicyUpdateWitness: removing the witness policy removes its
// maximum age unless the update sets one (which the policy then refuses),
// and the witness fields convert to the chain's policy and back.
func TestPolicyUpdateWitness(t *testing.T) {
	p := Policy{RecoveryDelaySeconds: 3600, WitnessPolicy: testWitnessPolicy, WitnessMaxAgeSeconds: 600}
	if back := PolicyFromChain(p.ChainPolicy()); back != p {
		t.Fatalf("through the chain's policy: %+v, want %+v", back, p)
	}
	if got := (PolicyUpdate{WitnessPolicy: ptrTo("")}).Apply(p); got.WitnessPolicy != "" || got.WitnessMaxAgeSeconds != 0 || got.RecoveryDelaySeconds != 3600 {
		t.Fatalf("removed: %+v", got)
	}
	if got := (PolicyUpdate{WitnessPolicy: ptrTo(""), WitnessMaxAgeSeconds: ptrTo(int64(60))}).Apply(p); got.Validate() == nil {
		t.Fatalf("a maximum age without a policy validated: %+v", got)
	}
	if got := (PolicyUpdate{WitnessMaxAgeSeconds: ptrTo(int64(60))}).Apply(p); got.WitnessPolicy != testWitnessPolicy || got.WitnessMaxAgeSeconds != 60 {
		t.Fatalf("the age alone: %+v", got)
	}
}
