package command

import (
	"time"

	"github.com/enigm/enigm/command/store"
)

func storeSecret(h []byte, account, device string, exp time.Time) store.Secret {
	return store.Secret{Hash: h, AccountID: account, DeviceID: device, ExpiresAt: exp}
}
