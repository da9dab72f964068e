package redisstore_test

import (
	"os"
	"testing"

	"github.com/wssgate/wssgate/internal/leakcheck"
)

// TestMain fails the run if goroutines outlive the tests: a Conns'
// heartbeat must stop on Close or when it holds no lease.
func TestMain(m *testing.M) { os.Exit(leakcheck.Run(m)) }
