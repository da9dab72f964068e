package wssproxy

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"testing"
	"time"
)

// TestMain fails the package when goroutines of the gateway, the fake
// nodes or the WebSocket library outlive the tests, as coder/websocket's
// TestMain does with goleak, but with the standard library only: every
// goroutine the proxy starts must have a stop path that the tests reach.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := leakedGoroutines(10 * time.Second); leaked != nil {
			fmt.Fprintf(os.Stderr, "FAIL: %d goroutines leaked by the tests:\n\n%s\n",
				len(leaked), bytes.Join(leaked, []byte("\n\n")))
			code = 1
		}
	}
	os.Exit(code)
}

// leakMarkers select the goroutines the leak check is about: those running
// or started by this module's code or coder/websocket's.
var leakMarkers = [][]byte{[]byte("wssgate/wssgate"), []byte("coder/websocket")}

// leakedGoroutines waits up to timeout for every goroutine matching
// leakMarkers, other than the caller, to exit, and returns the stacks of
// those that did not.
func leakedGoroutines(timeout time.Duration) [][]byte {
	http.DefaultClient.CloseIdleConnections()
	if tr, ok := http.DefaultTransport.(*http.Transport); ok {
		tr.CloseIdleConnections()
	}
	deadline := time.Now().Add(timeout)
	for wait := time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		leaked := matchingGoroutines()
		if len(leaked) == 0 || time.Now().After(deadline) {
			return leaked
		}
		time.Sleep(wait)
	}
}

// matchingGoroutines returns the stacks of the other goroutines that
// mention a leak marker.
func matchingGoroutines() [][]byte {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	// The first record is the calling goroutine's own (runtime.Stack
	// puts it first); records are separated by a blank line.
	records := bytes.Split(buf, []byte("\n\n"))
	var out [][]byte
	for _, g := range records[1:] {
		for _, m := range leakMarkers {
			if bytes.Contains(g, m) {
				out = append(out, g)
				break
			}
		}
	}
	return out
}

// footprint is the process's goroutine count and live heap at one moment.
// Tests that compare footprints must not run in parallel with others.
type footprint struct {
	goroutines int
	heap       uint64 // HeapInuse right after a GC
	stack      uint64 // StackInuse
}

func takeFootprint() footprint {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return footprint{runtime.NumGoroutine(), ms.HeapInuse, ms.StackInuse}
}

// settle waits up to 10 s for the goroutine count to come back down to
// f's, and then checks that the live heap grew by at most slack bytes.
// On failure it lists this module's and coder/websocket's goroutines.
func (f footprint) settle(t *testing.T, slack uint64) footprint {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > f.goroutines && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	now := takeFootprint()
	if now.goroutines > f.goroutines {
		t.Errorf("%d goroutines, %d before; ours still running:\n\n%s", now.goroutines, f.goroutines,
			bytes.Join(matchingGoroutines(), []byte("\n\n")))
	}
	if now.heap > f.heap+slack {
		t.Errorf("live heap %d KiB, %d KiB before: grew by more than %d KiB", now.heap>>10, f.heap>>10, slack>>10)
	}
	return now
}
