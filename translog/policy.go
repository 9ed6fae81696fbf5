package translog

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// A witness policy in the c2sp.org/tlog-policy text format: the logs a
// party trusts, the witnesses it knows and the quorum of them whose
// cosignatures a checkpoint needs. Neither filippo.io/torchwood (v0.6.1
// has no policy parser) nor sigsum-go (its policy files carry hex Ed25519
// keys, not the vkeys tlog-policy specifies, and no ML-DSA-44) parses
// this format, hence this parser, which follows the spec strictly.

// Limits of a policy (tlog-policy recommends supporting at least 32 of
// each).
const (
	MaxPolicySize      = 64 << 10
	MaxPolicyLogs      = 32
	MaxPolicyWitnesses = 64
	MaxPolicyGroups    = 64
)

// ErrPolicy: a witness policy does not parse or breaks a rule of
// c2sp.org/tlog-policy. The message names the line.
var ErrPolicy = errors.New("translog: bad witness policy")

// PolicyNone is the predefined quorum name that requires no cosignature.
const PolicyNone = "none"

// Policy is a parsed c2sp.org/tlog-policy.
type Policy struct {
	// Logs are the log verifier keys of the "log" lines (signed-note
	// vkeys of type 0x01 or 0x06), in file order.
	Logs []string
	// Witnesses are the "witness" lines, in file order.
	Witnesses []PolicyWitness
	// Quorum is the name on the quorum line (PolicyNone, a witness or a
	// group).
	Quorum string

	quorum *quorumNode // nil for PolicyNone
}

// PolicyWitness is a witness of a policy: its name in the policy, its
// cosignature verifier key (type 0x04 Ed25519 cosignature/v1 or 0x06
// ML-DSA-44) and optional URL.
type PolicyWitness struct {
	Name string
	Key  string
	URL  string
}

// quorumNode is a witness (witness >= 0) or a group of k of members.
type quorumNode struct {
	name    string
	witness int
	k       int
	members []*quorumNode
}

// ParsePolicy parses a c2sp.org/tlog-policy file. Everything the spec
// forbids is an error naming the line: octets other than tab, newline,
// 0x20-0x7E and 0x80-0xFF, a last line without its newline, unknown
// keywords, keys of the wrong type or that do not parse, duplicate keys
// (the same public key under any name), names defined twice or used
// before their definition, a member listed twice (in one group or across
// groups), "none" as a member, a threshold outside 1…n or not in
// decimal, and zero or several quorum lines.
func ParsePolicy(text []byte) (*Policy, error) {
	if len(text) > MaxPolicySize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrPolicy, len(text), MaxPolicySize)
	}
	if len(text) > 0 && text[len(text)-1] != '\n' {
		return nil, fmt.Errorf("%w: the last line does not end with a newline", ErrPolicy)
	}
	p := &Policy{}
	names := map[string]*quorumNode{}
	keys := map[string]string{} // type || key -> what defined it
	used := map[string]bool{}   // names listed as a member
	quorums, groups := 0, 0
	lines := bytes.Split(text, []byte("\n"))
	for i, raw := range lines[:len(lines)-1] {
		n := i + 1
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%w: line %d: %s", ErrPolicy, n, fmt.Sprintf(format, args...))
		}
		for _, c := range raw {
			if c != '\t' && (c < 0x20 || c == 0x7f) {
				return nil, bad("control character 0x%02x (only tab and newline are allowed)", c)
			}
		}
		f := strings.FieldsFunc(string(raw), func(r rune) bool { return r == ' ' || r == '\t' })
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch f[0] {
		case "log":
			if len(f) < 2 || len(f) > 3 {
				return nil, bad("want log <vkey> [<url>]")
			}
			id, err := policyKey(f[1], sigEd25519, sigMLDSA44)
			if err != nil {
				return nil, bad("log key: %v", err)
			}
			if prev, ok := keys[id]; ok {
				return nil, bad("the log key is already listed (%s)", prev)
			}
			keys[id] = "log " + keyName(f[1])
			if len(p.Logs) == MaxPolicyLogs {
				return nil, bad("more than %d logs", MaxPolicyLogs)
			}
			p.Logs = append(p.Logs, f[1])
		case "witness":
			if len(f) < 3 || len(f) > 4 {
				return nil, bad("want witness <name> <vkey> [<url>]")
			}
			if err := newName(names, f[1]); err != nil {
				return nil, bad("%v", err)
			}
			id, err := policyKey(f[2], sigEd25519Cosig, sigMLDSA44)
			if err != nil {
				return nil, bad("witness %s: %v", f[1], err)
			}
			if prev, ok := keys[id]; ok {
				return nil, bad("witness %s: its key is already listed (%s)", f[1], prev)
			}
			keys[id] = "witness " + f[1]
			if len(p.Witnesses) == MaxPolicyWitnesses {
				return nil, bad("more than %d witnesses", MaxPolicyWitnesses)
			}
			w := PolicyWitness{Name: f[1], Key: f[2]}
			if len(f) == 4 {
				w.URL = f[3]
			}
			names[f[1]] = &quorumNode{name: f[1], witness: len(p.Witnesses)}
			p.Witnesses = append(p.Witnesses, w)
		case "group":
			if len(f) < 4 {
				return nil, bad("want group <name> all|any|<k> <name>...")
			}
			if err := newName(names, f[1]); err != nil {
				return nil, bad("%v", err)
			}
			groups++
			if groups > MaxPolicyGroups {
				return nil, bad("more than %d groups", MaxPolicyGroups)
			}
			g := &quorumNode{name: f[1], witness: -1}
			for _, m := range f[3:] {
				if m == PolicyNone {
					return nil, bad("group %s: %q cannot be a member", f[1], PolicyNone)
				}
				node, ok := names[m]
				if !ok {
					return nil, bad("group %s: %q is not a witness or group defined above", f[1], m)
				}
				if used[m] {
					return nil, bad("group %s: %q is already a member (of this or another group)", f[1], m)
				}
				used[m] = true
				g.members = append(g.members, node)
			}
			switch k := f[2]; k {
			case "all":
				g.k = len(g.members)
			case "any":
				g.k = 1
			default:
				v, err := strconv.Atoi(k)
				if err != nil || k[0] < '1' || k[0] > '9' || v < 1 || v > len(g.members) {
					return nil, bad("group %s: threshold %q: want all, any or a decimal 1 to %d", f[1], k, len(g.members))
				}
				g.k = v
			}
			names[f[1]] = g
		case "quorum":
			if len(f) != 2 {
				return nil, bad("want quorum <name>")
			}
			if quorums++; quorums > 1 {
				return nil, bad("a second quorum line")
			}
			p.Quorum = f[1]
			if f[1] != PolicyNone {
				node, ok := names[f[1]]
				if !ok {
					return nil, bad("quorum %q is not a witness or group defined above", f[1])
				}
				p.quorum = node
			}
		default:
			return nil, bad("unknown keyword %q (want log, witness, group or quorum)", f[0])
		}
	}
	if quorums == 0 {
		return nil, fmt.Errorf("%w: no quorum line (write \"quorum none\" to require no cosignature)", ErrPolicy)
	}
	return p, nil
}

