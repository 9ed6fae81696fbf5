//go:build cgo

package pkcs11

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"errors"
	"testing"

	p11 "github.com/miekg/pkcs11"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/backendtest"
	"github.com/enigm/enigm/internal/wire"
)

var bg = context.Background()

func TestConformance(t *testing.T) {
	label := newToken(t)
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		return newTestBackend(t, label, nil)
	})
}

// provisionOpen provisions a store on a fresh token and opens it (through
// a faulty token with no fault set: every call reaches SoftHSM2).
func provisionOpen(t *testing.T) (*Backend, []byte, *session) {
	t.Helper()
	_, b, st, s := faultyStoreScheme(t, "")
	return b, st, s
}

func boolAttr(t *testing.T, c *conn, h p11.ObjectHandle, attr uint) bool {
	t.Helper()
	got, err := c.b.tok.GetAttributeValue(c.sh, h, []*p11.Attribute{p11.NewAttribute(attr, nil)})
	if err != nil {
		t.Fatalf("attribute %#x: %v", attr, err)
	}
	if len(got) != 1 || len(got[0].Value) != 1 {
		t.Fatalf("attribute %#x: %v", attr, got)
	}
	return got[0].Value[0] != 0
}

// The keys read back from the token have the attributes that keep them
// inside it, and the token refuses every way out.
func TestKeyAttributesAndExtraction(t *testing.T) {
	b, st, s := provisionOpen(t)
	if _, err := s.Seal(bg, "enigm/v1/kek/identity", make([]byte, 32)); err != nil {
		t.Fatal(err)
	}
	blob, _, err := s.CreateBindingKey(bg)
	if err != nil {
		t.Fatal(err)
	}
	var bb bindingBlob
	if err := wire.Unmarshal(blob, &bb, 0); err != nil {
		t.Fatal(err)
	}
	inspect(t, b, st, func(c *conn) {
		find := func(tmpl []*p11.Attribute) p11.ObjectHandle {
			h, err := c.findOne("object", tmpl)
			if err != nil {
				t.Fatal(err)
			}
			return h
		}
		_, ecPriv := c.ecTemplates(bb.KeyID)
		ecPub, _ := c.ecTemplates(bb.KeyID)
		keys := []struct {
			name    string
			h       p11.ObjectHandle
			private bool
			off     []uint // usage flags that must be false
			on      []uint
		}{
			{"destroy key", find(c.destroyKeyTemplate()), false,
				[]uint{p11.CKA_WRAP, p11.CKA_UNWRAP, p11.CKA_SIGN, p11.CKA_VERIFY, p11.CKA_DERIVE}, []uint{p11.CKA_ENCRYPT, p11.CKA_DECRYPT}},
			{"wrapping key", find(c.kekTemplate("enigm/v1/kek/identity")), true,
				[]uint{p11.CKA_WRAP, p11.CKA_UNWRAP, p11.CKA_SIGN, p11.CKA_VERIFY, p11.CKA_DERIVE}, []uint{p11.CKA_ENCRYPT, p11.CKA_DECRYPT}},
			{"binding key", find(ecPriv), true,
				[]uint{p11.CKA_DECRYPT, p11.CKA_UNWRAP, p11.CKA_DERIVE, p11.CKA_SIGN_RECOVER}, []uint{p11.CKA_SIGN}},
		}
		// A session key allowed to wrap, to try to get the keys out.
		wrapper, err := c.b.tok.GenerateKey(c.sh, []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_KEY_GEN, nil)}, []*p11.Attribute{
			p11.NewAttribute(p11.CKA_CLASS, p11.CKO_SECRET_KEY), p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_AES),
			p11.NewAttribute(p11.CKA_VALUE_LEN, 32), p11.NewAttribute(p11.CKA_TOKEN, false), p11.NewAttribute(p11.CKA_WRAP, true),
		})
		if err != nil {
			t.Fatal(err)
		}
		raw := c.b.mod.ctx
		for _, k := range keys {
			for attr, want := range map[uint]bool{
				p11.CKA_TOKEN: true, p11.CKA_SENSITIVE: true, p11.CKA_EXTRACTABLE: false,
				p11.CKA_NEVER_EXTRACTABLE: true, p11.CKA_ALWAYS_SENSITIVE: true, p11.CKA_LOCAL: true,
				p11.CKA_MODIFIABLE: false, p11.CKA_PRIVATE: k.private,
			} {
				if got := boolAttr(t, c, k.h, attr); got != want {
					t.Errorf("%s: attribute %#x = %v, want %v", k.name, attr, got, want)
				}
			}
			for _, attr := range k.off {
				if boolAttr(t, c, k.h, attr) {
					t.Errorf("%s: usage flag %#x is set", k.name, attr)
				}
			}
			for _, attr := range k.on {
				if !boolAttr(t, c, k.h, attr) {
					t.Errorf("%s: usage flag %#x is not set", k.name, attr)
				}
			}
			// CKA_VALUE is the AES key and the EC private scalar.
			if _, err := raw.GetAttributeValue(c.sh, k.h, []*p11.Attribute{p11.NewAttribute(p11.CKA_VALUE, nil)}); !isCKR(err, p11.CKR_ATTRIBUTE_SENSITIVE) {
				t.Errorf("%s: reading CKA_VALUE: err = %v, want CKR_ATTRIBUTE_SENSITIVE", k.name, err)
			}
			for _, mech := range []uint{p11.CKM_AES_KEY_WRAP_PAD, p11.CKM_AES_KEY_WRAP} {
				if out, err := raw.WrapKey(c.sh, []*p11.Mechanism{p11.NewMechanism(mech, nil)}, wrapper, k.h); err == nil {
					t.Errorf("%s: C_WrapKey(%#x) extracted %d bytes", k.name, mech, len(out))
				}
			}
			if err := raw.SetAttributeValue(c.sh, k.h, []*p11.Attribute{p11.NewAttribute(p11.CKA_EXTRACTABLE, true)}); err == nil {
				t.Errorf("%s: CKA_EXTRACTABLE could be set to true", k.name)
			}
			if err := raw.SetAttributeValue(c.sh, k.h, []*p11.Attribute{p11.NewAttribute(p11.CKA_SENSITIVE, false)}); err == nil {
				t.Errorf("%s: CKA_SENSITIVE could be set to false", k.name)
			}
			if err := raw.SetAttributeValue(c.sh, k.h, []*p11.Attribute{p11.NewAttribute(p11.CKA_WRAP, true)}); err == nil {
				t.Errorf("%s: a usage flag could be changed", k.name)
			}
			if cp, err := raw.CopyObject(c.sh, k.h, []*p11.Attribute{p11.NewAttribute(p11.CKA_TOKEN, false), p11.NewAttribute(p11.CKA_EXTRACTABLE, true)}); err == nil {
				raw.DestroyObject(c.sh, cp)
				t.Errorf("%s: C_CopyObject made an extractable copy", k.name)
			}
		}
		// The public half carries P-256 parameters and may only verify.
		pub := find(ecPub)
		got, err := raw.GetAttributeValue(c.sh, pub, []*p11.Attribute{p11.NewAttribute(p11.CKA_EC_PARAMS, nil)})
		if err != nil || len(got) != 1 || !bytes.Equal(got[0].Value, ecP256Params) {
			t.Errorf("binding public key CKA_EC_PARAMS: %v, %v", got, err)
		}
		if !boolAttr(t, c, pub, p11.CKA_VERIFY) || boolAttr(t, c, pub, p11.CKA_ENCRYPT) || boolAttr(t, c, pub, p11.CKA_WRAP) {
			t.Error("binding public key has the wrong usage flags")
		}
	})
}

