package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// verifyUnit runs systemd-analyze verify on unit (with ExecStart pointing
// at bin, since verify checks that the command exists) and returns an
// error for a non-zero exit or any output: verify reports unknown keys and
// bad values as warnings with exit 0.
func verifyUnit(t *testing.T, unit, bin string) error {
	t.Helper()
	dir := t.TempDir()
	unit = strings.ReplaceAll(unit, "/usr/local/bin/wssgate", bin)
	path := filepath.Join(dir, "wssgate.service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("systemd-analyze", "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		return fmt.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	return nil
}

// TestSystemdUnit checks examples/basic/wssgate.service with systemd's own
// verifier (Debian package systemd; .ci/run installs it), and that the
// check fails on a broken unit.
func TestSystemdUnit(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		if os.Getenv("WSSGATE_E2E") == "1" {
			t.Fatalf("systemd-analyze is missing (apt-get install systemd): %v", err)
		}
		t.Skipf("systemd-analyze is missing (apt-get install systemd); set WSSGATE_E2E=1 to make this a failure")
	}
	b, err := os.ReadFile("wssgate.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	bin := filepath.Join(buildExamples(t), "basic")
	if err := verifyUnit(t, unit, bin); err != nil {
		t.Error(err)
	}
	for _, want := range []string{"DynamicUser=yes", "AmbientCapabilities=CAP_NET_BIND_SERVICE", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
		"Restart=on-failure", "NoNewPrivileges=yes", "ProtectSystem=strict", "ExecReload=/bin/kill -HUP $MAINPID", "StateDirectory=wssgate"} {
		if !strings.Contains(unit, "\n"+want+"\n") {
			t.Errorf("unit lacks %s", want)
		}
	}
	if strings.Contains(unit, "\nUser=root") {
		t.Error("unit runs as root")
	}
	for _, bad := range []string{"Restart=sometimes", "NoSuchKey=1", "ProtectSystem=maybe"} {
		broken := strings.Replace(unit, "[Install]", bad+"\n\n[Install]", 1)
		broken = strings.Replace(broken, "\nRestart=on-failure\n", "\n", 1)
		if err := verifyUnit(t, broken, bin); err == nil {
			t.Errorf("the check passed a unit with %s", bad)
		}
	}
	if err := verifyUnit(t, unit, "/nonexistent/wssgate"); err == nil {
		t.Error("the check passed a unit whose command does not exist")
	}
}
