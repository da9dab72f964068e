package certs_test

// The Pebble harness (the real Pebble ACME server and pebble-challtestsrv
// on loopback) lives in internal/pebbletest, shared with the operator's
// Let's Encrypt test; these names keep the tests here short.

import (
	"net"
	"strconv"
	"testing"

	"github.com/wssgate/wssgate/internal/pebbletest"
)

type (
	pebbleEnv  = pebbletest.Env
	pebbleOpts = pebbletest.Options
	syncBuffer = pebbletest.Buffer
)

func startPebble(t *testing.T, o pebbleOpts) *pebbleEnv { return pebbletest.Start(t, o) }

func freePort(t *testing.T) int { return pebbletest.FreePort(t) }

// portOf returns the port of a listener.
func portOf(ln net.Listener) int {
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	n, _ := strconv.Atoi(p)
	return n
}
