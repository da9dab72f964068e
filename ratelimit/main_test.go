package ratelimit

import (
	"os"
	"testing"

	"github.com/wssgate/wssgate/internal/leakcheck"
)

// TestMain fails the run if goroutines outlive the tests: nothing in
// this package may start one that keeps running.
func TestMain(m *testing.M) { os.Exit(leakcheck.Run(m)) }
