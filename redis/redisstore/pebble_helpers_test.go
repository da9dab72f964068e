package redisstore_test

// A Pebble harness like certs/pebble_test.go's (test files cannot be
// shared across modules): the real Pebble ACME server and
// pebble-challtestsrv as DNS, from $WSSGATE_PEBBLE and
// $WSSGATE_CHALLTESTSRV, else built once into the user cache directory,
// where the certs tests put them too.

import (
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
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	pebbleVersion = "v2.10.1"
	pebbleData    = "../../certs/testdata/pebble"
)

var pebbleBins = sync.OnceValues(func() ([2]string, error) {
	bins := [2]string{os.Getenv("WSSGATE_PEBBLE"), os.Getenv("WSSGATE_CHALLTESTSRV")}
	if bins[0] != "" && bins[1] != "" {
		return bins, nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "wssgate", "pebble-"+pebbleVersion)
	bins = [2]string{filepath.Join(dir, "pebble"), filepath.Join(dir, "pebble-challtestsrv")}
	if _, err := os.Stat(bins[0]); err == nil {
		if _, err := os.Stat(bins[1]); err == nil {
			return bins, nil
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return bins, err
	}
	tmp, err := os.MkdirTemp(dir, "install-")
	if err != nil {
		return bins, err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command("go", "install",
		"github.com/letsencrypt/pebble/v2/cmd/pebble@"+pebbleVersion,
		"github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv@"+pebbleVersion)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOFLAGS=", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return bins, fmt.Errorf("building pebble: %v\n%s", err, out)
	}
	for _, b := range bins {
		if err := os.Rename(filepath.Join(tmp, filepath.Base(b)), b); err != nil {
			return bins, err
		}
	}
	return bins, nil
})

type pebbleEnv struct {
	DirectoryURL string
	DirRoots     *x509.CertPool
	IssuedRoots  *x509.CertPool
	challMgmt    string
	Log          *logBuffer
}

// Orders counts the orders Pebble has received, from its log.
func (e *pebbleEnv) Orders() int { return e.Log.Count("Added order ") }

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func startProc(t *testing.T, bin string, args, env []string, ready ...string) (*logBuffer, error) {
	t.Helper()
	out := new(logBuffer)
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
				return nil, fmt.Errorf("%s not listening on %s after 30s", filepath.Base(bin), addr)
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

// startPebble runs Pebble validating TLS-ALPN-01 on tlsPort and HTTP-01
// on httpPort, issuing certificates valid for validity.
func startPebble(t *testing.T, tlsPort, httpPort int, validity time.Duration) *pebbleEnv {
	t.Helper()
	bins, err := pebbleBins()
	if err != nil {
		t.Fatal(err)
	}
	env := &pebbleEnv{DirRoots: x509.NewCertPool()}
	minica, err := os.ReadFile(filepath.Join(pebbleData, "pebble.minica.pem"))
	if err != nil || !env.DirRoots.AppendCertsFromPEM(minica) {
		t.Fatalf("reading pebble minica: %v", err)
	}
	var dnsAddr string
	for attempt := 0; ; attempt++ {
		dnsAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		env.challMgmt = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		_, err := startProc(t, bins[1], []string{"-dnsserver", dnsAddr, "-management", env.challMgmt,
			"-defaultIPv6", "", "-defaultIPv4", "127.0.0.1", "-http01", "", "-https01", "", "-doh", "", "-tlsalpn01", ""},
			nil, env.challMgmt)
		if err == nil {
			break
		} else if attempt >= 4 {
			t.Fatal(err)
		}
	}
	abs, _ := filepath.Abs(pebbleData)
	for attempt := 0; ; attempt++ {
		listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		mgmt := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		cfg, _ := json.Marshal(map[string]any{"pebble": map[string]any{
			"listenAddress": listen, "managementListenAddress": mgmt,
			"certificate": filepath.Join(abs, "cert.pem"), "privateKey": filepath.Join(abs, "key.pem"),
			"httpPort": httpPort, "tlsPort": tlsPort, "ocspResponderURL": "", "keyAlgorithm": "ecdsa",
			"retryAfter": map[string]int{"authz": 1, "order": 1},
			"profiles":   map[string]any{"default": map[string]any{"description": "test", "validityPeriod": validitySeconds(validity)}},
		}})
		name := filepath.Join(t.TempDir(), "pebble-config.json")
		if err := os.WriteFile(name, cfg, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := startProc(t, bins[0], []string{"-config", name, "-dnsserver", dnsAddr},
			[]string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0"}, listen, mgmt)
		if err != nil && attempt < 4 {
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
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: dirRoots}}}
	defer c.CloseIdleConnections()
	res, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	pool := x509.NewCertPool()
	if err != nil || !pool.AppendCertsFromPEM(b) {
		t.Fatalf("GET %s: %v %q", url, err, b)
	}
	return pool
}

// validitySeconds is Pebble's validityPeriod: 90 days if d is zero.
func validitySeconds(d time.Duration) int64 {
	if d == 0 {
		return 90 * 24 * 3600
	}
	return int64(d.Seconds())
}