// Each seal label gets its own token key: a class's sealed data does not
// open under another class's key even with the right additional data.
func TestClassesUseDistinctTokenKeys(t *testing.T) {
	b, st, s := provisionOpen(t)
	const id, sess = "enigm/v1/kek/identity", "enigm/v1/kek/session"
	sealed, err := s.Seal(bg, id, bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Seal(bg, sess, bytes.Repeat([]byte{8}, 32)); err != nil {
		t.Fatal(err)
	}
	inspect(t, b, st, func(c *conn) {
		kID, err := c.findOne("identity key", c.kekTemplate(id))
		if err != nil {
			t.Fatal(err)
		}
		kSess, err := c.findOne("session key", c.kekTemplate(sess))
		if err != nil {
			t.Fatal(err)
		}
		if kID == kSess {
			t.Fatal("two classes share one token key")
		}
		iv, ct, _ := parseSealed(sealed)
		ad := sealAD("kek", c.st.StoreID, id)
		if _, err := c.decrypt(kSess, iv, ad, ct); !errors.Is(err, backend.ErrSealedData) {
			t.Fatalf("identity data under the session class's key: err = %v, want ErrSealedData", err)
		}
		if _, err := c.decrypt(kID, iv, ad, ct); err != nil {
			t.Fatalf("identity data under its own key: %v", err)
		}
		if n := len(storeObjects(t, c)); n != 3 {
			t.Fatalf("store has %d token objects, want 3 (destroy key, two wrapping keys)", n)
		}
	})
}

// While the process is logged in, the token does not check the PIN; the
// backend still refuses a wrong one.
func TestWrongPINWhileLoggedIn(t *testing.T) {
	b, st, _ := provisionOpen(t) // one session stays open: logged in
	wrong := []byte("correct horse battery stapler")
	if s, err := b.Open(bg, st, wrong); !errors.Is(err, backend.ErrBadSecret) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open with a wrong PIN while logged in: err = %v, want ErrBadSecret", err)
	}
	if _, err := b.Provision(bg, wrong); !errors.Is(err, backend.ErrBadSecret) {
		t.Fatalf("Provision with a wrong PIN while logged in: err = %v, want ErrBadSecret", err)
	}
	if err := b.Purge(bg, st, wrong); !errors.Is(err, backend.ErrBadSecret) {
		t.Fatalf("Purge with a wrong PIN while logged in: err = %v, want ErrBadSecret", err)
	}
	s2, err := b.Open(bg, st, pin)
	if err != nil {
		t.Fatalf("the right PIN while logged in: %v", err)
	}
	s2.Close()
}

