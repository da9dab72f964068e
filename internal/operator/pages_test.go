package operator

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wssgate/wssgate/internal/rpctest"
)

// pageShot is one line of e2e/pages.mjs.
type pageShot struct {
	Status      int                   `json:"status"`
	ContentType string                `json:"contentType"`
	Navigations int                   `json:"navigations"`
	Requests    []string              `json:"requests"`
	Console     []string              `json:"console"`
	Title       string                `json:"title"`
	Updates     int                   `json:"updates"`
	LoadMark    float64               `json:"loadMark"`
	IDs         map[string]pageElem   `json:"ids"`
	Tables      map[string][][]string `json:"tables"`
}

type pageElem struct {
	Text string `json:"text"`
	Href string `json:"href"`
}

func (s *pageShot) text(id string) string { return s.IDs[id].Text }

// openPage runs e2e/pages.mjs on url in Chromium and returns its snapshot
// lines as they come.
func openPage(t *testing.T, url string, env ...string) <-chan pageShot {
	t.Helper()
	dir := rpctest.RequireChromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	cmd := exec.CommandContext(ctx, "node", "pages.mjs", url)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "TIMEOUT_MS=80000"), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	shots := make(chan pageShot, 4)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(shots)
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var s pageShot
			if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
				t.Errorf("pages.mjs: bad line %q: %v", sc.Text(), err)
				return
			}
			shots <- s
		}
	}()
	t.Cleanup(func() {
		<-done
		if err := cmd.Wait(); err != nil {
			t.Errorf("pages.mjs %s: %v\n%s", url, err, stderr.String())
		}
		cancel()
	})
	return shots
}

func nextShot(t *testing.T, shots <-chan pageShot) pageShot {
	t.Helper()
	select {
	case s, ok := <-shots:
		if !ok {
			t.Fatal("pages.mjs ended without a snapshot")
		}
		return s
	case <-time.After(90 * time.Second):
		t.Fatal("no snapshot from pages.mjs")
	}
	return pageShot{}
}

// metricSum sums the samples of a Prometheus series whose labels contain
// every matcher (such as `outcome="ok"`).
func metricSum(t *testing.T, text, name string, matchers ...string) int64 {
	t.Helper()
	var sum int64
	re := regexp.MustCompile(`(?m)^` + name + `(\{[^}]*\})? (\S+)$`)
	for _, m := range re.FindAllStringSubmatch(text, -1) {
		ok := true
		for _, want := range matchers {
			ok = ok && strings.Contains(m[1], want)
		}
		if ok {
			v, err := strconv.ParseFloat(m[2], 64)
			if err != nil {
				t.Fatalf("%s: %v", m[0], err)
			}
			sum += int64(v)
		}
	}
	return sum
}

func sameOrigin(t *testing.T, s pageShot, origin string) {
	t.Helper()
	for _, r := range s.Requests {
		if !strings.HasPrefix(r, origin) {
			t.Errorf("page requested %s: not self-contained", r)
		}
	}
}

