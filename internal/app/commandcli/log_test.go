package commandcli

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/enigm/enigm/translog"
)

// TestServePublishesLog: `enigm-command serve` without a log flag
// publishes signed checkpoints under /log/, under the keys that `log
// public-key` prints and GET /v1/info advertises.
func TestServePublishesLog(t *testing.T) {
	data := t.TempDir()
	r := cli(t, nil, "log", "public-key", "--data", data, "--json")
	var keys logKeysJSON
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &keys) != nil || len(keys.PublicKeys) != 2 {
		t.Fatalf("log public-key: %d %s %s", r.code, r.stdout, r.stderr)
	}
	url := serve(t, data)
	var info struct {
		Log struct {
			Origin     string   `json:"origin"`
			PublicKeys []string `json:"public_keys"`
		} `json:"log"`
	}
	resp, err := http.Get(url + "/v1/info")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	if info.Log.Origin != keys.Origin || strings.Join(info.Log.PublicKeys, " ") != strings.Join(keys.PublicKeys, " ") {
		t.Fatalf("GET /v1/info log %+v, log public-key %+v", info.Log, keys)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url + "/log/checkpoint")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			if _, err := translog.VerifyCheckpoint(body, keys.Origin, keys.PublicKeys); err != nil {
				t.Fatalf("the served checkpoint: %v\n%s", err, body)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint within 10s: %d %s", resp.StatusCode, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