// Logged out, the token itself rejects the PIN.
func TestWrongPINCheckedByToken(t *testing.T) {
	b := newTestBackend(t, newToken(t), nil)
	st, err := b.Provision(bg, pin)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Open(bg, st, []byte("0000"))
	if !errors.Is(err, backend.ErrBadSecret) || !isCKR(err, p11.CKR_PIN_INCORRECT) {
		t.Fatalf("err = %v, want ErrBadSecret from CKR_PIN_INCORRECT", err)
	}
	if _, err := b.Open(bg, st, nil); !errors.Is(err, backend.ErrBadSecret) {
		t.Fatalf("empty PIN: err = %v, want ErrBadSecret", err)
	}
}

func sealAll(t *testing.T, s backend.Session, labels ...string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, l := range labels {
		sealed, err := s.Seal(bg, l, []byte(l+" secret"))
		if err != nil {
			t.Fatal(err)
		}
		out[l] = sealed
	}
	return out
}

// Destroy on a locked store (no PIN): the destroy key and public objects go;
// copies of the state and sealed data are useless even with the PIN; the
// private keys that remain are removed by Purge.
func TestDestroyLocked(t *testing.T) {
	b, st, s := provisionOpen(t)
	sealed := sealAll(t, s, "enigm/v1/kek/identity", "enigm/v1/kek/kem")
	blob, _, err := s.CreateBindingKey(bg)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if b.mod.loggedIn(tokenKey(mustState(t, st).Serial, mustState(t, st).Label)) {
		t.Fatal("still logged in after the last session closed")
	}
	stCopy := bytes.Clone(st)
	if err := b.Destroy(bg, st); err != nil {
		t.Fatalf("Destroy without PIN: %v", err)
	}
	if _, err := b.Open(bg, stCopy, pin); !errors.Is(err, backend.ErrDestroyed) {
		t.Fatalf("Open after Destroy: err = %v, want ErrDestroyed", err)
	}
	inspect(t, b, st, func(c *conn) {
		// Left: two wrapping keys and the binding key pair, all private.
		hs := storeObjects(t, c)
		if len(hs) != 4 {
			t.Fatalf("%d objects left, want the 4 private ones", len(hs))
		}
		for _, h := range hs {
			if !boolAttr(t, c, h, p11.CKA_PRIVATE) {
				t.Fatal("an object visible without the PIN survived Destroy")
			}
		}
		// With the PIN, the outer layer still opens but the inner one
		// needed the destroy key: the wrapping key is gone for good.
		for l, blob := range sealed {
			k, err := c.findOne("wrapping key", c.kekTemplate(l))
			if err != nil {
				t.Fatal(err)
			}
			iv, ct, _ := parseSealed(blob)
			inner, err := c.decrypt(k, iv, sealAD("kek", c.st.StoreID, l), ct)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(inner, []byte(l+" secret")) {
				t.Fatal("the inner layer is the plaintext")
			}
		}
	})
	if err := b.Destroy(bg, st); err != nil {
		t.Fatalf("second Destroy: %v", err)
	}
	if err := b.Purge(bg, st, pin); err != nil {
		t.Fatalf("Purge: %v", err)
	}
	inspect(t, b, st, func(c *conn) {
		if n := len(storeObjects(t, c)); n != 0 {
			t.Fatalf("%d objects left after Purge", n)
		}
	})
	_ = blob
}

