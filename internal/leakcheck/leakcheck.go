// Package leakcheck fails a test binary whose goroutines outlive its tests.
// A package's TestMain calls it after m.Run:
//
//	func TestMain(m *testing.M) { os.Exit(leakcheck.Run(m)) }
package leakcheck

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Run runs the tests and, if they pass, gives exiting goroutines (closed
// test servers' conns) up to 5 s to end, then reports the survivors and
// returns 1. It returns the exit code for os.Exit.
func Run(m *testing.M) int {
	code := m.Run()
	if code != 0 {
		return code
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		leaked := leakedGoroutines()
		if len(leaked) == 0 {
			return 0
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "leaked goroutines:\n\n%s\n", strings.Join(leaked, "\n\n"))
			return 1
		}
		time.Sleep(10 * time.Millisecond) // polling for exit, not synchronising a test
	}
}

// leakedGoroutines returns the stacks of goroutines other than this one
// and the runtime's or the fuzzing engine's own.
func leakedGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var leaked []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "leakcheck.Run") || strings.Contains(g, "os/signal.") {
			continue
		}
		leaked = append(leaked, g)
	}
	return leaked
}
