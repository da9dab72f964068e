package rpctest

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The helpers below run the JavaScript clients of the module's e2e folder
// (polkadot.mjs: @polkadot/api's ApiPromise; browser.mjs: a WebSocket in
// headless Chromium) against any URL, such as a Node's or a gateway's.

// E2EDir returns the absolute path of the module's e2e folder, found by
// walking up from the working directory to go.mod.
func E2EDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("rpctest: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "e2e"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("rpctest: no go.mod above the working directory")
		}
		dir = parent
	}
}

// RequireE2E returns the e2e folder if node and the npm packages are
// installed (bash e2e/install.sh). Otherwise it skips t, or fails it when
// the environment variable WSSGATE_E2E is "1", as in CI.
func RequireE2E(t testing.TB) string {
	t.Helper()
	dir, err := E2EDir()
	if err == nil {
		_, err = exec.LookPath("node")
	}
	if err == nil {
		_, err = os.Stat(filepath.Join(dir, "node_modules", "@polkadot", "api", "package.json"))
	}
	if err != nil {
		missing(t, "e2e packages are not installed (run bash e2e/install.sh)", err)
	}
	return dir
}

// RequireChromium is RequireE2E for browser.mjs: it also needs Chromium at
// $CHROMIUM or /usr/bin/chromium.
func RequireChromium(t testing.TB) string {
	t.Helper()
	dir := RequireE2E(t)
	path := cmp.Or(os.Getenv("CHROMIUM"), "/usr/bin/chromium")
	if _, err := os.Stat(path); err != nil {
		missing(t, "Chromium is not installed (run bash e2e/install.sh)", err)
	}
	return dir
}

func missing(t testing.TB, what string, err error) {
	t.Helper()
	if os.Getenv("WSSGATE_E2E") == "1" {
		t.Fatalf("%s: %v", what, err)
	}
	t.Skipf("%s: %v; set WSSGATE_E2E=1 to make this a failure", what, err)
}

// SPKI returns the base64 SHA-256 of cert's public key, the value that
// browser.mjs takes in SPKI to trust a self-signed certificate.
func SPKI(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// PolkadotResult is the output of e2e/polkadot.mjs.
type PolkadotResult struct {
	URL             string                 `json:"url"`
	Chain           string                 `json:"chain"`
	Health          Health                 `json:"health"`
	GenesisHash     string                 `json:"genesisHash"`
	SpecName        string                 `json:"specName"`
	SpecVersion     int                    `json:"specVersion"`
	MetadataVersion int                    `json:"metadataVersion"`
	Header          JSHead                 `json:"header"`
	HashMatches     bool                   `json:"hashMatches"` // header hash == chain_getBlockHash(number)
	Heads           []JSHead               `json:"heads"`
	Calls           map[string]CallOutcome `json:"calls"`
	Warnings        []string               `json:"warnings"` // console.warn and console.error lines
	ElapsedMs       int                    `json:"elapsedMs"`
}

// JSHead is a block as polkadot.mjs reports it.
type JSHead struct {
	Number uint64 `json:"number"`
	Hash   string `json:"hash"`
}

// CallOutcome is the result of one of the CALLS of polkadot.mjs.
type CallOutcome struct {
	OK      bool            `json:"ok"`
	Result  json.RawMessage `json:"result,omitempty"`
	Code    int             `json:"code,omitempty"`
	Message string          `json:"message,omitempty"`
}

// RunPolkadot runs e2e/polkadot.mjs against url. env holds extra KEY=VALUE
// settings: HEADS, CALLS, EXPECT_CALLS, NODE_EXTRA_CA_CERTS (see the
// script). The run ends with ctx; without a deadline it gets 60 seconds.
func RunPolkadot(ctx context.Context, url string, env ...string) (*PolkadotResult, error) {
	var res PolkadotResult
	if err := runScript(ctx, "polkadot.mjs", url, env, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// BrowserResult is the output of e2e/browser.mjs.
type BrowserResult struct {
	URL          string                     `json:"url"`
	Browser      string                     `json:"browser"`
	UserAgent    string                     `json:"userAgent"`
	Origin       string                     `json:"origin"`
	Replies      map[string]json.RawMessage `json:"replies"` // by method
	Batch        []json.RawMessage          `json:"batch"`
	Subscription string                     `json:"subscription"`
	Heads        []uint64                   `json:"heads"`
	Close        *struct {
		Code   int    `json:"code"`
		Reason string `json:"reason"`
	} `json:"close"`
	Console   []string `json:"console"`
	ElapsedMs int      `json:"elapsedMs"`
	// Extensions is the WebSocket's negotiated extensions, as the page's
	// WebSocket.extensions reports them ("" for none).
	Extensions string `json:"extensions"`
	// Metadata is state_getMetadata's result, with METADATA=1.
	Metadata string `json:"metadata"`
}

// RunBrowser runs e2e/browser.mjs against url. env holds extra KEY=VALUE
// settings: HEADS, PAGE_URL, SPKI, IGNORE_CERT_ERRORS, CHROMIUM, METADATA (see the
// script). The run ends with ctx; without a deadline it gets 60 seconds.
func RunBrowser(ctx context.Context, url string, env ...string) (*BrowserResult, error) {
	var res BrowserResult
	if err := runScript(ctx, "browser.mjs", url, env, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// runScript runs node on an e2e script and decodes its JSON line into out.
// The script's own hard timeout (TIMEOUT_MS) is set a little inside ctx's
// deadline so that it reports what it was waiting for.
func runScript(ctx context.Context, script, url string, env []string, out any) error {
	dir, err := E2EDir()
	if err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()
	budget := time.Until(deadline) - 3*time.Second
	if budget < time.Second {
		budget = time.Second
	}
	cmd := exec.CommandContext(ctx, "node", script, url)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TIMEOUT_MS="+strconv.FormatInt(budget.Milliseconds(), 10))
	cmd.Env = append(cmd.Env, env...)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("rpctest: %s %s: %w\n%s", script, url, err, tail(stderr.String(), 4000))
	}
	line := bytes.TrimSpace(stdout.Bytes())
	if i := bytes.LastIndexByte(line, '\n'); i >= 0 {
		line = line[i+1:]
	}
	if err := json.Unmarshal(line, out); err != nil {
		return fmt.Errorf("rpctest: %s: bad output %q: %w\n%s", script, tail(string(line), 1000), err, tail(stderr.String(), 4000))
	}
	return nil
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