// Destroy while the store is unlocked (the process is logged in) removes
// every object; the open session and its binding key stop working.
func TestDestroyUnlocked(t *testing.T) {
	b, st, s := provisionOpen(t)
	sealed := sealAll(t, s, "enigm/v1/kek/identity")
	_, key, err := s.CreateBindingKey(bg)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Destroy(bg, st); err != nil {
		t.Fatal(err)
	}
	inspect(t, b, st, func(c *conn) {
		if n := len(storeObjects(t, c)); n != 0 {
			t.Fatalf("%d objects left after Destroy while logged in", n)
		}
	})
	if _, err := s.Unseal(bg, "enigm/v1/kek/identity", sealed["enigm/v1/kek/identity"]); !errors.Is(err, backend.ErrDestroyed) {
		t.Fatalf("Unseal in a session of a destroyed store: err = %v, want ErrDestroyed", err)
	}
	d := sha256.Sum256([]byte("x"))
	if _, err := key.Sign(nil, d[:], crypto.SHA256); !errors.Is(err, backend.ErrDestroyed) {
		t.Fatalf("Sign with a destroyed binding key: err = %v, want ErrDestroyed", err)
	}
}

// Destroying one store leaves another store on the same token intact.
func TestDestroyIsPerStore(t *testing.T) {
	b := newTestBackend(t, newToken(t), nil)
	stA, err := b.Provision(bg, pin)
	if err != nil {
		t.Fatal(err)
	}
	stB, sB := openNewStore(t, b)
	sealed := sealAll(t, sB, "enigm/v1/kek/identity")
	sB.Close()
	if err := b.Destroy(bg, stA); err != nil {
		t.Fatal(err)
	}
	sB, err = b.Open(bg, stB, pin)
	if err != nil {
		t.Fatalf("the other store no longer opens: %v", err)
	}
	defer sB.Close()
	if got, err := sB.Unseal(bg, "enigm/v1/kek/identity", sealed["enigm/v1/kek/identity"]); err != nil || string(got) != "enigm/v1/kek/identity secret" {
		t.Fatalf("the other store no longer unseals: %q, %v", got, err)
	}
}

// A second object claiming to be the store's destroy key (anyone can plant
// one without the PIN) makes Open refuse rather than pick one.
func TestPlantedDestroyKey(t *testing.T) {
	b, st, s := provisionOpen(t)
	s.Close()
	inspect(t, b, st, func(c *conn) {
		if _, err := c.generateAES(c.destroyKeyTemplate(), false); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := b.Open(bg, st, pin); !errors.Is(err, backend.ErrState) {
		t.Fatalf("two destroy keys: err = %v, want ErrState", err)
	}
	if err := b.Destroy(bg, st); err != nil {
		t.Fatalf("Destroy removes both: %v", err)
	}
}

func mustState(t *testing.T, b []byte) *state {
	t.Helper()
	s, err := parseState(b)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTokenAbsent(t *testing.T) {
	b, st, _ := provisionOpen(t)
	s := mustState(t, st)
	s.Serial = "0000000000000000"
	gone, err := wire.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Open(bg, gone, pin); !errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("Open on an absent token: err = %v, want ErrUnavailable", err)
	}
	if err := b.Destroy(bg, gone); !errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("Destroy on an absent token: err = %v, want ErrUnavailable", err)
	}
	nb := newTestBackend(t, "no such token", nil)
	if _, err := nb.Provision(bg, pin); !errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("Provision on an absent token: err = %v, want ErrUnavailable", err)
	}
	if _, err := New(Options{Module: "/nonexistent/libpkcs11.so"}); !errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("New with a missing module: err = %v, want ErrUnavailable", err)
	}
}

