package ratelimit

import (
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"
)

// TestMain fails the run if goroutines outlive the tests: nothing in
// this package may start one that keeps running.
func TestMain(m *testing.M) {
	before := runtime.NumGoroutine()
	code := m.Run()
	if code == 0 {
		code = checkGoroutines(before)
	}
	os.Exit(code)
}

// checkGoroutines gives exiting goroutines (closed test servers' conns)
// up to 5s to end, then reports the survivors.
func checkGoroutines(before int) int {
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			fmt.Fprintf(os.Stderr, "leaked goroutines: %d > %d\n%s\n", runtime.NumGoroutine(), before, buf)
			return 1
		}
		time.Sleep(10 * time.Millisecond) // polling for exit, not synchronising a test
	}
	return 0
}
