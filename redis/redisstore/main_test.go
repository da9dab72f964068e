package redisstore_test

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMain fails the run if goroutines outlive the tests: a Conns'
// heartbeat must stop on Close or when it holds no lease.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		code = checkGoroutines()
	}
	os.Exit(code)
}

// checkGoroutines gives exiting goroutines (closed servers' conns) up
// to 5s to end, then reports the survivors.
func checkGoroutines() int {
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

func leakedGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var leaked []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "checkGoroutines") || strings.Contains(g, "os/signal.") {
			continue
		}
		leaked = append(leaked, g)
	}
	return leaked
}
