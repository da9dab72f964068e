package redisstore_test

// Pebble for the replica tests: the core module's internal/pebbletest
// (importable here, since this module's path is under the core's), with
// the order count these tests read.

import (
	"strings"
	"testing"
	"time"

	"github.com/wssgate/wssgate/internal/pebbletest"
)

type pebbleEnv struct{ *pebbletest.Env }

// Orders counts the orders Pebble has received, from its log.
func (e pebbleEnv) Orders() int { return strings.Count(e.Log.String(), "Added order ") }

// startPebble runs Pebble validating TLS-ALPN-01 on tlsPort and HTTP-01
// on httpPort, issuing certificates valid for validity (90 days if zero).
func startPebble(t *testing.T, tlsPort, httpPort int, validity time.Duration) *pebbleEnv {
	t.Helper()
	return &pebbleEnv{pebbletest.Start(t, pebbletest.Options{
		TLSPort: tlsPort, HTTPPort: httpPort, Validity: int64(validity.Seconds()),
	})}
}

func freePort(t *testing.T) int { return pebbletest.FreePort(t) }
