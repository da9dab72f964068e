package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// built holds the examples built once for this test binary.
var built = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "wssgate-examples-")
	if err != nil {
		return "", err
	}
	cmd := exec.Command("go", "build", "-o", dir+"/", "./examples/...")
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./examples/...: %v\n%s", err, out)
	}
	return dir, nil
})

// buildExamples builds every example into a temporary directory.
func buildExamples(t *testing.T) string {
	t.Helper()
	dir, err := built()
	if err != nil {
		t.Fatal(err)
	}
	builtDir = dir
	return dir
}

var builtDir string // for TestMain's cleanup

func TestMain(m *testing.M) {
	code := m.Run()
	if builtDir != "" {
		os.RemoveAll(builtDir)
	}
	os.Exit(code)
}

// TestExamplesHelp: -h of every example exits 0 and starts with one
// sentence saying what it does, then an example command line.
func TestExamplesHelp(t *testing.T) {
	dir := buildExamples(t)
	names, err := os.ReadDir(dir)
	if err != nil || len(names) < 5 {
		t.Fatalf("built %d examples: %v", len(names), err)
	}
	for _, e := range names {
		t.Run(e.Name(), func(t *testing.T) {
			out, err := exec.Command(filepath.Join(dir, e.Name()), "-h").CombinedOutput()
			if err != nil {
				t.Fatalf("-h: %v\n%s", err, out)
			}
			lines := strings.Split(string(out), "\n")
			if len(lines) < 4 || !strings.HasSuffix(lines[0], ".") || strings.Count(lines[0], ". ") > 0 {
				t.Errorf("-h does not start with one sentence:\n%s", out)
			}
			if lines[2] != "Example:" || !strings.HasPrefix(lines[3], "  go run ./examples/") {
				t.Errorf("-h has no example line after the sentence:\n%s", out)
			}
		})
	}
}

// TestACMEExampleSIGHUP: SIGHUP does not kill examples/acme (it used to
// exit 129); SIGTERM then stops it cleanly.
func TestACMEExampleSIGHUP(t *testing.T) {
	dir := buildExamples(t)
	cmd := exec.Command(filepath.Join(dir, "acme"), "-domain", "node.test", "-listen", "127.0.0.1:0", "-http-listen", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	lines := bufio.NewScanner(stderr)
	for lines.Scan() && !strings.Contains(lines.Text(), "listening") {
	}
	cmd.Process.Signal(syscall.SIGHUP)
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() {
		for lines.Scan() {
		}
		done <- cmd.Wait()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("after SIGHUP and SIGTERM: %v, want exit 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("acme did not stop on SIGTERM")
	}
}

// TestACMEExampleNoDomain: leaving out -domain names the flag, not a
// library field.
func TestACMEExampleNoDomain(t *testing.T) {
	out, err := exec.Command(filepath.Join(buildExamples(t), "acme")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "-domain is required") || strings.Contains(string(out), "ACME.Domains") {
		t.Errorf("acme without -domain: %v\n%s", err, out)
	}
}
