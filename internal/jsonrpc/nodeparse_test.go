package jsonrpc

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// nodeparse runs testdata/nodeparse, the node's own reading of a message:
// jsonrpsee 0.24's request types and classification on serde_json, built
// offline from Debian's packaged crates. One process serves every message of
// a test binary (a fuzz worker streams thousands a second through it).
type nodeparse struct {
	mu  sync.Mutex
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
	buf []byte
}

var (
	nodeparseOnce sync.Once
	nodeparseProc *nodeparse
	nodeparseErr  error
)

// debianRegistry is where Debian's librust-*-dev packages put crate sources.
const debianRegistry = "/usr/share/cargo/registry"

// startNodeparse returns the shared nodeparse process, building it first if
// needed. Without cargo or the Debian crates it skips t, unless WSSGATE_E2E
// is set (as in CI), where a missing part is a failure.
func startNodeparse(t testing.TB) *nodeparse {
	t.Helper()
	nodeparseOnce.Do(func() { nodeparseProc, nodeparseErr = buildNodeparse() })
	if nodeparseErr != nil {
		if os.Getenv("WSSGATE_E2E") == "" {
			t.Skipf("node parser not available (set WSSGATE_E2E=1 to make this a failure): %v", nodeparseErr)
		}
		t.Fatalf("node parser: %v", nodeparseErr)
	}
	return nodeparseProc
}

// buildNodeparse builds testdata/nodeparse with cargo, offline, against
// Debian's crates (apt-get install librust-serde-json-dev
// librust-serde-derive-dev), in the user cache directory, and starts it.
// The sources are copied there first so the build writes nothing (not even
// Cargo.lock) into the repository.
func buildNodeparse() (*nodeparse, error) {
	cargo, err := exec.LookPath("cargo")
	if err != nil {
		return nil, err
	}
	for _, crate := range []string{"serde_json-1.*", "serde_derive-1.*", "serde-1.*"} {
		if m, _ := filepath.Glob(filepath.Join(debianRegistry, crate)); len(m) == 0 {
			return nil, fmt.Errorf("no %s in %s: apt-get install librust-serde-json-dev librust-serde-derive-dev",
				crate, debianRegistry)
		}
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(cache, "wssgate", "nodeparse")
	for _, f := range []string{"Cargo.toml", "src/main.rs"} {
		b, err := os.ReadFile(filepath.Join("testdata", "nodeparse", f))
		if err != nil {
			return nil, err
		}
		dst := filepath.Join(dir, "src-copy", f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return nil, err
		}
		if old, err := os.ReadFile(dst); err != nil || string(old) != string(b) {
			// Fuzz workers start together: write whole files only.
			tmp := fmt.Sprintf("%s.%d", dst, os.Getpid())
			if err := os.WriteFile(tmp, b, 0o644); err != nil {
				return nil, err
			}
			if err := os.Rename(tmp, dst); err != nil {
				return nil, err
			}
		}
	}
	build := exec.Command(cargo, "build", "--offline", "--release", "--quiet",
		"--manifest-path", filepath.Join(dir, "src-copy", "Cargo.toml"),
		"--target-dir", filepath.Join(dir, "target"),
		"--config", `source.crates-io.replace-with="debian"`,
		"--config", fmt.Sprintf("source.debian.directory=%q", debianRegistry))
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("cargo build: %v\n%s", err, out)
	}
	cmd := exec.Command(filepath.Join(dir, "target", "release", "nodeparse"))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	// The process ends when its stdin closes: when this test binary exits.
	return &nodeparse{cmd: cmd, in: in, out: bufio.NewReader(out)}, nil
}

// read returns the node's reading of msg, in the format of
// testdata/nodeparse/src/main.rs (and of goReading).
func (n *nodeparse) read(t testing.TB, msg []byte) string {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	n.buf = binary.BigEndian.AppendUint32(n.buf[:0], uint32(len(msg)))
	n.buf = append(n.buf, msg...)
	if _, err := n.in.Write(n.buf); err != nil {
		t.Fatalf("node parser: write: %v", err)
	}
	line, err := n.out.ReadString('\n')
	if err != nil {
		t.Fatalf("node parser: read: %v (did it panic? see stderr)", err)
	}
	return strings.TrimSuffix(line, "\n")
}

func TestNodeparseRuns(t *testing.T) {
	n := startNodeparse(t)
	for msg, want := range map[string]string{
		`{"jsonrpc":"2.0","id":"\u0061","method":"b"}`: "call\t\"a\"\t\"b\"",
		`{"jsonrpc":"2.0","id":-1,"method":"b"}`:       "notif\t\"b\"",
		`[{"id":1,"method":"b"},["2.0",2,"c",null]]`:   "batch\tinvalid\t1\tcall\t2\t\"c\"",
		`[]`:  "empty",
		`42`:  "parse",
		`{}`:  "parse",
		"\f{": "parse",
	} {
		if got := n.read(t, []byte(msg)); got != want {
			t.Errorf("node reads %q as %q, want %q", msg, got, want)
		}
	}
}
