// Package pebbletest runs the real Pebble ACME server and
// pebble-challtestsrv (as its DNS) on loopback for tests outside the certs
// package, such as the operator's Let's Encrypt test.
//
// The binaries come from $WSSGATE_PEBBLE and $WSSGATE_CHALLTESTSRV when
// set (as .ci/run does). Otherwise they are built once with go install
// into $WSSGATE_PEBBLE_DIR, else <user cache dir>/wssgate/pebble-v2.10.1.
// A failed build fails the test: it is never skipped.
package pebbletest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Version is the Pebble release used.
const Version = "v2.10.1"

// The directory's TLS pair and its CA, copied from Pebble's test/certs
// (public test material).
var (
	//go:embed testdata/cert.pem
	dirCert []byte
	//go:embed testdata/key.pem
	dirKey []byte
	//go:embed testdata/pebble.minica.pem
	minica []byte
)

var bins = sync.OnceValues(func() ([2]string, error) {
	b := [2]string{os.Getenv("WSSGATE_PEBBLE"), os.Getenv("WSSGATE_CHALLTESTSRV")}
	if b[0] != "" && b[1] != "" {
		return b, nil
	}
	dir := os.Getenv("WSSGATE_PEBBLE_DIR")
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		dir = filepath.Join(cache, "wssgate", "pebble-"+Version)
	}
	names := [2]string{"pebble", "pebble-challtestsrv"}
	missing := false
	for i, n := range names {
		b[i] = filepath.Join(dir, n)
		if _, err := os.Stat(b[i]); err != nil {
			missing = true
		}
	}
	if !missing {
		return b, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return b, err
	}
	tmp, err := os.MkdirTemp(dir, "install-")
	if err != nil {
		return b, err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command("go", "install",
		"github.com/letsencrypt/pebble/v2/cmd/pebble@"+Version,
		"github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv@"+Version)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOFLAGS=", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return b, fmt.Errorf("building pebble %s (set WSSGATE_PEBBLE and WSSGATE_CHALLTESTSRV to prebuilt binaries): %v\n%s", Version, err, out)
	}
	for i, n := range names {
		if err := os.Rename(filepath.Join(tmp, n), b[i]); err != nil {
			return b, err
		}
	}
	return b, nil
})

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Buffer is a goroutine-safe log buffer.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startProc runs bin until the test ends, once every address in ready
// accepts TCP connections. It returns an error when the process exits
// early, so that callers can retry with other ports.
func startProc(t testing.TB, bin string, args, env []string, ready ...string) (*Buffer, error) {
	t.Helper()
	out := new(Buffer)
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

// Env is a running Pebble with its DNS server.
type Env struct {
	DirectoryURL string
	DirCAFile    string         // PEM of the CA of the directory's TLS certificate (for -acme-ca)
	DirRoots     *x509.CertPool // the same, as a pool
	IssuedRoots  *x509.CertPool // verifies certificates Pebble issues
	Log          *Buffer
	challMgmt    string
}

// Options say where Pebble validates challenges.
type Options struct {
	HTTPPort, TLSPort int   // HTTP-01 and TLS-ALPN-01 ports on 127.0.0.1
	Validity          int64 // issued certificate lifetime in seconds; 0 = 90 days
}

// Start runs Pebble and pebble-challtestsrv until the test ends.
func Start(t testing.TB, o Options) *Env {
	t.Helper()
	b, err := bins()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := map[string][]byte{"cert.pem": dirCert, "key.pem": dirKey, "minica.pem": minica}
	for n, data := range files {
		if err := os.WriteFile(filepath.Join(dir, n), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := &Env{DirRoots: x509.NewCertPool(), DirCAFile: filepath.Join(dir, "minica.pem")}
	env.DirRoots.AppendCertsFromPEM(minica)
	validity := o.Validity
	if validity == 0 {
		validity = 90 * 24 * 3600
	}
	dns := env.startChalltestsrv(t, b[1])
	for attempt := 0; ; attempt++ {
		listen := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
		mgmt := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
		cfg := map[string]any{"pebble": map[string]any{
			"listenAddress": listen, "managementListenAddress": mgmt,
			"certificate": filepath.Join(dir, "cert.pem"), "privateKey": filepath.Join(dir, "key.pem"),
			"httpPort": o.HTTPPort, "tlsPort": o.TLSPort, "ocspResponderURL": "", "keyAlgorithm": "ecdsa",
			"retryAfter": map[string]int{"authz": 1, "order": 1},
			"profiles":   map[string]any{"default": map[string]any{"description": "test", "validityPeriod": validity}},
		}}
		js, _ := json.Marshal(cfg)
		name := filepath.Join(dir, fmt.Sprintf("pebble-%d.json", attempt))
		if err := os.WriteFile(name, js, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := startProc(t, b[0], []string{"-config", name, "-dnsserver", dns},
			[]string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0"}, listen, mgmt)
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

// startChalltestsrv runs the DNS server Pebble resolves names with: only
// A records, so names resolve to 127.0.0.1.
func (e *Env) startChalltestsrv(t testing.TB, bin string) (dnsAddr string) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		dns := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
		mgmt := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
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
		e.challMgmt = mgmt
		return dns
	}
}

// AddA makes host resolve to 127.0.0.1 for Pebble's validation.
func (e *Env) AddA(t testing.TB, host string) {
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

func fetchRoot(t testing.TB, dirRoots *x509.CertPool, url string) *x509.CertPool {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: dirRoots}}}
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
