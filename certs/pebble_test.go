package certs_test

// Pebble harness: runs the real Pebble ACME server and pebble-challtestsrv
// (as DNS) on loopback for the ACME tests.
//
// The binaries come from $WSSGATE_PEBBLE and $WSSGATE_CHALLTESTSRV when
// set. Otherwise they are built once with
//
//	GOBIN=<dir> go install github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.1 \
//	    github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv@v2.10.1
//
// into $WSSGATE_PEBBLE_DIR, else <user cache dir>/wssgate/pebble-v2.10.1,
// and reused by later runs. Installs go to a temporary directory first and
// are renamed into place, so concurrent test processes cannot see a torn
// binary. A failed build fails the tests: they are never skipped.

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const pebbleVersion = "v2.10.1"

var pebbleBins = sync.OnceValues(func() ([2]string, error) {
	bins := [2]string{os.Getenv("WSSGATE_PEBBLE"), os.Getenv("WSSGATE_CHALLTESTSRV")}
	if bins[0] != "" && bins[1] != "" {
		return bins, nil
	}
	dir := os.Getenv("WSSGATE_PEBBLE_DIR")
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		dir = filepath.Join(cache, "wssgate", "pebble-"+pebbleVersion)
	}
	names := [2]string{"pebble", "pebble-challtestsrv"}
	var missing bool
	for i := range names {
		if runtime.GOOS == "windows" {
			names[i] += ".exe"
		}
		if bins[i] == "" {
			bins[i] = filepath.Join(dir, names[i])
			if _, err := os.Stat(bins[i]); err != nil {
				missing = true
			}
		}
	}
	if !missing {
		return bins, nil
	}
	return bins, installPebble(dir, names)
})

func installPebble(dir string, names [2]string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(dir, "install-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command("go", "install",
		"github.com/letsencrypt/pebble/v2/cmd/pebble@"+pebbleVersion,
		"github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv@"+pebbleVersion)
	cmd.Dir = tmp // outside this module: go install pkg@version ignores go.mod
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOFLAGS=", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building pebble %s (set WSSGATE_PEBBLE and WSSGATE_CHALLTESTSRV to prebuilt binaries): %v\n%s", pebbleVersion, err, out)
	}
	for _, n := range names {
		if err := os.Rename(filepath.Join(tmp, n), filepath.Join(dir, n)); err != nil {
			return err
		}
	}
	return nil
}

// freePort returns a loopback TCP port that was free a moment ago. Callers
// retry when a child process then fails to bind it.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startProc runs bin until the test ends and waits until every address in
// ready accepts TCP connections. It reports an error, not a failure, when
// the process exits early, so callers can retry with other ports.
func startProc(t *testing.T, bin string, args, env []string, ready ...string) (*syncBuffer, error) {
	t.Helper()
	out := new(syncBuffer)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	stop := func() { cmd.Process.Kill(); <-done }
	deadline := time.After(30 * time.Second)
	for _, addr := range ready {
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-done:
				return nil, fmt.Errorf("%s exited early:\n%s", filepath.Base(bin), out)
			case <-deadline:
				stop()
				return nil, fmt.Errorf("%s not listening on %s after 30s:\n%s", filepath.Base(bin), addr, out)
			case <-time.After(10 * time.Millisecond): // poll an external process
			}
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(bin), out)
		}
	})
	return out, nil
}

// pebbleEnv is a running Pebble with its DNS server.
type pebbleEnv struct {
	DirectoryURL string
	DirRoots     *x509.CertPool // verifies the directory's own TLS cert
	IssuedRoots  *x509.CertPool // verifies certificates Pebble issues
	challMgmt    string
	Log          *syncBuffer
}

type pebbleOpts struct {
	HTTPPort, TLSPort int   // where Pebble validates challenges
	Validity          int64 // issued certificate lifetime in seconds; 0 = 90 days
}

func startPebble(t *testing.T, o pebbleOpts) *pebbleEnv {
	t.Helper()
	bins, err := pebbleBins()
	if err != nil {
		t.Fatal(err)
	}
	env := &pebbleEnv{DirRoots: x509.NewCertPool()}
	minica, err := os.ReadFile("testdata/pebble/pebble.minica.pem")
	if err != nil || !env.DirRoots.AppendCertsFromPEM(minica) {
		t.Fatalf("reading pebble minica: %v", err)
	}
	dnsAddr := startChalltestsrv(t, bins[1], env)
	for attempt := 0; ; attempt++ {
		listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		mgmt := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		cfg := writePebbleConfig(t, o, listen, mgmt)
		out, err := startProc(t, bins[0], []string{"-config", cfg, "-dnsserver", dnsAddr},
			[]string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0"},
			listen, mgmt)
		if err != nil && attempt < 4 {
			t.Logf("retrying pebble: %v", err)
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		env.Log = out
		env.DirectoryURL = "https://" + listen + "/dir"
		env.IssuedRoots = fetchRoot(t, env.DirRoots, "https://"+mgmt+"/roots/0")
		return env
	}
}

func writePebbleConfig(t *testing.T, o pebbleOpts, listen, mgmt string) string {
	t.Helper()
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	validity := o.Validity
	if validity == 0 {
		validity = 90 * 24 * 3600
	}
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":           listen,
		"managementListenAddress": mgmt,
		"certificate":             abs("testdata/pebble/cert.pem"),
		"privateKey":              abs("testdata/pebble/key.pem"),
		"httpPort":                o.HTTPPort,
		"tlsPort":                 o.TLSPort,
		"ocspResponderURL":        "",
		"keyAlgorithm":            "ecdsa",
		"retryAfter":              map[string]int{"authz": 1, "order": 1},
		"profiles": map[string]any{
			"default": map[string]any{"description": "test", "validityPeriod": validity},
		},
	}}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(t.TempDir(), "pebble-config.json")
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

// startChalltestsrv runs the DNS server Pebble resolves names with. Only
// A records are served (no default AAAA), so names resolve to 127.0.0.1.
func startChalltestsrv(t *testing.T, bin string, env *pebbleEnv) (dnsAddr string) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		dns := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		mgmt := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		_, err := startProc(t, bin, []string{
			"-dnsserver", dns, "-management", mgmt, "-defaultIPv6", "", "-defaultIPv4", "127.0.0.1",
			"-http01", "", "-https01", "", "-doh", "", "-tlsalpn01", "",
		}, nil, mgmt)
		if err != nil && attempt < 4 {
			t.Logf("retrying pebble-challtestsrv: %v", err)
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		env.challMgmt = mgmt
		return dns
	}
}

// AddA makes host resolve to 127.0.0.1 for Pebble's validation.
func (e *pebbleEnv) AddA(t *testing.T, host string) {
	t.Helper()
	body := fmt.Sprintf(`{"host":%q,"addresses":["127.0.0.1"]}`, host)
	res, err := http.Post("http://"+e.challMgmt+"/add-a", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("add-a %s: %s", host, res.Status)
	}
}

func fetchRoot(t *testing.T, dirRoots *x509.CertPool, url string) *x509.CertPool {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: dirRoots},
	}}
	defer c.CloseIdleConnections()
	res, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %v %s", url, err, res.Status)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("GET %s: no PEM certificate in %q", url, b)
	}
	return pool
}

// portOf returns the port of a listener.
func portOf(ln net.Listener) int {
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	n, _ := strconv.Atoi(p)
	return n
}