// TestDashboard opens the admin dashboard in Chromium: it renders the
// nodes and certificates, updates without a reload when connections open
// and a handshake is refused, and its numbers match /metrics.
func TestDashboard(t *testing.T) {
	t.Parallel()
	node := startNode(t)
	g := startGateway(t, &Program{}, "-listen", "127.0.0.1:0", "-admin-listen", "127.0.0.1:0", "-self-signed-dir", "",
		"-upstream", node.URL(), "-max-conns-per-client", "2")
	admin := "http://" + g.Admin
	screenshot := filepath.Join(t.TempDir(), "dashboard.png")
	if p := os.Getenv("WSSGATE_DASHBOARD_PNG"); p != "" {
		screenshot = p
	}
	// The refusal comes after both connections opened: once the dashboard
	// shows it, it shows them too.
	shots := openPage(t, admin+"/?refresh=200", "WAIT_ID=refusals", "WAIT_TEXT=1", "SCREENSHOT="+screenshot)
	first := nextShot(t, shots)
	if first.text("open") != "0" || first.text("refusals") != "0" || first.text("ready") != "ready" {
		t.Errorf("first render: open %q, ready %q", first.text("open"), first.text("ready"))
	}
	nodes := first.Tables["nodes"]
	if len(nodes) != 2 || nodes[1][0] != node.URL() || nodes[1][1] != "healthy" {
		t.Errorf("nodes table %q", nodes)
	}
	certs := first.Tables["certs"]
	if len(certs) != 2 || certs[1][0] != "self-signed" || !strings.Contains(certs[1][1], "127.0.0.1") || !strings.HasPrefix(certs[1][3], "20") {
		t.Errorf("certs table %q", certs)
	}

	insecure := &tls.Config{InsecureSkipVerify: true}
	for range 2 {
		if _, _, err := dialWSS(t, g.TLS, insecure); err != nil {
			t.Fatal(err)
		}
	}
	if _, res, err := dialWSS(t, g.TLS, insecure); err == nil || res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third connection: %v, want 429", err)
	}
	second := nextShot(t, shots)
	_, metrics := get(t, nil, admin+"/metrics")
	if second.LoadMark != first.LoadMark || second.Navigations != 1 || second.Updates <= first.Updates {
		t.Errorf("the dashboard reloaded or did not update: marks %v/%v, navigations %d, updates %d -> %d",
			first.LoadMark, second.LoadMark, second.Navigations, first.Updates, second.Updates)
	}
	for _, c := range []struct {
		id   string
		want int64
	}{
		{"open", metricSum(t, metrics, "wssgate_connections_open")},
		{"handshakes", metricSum(t, metrics, "wssgate_handshakes_total", `outcome="ok"`)},
		{"refusals", metricSum(t, metrics, "wssgate_refusals_total")},
	} {
		if got := second.text(c.id); got != fmt.Sprint(c.want) {
			t.Errorf("dashboard %s = %s, /metrics says %d", c.id, got, c.want)
		}
	}
	if n := metricSum(t, metrics, "wssgate_connections_open"); n != 2 {
		t.Errorf("/metrics: %d open, want 2", n)
	}
	refusals := second.Tables["refusal-table"]
	want := metricSum(t, metrics, "wssgate_refusals_total", `reason="conns_per_client"`)
	if len(refusals) != 2 || refusals[1][0] != "conns_per_client" || refusals[1][1] != fmt.Sprint(want) || want != 1 {
		t.Errorf("refusal table %q, /metrics conns_per_client %d", refusals, want)
	}
	_, ready := get(t, nil, admin+"/ready")
	var rd struct {
		Nodes []struct{ BestBlock, FinalizedBlock, Lag uint64 } `json:"nodes"`
	}
	json.Unmarshal([]byte(ready), &rd)
	row := second.Tables["nodes"][1]
	if len(rd.Nodes) != 1 || row[2] != fmt.Sprint(rd.Nodes[0].BestBlock) || row[3] != fmt.Sprint(rd.Nodes[0].FinalizedBlock) ||
		row[4] != fmt.Sprint(rd.Nodes[0].Lag) || row[5] != "2" {
		t.Errorf("nodes table %q, /ready %s", second.Tables["nodes"], ready)
	}
	sameOrigin(t, second, admin+"/")
	for _, l := range second.Console {
		t.Errorf("console: %s", l)
	}
	// Let the script finish (it writes the screenshot), then check it.
	for range shots {
	}
	if st, err := os.Stat(screenshot); err != nil || st.Size() < 10000 {
		t.Errorf("screenshot %s: %v", screenshot, err)
	}
}

// TestLandingPage opens the public port in Chromium: a browser's GET /
// gets the landing page (wss URL, Apps link, how to trust the certificate,
// the nodes' sync state, nothing about clients or internal addresses),
// while JSON-RPC GETs reach the node and the page is under the request
// limit.
func TestLandingPage(t *testing.T) {
	t.Parallel()
	node := startNode(t)
	g := startGateway(t, &Program{}, "-listen", "127.0.0.1:0", "-admin-listen", "", "-self-signed-dir", "",
		"-upstream", node.URL(), "-rate", "1", "-burst", "4", "-drain", "1s")
	origin := "https://" + g.TLS
	s := nextShot(t, openPage(t, origin+"/", "IGNORE_CERT_ERRORS=1", "ACCEPT_HTML=1"))
	wss := "wss://" + g.TLS
	if s.text("wss") != wss || s.IDs["apps"].Href != AppsURL(wss) {
		t.Errorf("wss %q, apps %q", s.text("wss"), s.IDs["apps"].Href)
	}
	if !strings.Contains(s.text("trust"), "self-signed") || !regexp.MustCompile(`^([0-9A-F]{2}:){31}[0-9A-F]{2}$`).MatchString(s.text("sha256")) {
		t.Errorf("trust %q, sha256 %q", s.text("trust"), s.text("sha256"))
	}
	best, _ := node.BestBlock()
	rows := s.Tables["nodes"]
	if len(rows) != 2 || rows[1][1] != "in sync" || rows[1][2] != fmt.Sprintf("#%d", best) {
		t.Errorf("nodes %q, node's best %d", rows, best)
	}
	page := fmt.Sprint(s.IDs, s.Tables)
	if strings.Contains(page, node.Addr()) || strings.Contains(page, "127.0.0.1:"+strings.Split(node.Addr(), ":")[1]) {
		t.Errorf("landing page shows the node's address: %s", page)
	}
	sameOrigin(t, s, origin+"/")

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	res, body := get(t, client, origin+"/health", "Accept", "text/html,application/json")
	if res.StatusCode != 200 || !strings.Contains(body, `"peers"`) {
		t.Errorf("GET /health: %d %s; want the node's", res.StatusCode, body)
	}
	var limited bool
	for range 10 {
		if res, _ := get(t, client, origin+"/", "Accept", "text/html"); res.StatusCode == http.StatusTooManyRequests {
			limited = true
			break
		}
	}
	if !limited {
		t.Error("10 landing page requests at -rate 1 -burst 4: none refused")
	}
}
