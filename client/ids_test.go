package client

import (
	"encoding/hex"
	"strings"
	"testing"
)

// Account and device ids parse from hex of their exact size in either
// case; anything else is refused with the id's kind and size, and a
// refused id is the zero id.
func TestParseIDs(t *testing.T) {
	acct, dev := strings.Repeat("ab", 32), strings.Repeat("cd", 16)
	for _, tc := range []struct {
		desc, in string
		device   bool
		wantErr  string
	}{
		{desc: "account", in: acct},
		{desc: "account in upper case", in: strings.ToUpper(acct)},
		{desc: "device", in: dev, device: true},
		{desc: "device in upper case", in: strings.ToUpper(dev), device: true},
		{desc: "device id as account", in: dev, wantErr: `"` + dev + `" is not a 64-digit hex account id`},
		{desc: "account id as device", in: acct, device: true, wantErr: `"` + acct + `" is not a 32-digit hex device id`},
		{desc: "not hex", in: "zz" + acct[2:], wantErr: "is not a 64-digit hex account id"},
		{desc: "odd length", in: dev[1:], device: true, wantErr: "is not a 32-digit hex device id"},
		{desc: "empty", in: "", wantErr: `"" is not a 64-digit hex account id`},
	} {
		var got []byte
		var err error
		if tc.device {
			d, e := ParseDeviceID(tc.in)
			got, err = d[:], e
		} else {
			a, e := ParseAccountID(tc.in)
			got, err = a[:], e
		}
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.desc, err)
		case tc.wantErr == "" && !strings.EqualFold(hex.EncodeToString(got), tc.in):
			t.Errorf("%s: parsed %x", tc.desc, got)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: err = %v, want %q", tc.desc, err, tc.wantErr)
		case tc.wantErr != "" && strings.Trim(hex.EncodeToString(got), "0") != "":
			t.Errorf("%s: a refused id is %x, not zero", tc.desc, got)
		}
	}
}