// With several tokens and no selection, Provision asks for one.
func TestProvisionNeedsSelection(t *testing.T) {
	newToken(t)
	newToken(t)
	b, err := New(Options{Module: setupFull.Module})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Provision(bg, pin); err == nil {
		t.Fatal("Provision picked one of several tokens")
	}
}

func TestBindingKeyBlob(t *testing.T) {
	b, st, s := provisionOpen(t)
	blob, key, err := s.CreateBindingKey(bg)
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("m"))
	if _, err := key.Sign(nil, d[:], crypto.SHA384); err == nil {
		t.Error("signed with SHA-384 options")
	}
	if _, err := key.Sign(nil, d[:20], crypto.SHA256); err == nil {
		t.Error("signed a 20-byte digest")
	}
	var bb bindingBlob
	if err := wire.Unmarshal(blob, &bb, 0); err != nil {
		t.Fatal(err)
	}
	// Another store on the same token.
	_, so := openNewStore(t, b)
	if _, err := so.(backend.BindingKeys).LoadBindingKey(bg, blob); !errors.Is(err, backend.ErrState) {
		t.Errorf("another store's blob: err = %v, want ErrState", err)
	}
	blob2, _, err := s.CreateBindingKey(bg)
	if err != nil {
		t.Fatal(err)
	}
	var bb2 bindingBlob
	wire.Unmarshal(blob2, &bb2, 0)
	swapped := bb
	swapped.Public = bb2.Public
	enc, _ := wire.Marshal(swapped)
	if _, err := s.LoadBindingKey(bg, enc); !errors.Is(err, backend.ErrState) {
		t.Errorf("blob with another key's public half: err = %v, want ErrState", err)
	}
	unknown := bb
	unknown.KeyID = bytes.Repeat([]byte{1}, keyIDSize)
	enc, _ = wire.Marshal(unknown)
	if _, err := s.LoadBindingKey(bg, enc); !errors.Is(err, backend.ErrState) {
		t.Errorf("blob naming no key: err = %v, want ErrState", err)
	}
	if _, err := s.LoadBindingKey(bg, blob[:len(blob)-1]); !errors.Is(err, backend.ErrState) {
		t.Errorf("truncated blob: err = %v, want ErrState", err)
	}
	k2, err := s.LoadBindingKey(bg, blob)
	if err != nil {
		t.Fatal(err)
	}
	if !k2.Public().(*ecdsa.PublicKey).Equal(key.Public()) {
		t.Fatal("loaded another key")
	}
	s.Close()
	if _, err := key.Sign(nil, d[:], crypto.SHA256); !errors.Is(err, backend.ErrClosed) {
		t.Errorf("Sign after Close: err = %v, want ErrClosed", err)
	}
	if _, _, err := s.CreateBindingKey(bg); !errors.Is(err, backend.ErrClosed) {
		t.Errorf("CreateBindingKey after Close: err = %v, want ErrClosed", err)
	}
	_ = st
}

func TestSealEdges(t *testing.T) {
	_, _, s := provisionOpen(t)
	sealed, err := s.Seal(bg, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(sealed) != sealOverhead {
		t.Fatalf("empty secret sealed to %d bytes, want %d", len(sealed), sealOverhead)
	}
	if got, err := s.Unseal(bg, "", sealed); err != nil || len(got) != 0 {
		t.Fatalf("empty secret: %x, %v", got, err)
	}
	long := string(bytes.Repeat([]byte{'a'}, MaxLabelSize+1))
	if _, err := s.Seal(bg, long, []byte("x")); err == nil {
		t.Fatal("sealed under an over-long label")
	}
	if _, err := s.Unseal(bg, long, sealed); !errors.Is(err, backend.ErrSealedData) {
		t.Fatalf("over-long label: err = %v, want ErrSealedData", err)
	}
	ctx, cancel := context.WithCancel(bg)
	cancel()
	if _, err := s.Seal(ctx, "l", []byte("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: err = %v", err)
	}
}
