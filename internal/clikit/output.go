package clikit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// WriteJSON prints v, a struct or map that marshals to a JSON object, with
// "version": 1 as its first field: the contract of every --json answer.
// Output types are their own structs, never the library's types, so that
// a change inside a library does not change what scripts read.
func WriteJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(b) < 2 || b[0] != '{' {
		return fmt.Errorf("clikit: --json output must be an object, not %s", b)
	}
	obj := append([]byte(`{"version":1`), b[1:]...)
	if string(b) != "{}" {
		obj = append([]byte(`{"version":1,`), b[1:]...)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, obj, "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err = w.Write(out.Bytes())
	return err
}

// ErrorJSON is the --json answer of a failed command.
type ErrorJSON struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody describes the error: a stable code, the message, and a
// denial's reason codes.
type ErrorBody struct {
	Code    string   `json:"code"`
	Message string   `json:"message"`
	Reasons []string `json:"reasons,omitempty"`
}

// VersionJSON is `version --json`.
type VersionJSON struct {
	Program  string `json:"program"`
	Module   string `json:"module"`
	Release  string `json:"module_version"`
	Go       string `json:"go_version"`
	Revision string `json:"vcs_revision,omitempty"`
	Time     string `json:"vcs_time,omitempty"`
	Modified bool   `json:"vcs_modified,omitempty"`
}

// BuildVersion describes the running binary from its build information.
func BuildVersion(program string) VersionJSON {
	v := VersionJSON{Program: program, Release: "(unknown)", Go: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.Module, v.Release = bi.Main.Path, bi.Main.Version
	if v.Release == "" {
		v.Release = "(devel)"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

func (p *Program) versionCommand(io IO) *cobra.Command {
	return &cobra.Command{Use: "version", Short: "print the version of " + p.Name, GroupID: otherGroup,
		Long: "Prints the module version this binary was built from (a tag, or a pseudo-version\nfrom the commit), the Go version, and the commit when the build recorded it.\n\nexamples:\n  " +
			p.Name + " version\n  " + p.Name + " version --json",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return unknownCommand(c, args[0])
			}
			return nil
		},
		RunE: func(*cobra.Command, []string) error {
			v := BuildVersion(p.Name)
			if p.JSON != nil && p.JSON() {
				return WriteJSON(io.Stdout, v)
			}
			line := fmt.Sprintf("%s %s (%s", p.Name, v.Release, v.Go)
			if v.Revision != "" {
				line += ", commit " + v.Revision[:min(12, len(v.Revision))]
				if v.Modified {
					line += " modified"
				}
			}
			_, err := fmt.Fprintln(io.Stdout, line+")")
			return err
		}}
}

// libraryPrefixes are the Go package names that library errors put in
// front of their messages; wrapping repeats them ("keystore: chain: …"),
// and a user has no use for them.
var libraryPrefixes = map[string]bool{
	"keystore": true, "device": true, "chain": true, "client": true, "backend": true, "soft": true, "tpm": true,
	"pkcs11": true, "platform": true, "lifecycle": true, "policy": true, "envelope": true, "hybrid": true,
	"attestation": true, "posture": true, "command": true, "store": true, "attest": true, "translog": true,
}

// Message is err's text for a user: the Go package prefixes dropped.
func Message(err error) string {
	parts := strings.Split(err.Error(), ": ")
	out := parts[:0]
	for _, p := range parts {
		if !libraryPrefixes[p] {
			out = append(out, p)
		}
	}
	return strings.Join(out, ": ")
}