func newName(names map[string]*quorumNode, name string) error {
	if name == PolicyNone {
		return fmt.Errorf("%q is predefined", PolicyNone)
	}
	if _, ok := names[name]; ok {
		return fmt.Errorf("the name %q is already defined", name)
	}
	return nil
}

// policyKey parses a vkey of one of the types allowed and returns the
// public key it wraps (without its type: tlog-policy calls two vkeys
// duplicates when they wrap the same key, whatever their names).
func policyKey(vkey string, types ...byte) (string, error) {
	v, typ, err := newVerifier(vkey)
	if err != nil {
		return "", err
	}
	if !bytes.Contains(types, []byte{typ}) {
		return "", fmt.Errorf("key %s has signature type 0x%02x, allowed here: % x", v.Name(), typ, types)
	}
	parts := strings.SplitN(vkey, "+", 3)
	raw, _ := base64.StdEncoding.DecodeString(parts[2]) // newVerifier decoded it
	return string(raw[1:]), nil
}

func keyName(vkey string) string {
	name, _, _ := strings.Cut(vkey, "+")
	return name
}

// CheckLogKeys checks that vkeys are log verifier keys (Ed25519, type
// 0x01, or ML-DSA-44, type 0x06) named origin, as VerifyCheckpoint needs
// them: a pin a device is configured with.
func CheckLogKeys(origin string, vkeys []string) error {
	if len(vkeys) == 0 {
		return fmt.Errorf("%w: no verifier keys", ErrBadKey)
	}
	for _, k := range vkeys {
		v, typ, err := newVerifier(k)
		if err != nil {
			return err
		}
		if typ != sigEd25519 && typ != sigMLDSA44 {
			return fmt.Errorf("%w: %q has signature type 0x%02x, not a log key (0x01 Ed25519 or 0x06 ML-DSA-44)", ErrBadKey, v.Name(), typ)
		}
		if v.Name() != origin {
			return fmt.Errorf("%w: verifier key named %q for the log %q", ErrBadKey, v.Name(), origin)
		}
	}
	return nil
}

// RequiresWitnesses reports whether the quorum needs any cosignature.
func (p *Policy) RequiresWitnesses() bool { return p != nil && p.quorum != nil }

// Satisfied reports whether the witnesses for which cosigned(i) is true
// (i indexes Witnesses) meet the quorum.
func (p *Policy) Satisfied(cosigned func(i int) bool) bool {
	if p.quorum == nil {
		return true
	}
	return p.quorum.satisfied(cosigned)
}

func (n *quorumNode) satisfied(cosigned func(i int) bool) bool {
	if n.witness >= 0 {
		return cosigned(n.witness)
	}
	c := 0
	for _, m := range n.members {
		if m.satisfied(cosigned) {
			c++
		}
	}
	return c >= n.k
}

// MinWitnesses is the least number of witnesses whose cosignatures can
// meet the quorum (0 for PolicyNone).
func (p *Policy) MinWitnesses() int {
	if p.quorum == nil {
		return 0
	}
	return p.quorum.min()
}

func (n *quorumNode) min() int {
	if n.witness >= 0 {
		return 1
	}
	ms := make([]int, len(n.members))
	for i, m := range n.members {
		ms[i] = m.min()
	}
	// The k cheapest members.
	for i := range ms {
		for j := i + 1; j < len(ms); j++ {
			if ms[j] < ms[i] {
				ms[i], ms[j] = ms[j], ms[i]
			}
		}
	}
	s := 0
	for _, v := range ms[:n.k] {
		s += v
	}
	return s
}
