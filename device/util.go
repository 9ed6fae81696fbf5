package device

import "os"

var osHostname = os.Hostname
