package device

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/enigm/enigm/chain"
)

// AgentFile is the agent's database in the home directory, beside the
// keystore: what this device knows about its account and the chains it
// verified. It holds no secret.
const AgentFile = "agent.db"

var (
	bucketConfig = []byte("config")
	bucketInbox  = []byte("inbox")
	keyConfig    = []byte("config")
)

// Status of this device in its account.
const (
	StatusNone       = ""           // no account yet
	StatusEnrolling  = "enrolling"  // enrollment requested
	StatusRecovering = "recovering" // recovery requested
	StatusActive     = "active"
	StatusRevoked    = "revoked"
	StatusRetired    = "retired" // replaced by another device
)

// config is the agent's persistent state.
type config struct {
	Server      string            `json:"server,omitempty"`
	AccountName string            `json:"account_name,omitempty"`
	Account     string            `json:"account_id,omitempty"`
	Identity    string            `json:"identity_key,omitempty"`
	KEM         string            `json:"kem_key,omitempty"`
	DeviceName  string            `json:"device_name,omitempty"`
	Status      string            `json:"status,omitempty"`
	Pending     *pending          `json:"pending,omitempty"`
	Calls       map[string]string `json:"calls,omitempty"`    // call id -> session key id (calls this device started)
	Contacts    map[string]string `json:"contacts,omitempty"` // name -> account id, pinned at first use
}

// pending is an enrollment, replacement or recovery waiting for others.
type pending struct {
	Kind        string    `json:"kind"` // "enroll", "replace", "recover"
	RequestID   string    `json:"request_id"`
	Body        []byte    `json:"body,omitempty"`
	PairingCode string    `json:"pairing_code,omitempty"`
	NotBefore   time.Time `json:"not_before,omitempty"`
	Old         string    `json:"old_device,omitempty"` // replace: the device being replaced
}

func (c *config) account() (chain.AccountID, bool) {
	var a chain.AccountID
	b, err := hex.DecodeString(c.Account)
	if err != nil || len(b) != len(a) {
		return a, false
	}
	copy(a[:], b)
	return a, true
}

// agentDB wraps the agent's bbolt file.
type agentDB struct {
	db        *bolt.DB
	seenLimit int64 // replay-set bound; 0 means MaxSeen (tests set less)
}

func openAgentDB(home string) (*agentDB, error) {
	db, err := bolt.Open(filepath.Join(home, AgentFile), 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("device: %s is in use by another enigm process", filepath.Join(home, AgentFile))
	}
	if err != nil {
		return nil, fmt.Errorf("device: opening %s: %w", AgentFile, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketConfig, bucketInbox} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &agentDB{db: db}, nil
}

func (a *agentDB) close() error { return a.db.Close() }

func (a *agentDB) config() (*config, error) {
	var c config
	err := a.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketConfig).Get(keyConfig)
		if b == nil {
			return nil
		}
		return json.Unmarshal(b, &c)
	})
	if err != nil {
		return nil, fmt.Errorf("device: %s: %w", AgentFile, err)
	}
	return &c, nil
}

func (a *agentDB) save(c *config) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return a.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketConfig).Put(keyConfig, b) })
}

func chainBucket(acct chain.AccountID) []byte { return []byte("chain:" + hex.EncodeToString(acct[:])) }

// Links implements client.Store.
func (a *agentDB) Links(acct chain.AccountID) ([][]byte, error) {
	var out [][]byte
	err := a.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(chainBucket(acct))
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, v []byte) error {
			out = append(out, append([]byte(nil), v...))
			return nil
		})
	})
	return out, err
}

// Append implements client.Store: links extend the stored ones, keyed by
// their position.
func (a *agentDB) Append(acct chain.AccountID, links [][]byte) error {
	return a.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(chainBucket(acct))
		if err != nil {
			return err
		}
		n := uint64(0)
		if k, _ := b.Cursor().Last(); k != nil {
			n = binary.BigEndian.Uint64(k) + 1
		}
		for i, l := range links {
			var k [8]byte
			binary.BigEndian.PutUint64(k[:], n+uint64(i))
			if err := b.Put(k[:], l); err != nil {
				return err
			}
		}
		return nil
	})
}

// forgetChain drops an account's stored links (a chain that was never
// verified beyond an abandoned first contact).
func (a *agentDB) forgetChain(acct chain.AccountID) error {
	return a.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(chainBucket(acct)) == nil {
			return nil
		}
		return tx.DeleteBucket(chainBucket(acct))
	})
}

// inbox keeps call envelopes until they are accepted.
func (a *agentDB) putInbox(callID string, env []byte) error {
	return a.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketInbox).Put([]byte(callID), env) })
}

func (a *agentDB) inbox(callID string) ([]byte, error) {
	var out []byte
	err := a.db.View(func(tx *bolt.Tx) error {
		out = append([]byte(nil), tx.Bucket(bucketInbox).Get([]byte(callID))...)
		return nil
	})
	return out, err
}

func (a *agentDB) dropInbox(callID string) error {
	return a.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketInbox).Delete([]byte(callID)) })
}
