package metrics_test

import (
	"bufio"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/wssgate/wssgate/metrics"
	"github.com/wssgate/wssgate/wssproxy"
)

// ExampleCounters counts what a proxy does and serves it on /metrics for
// Prometheus.
func ExampleCounters() {
	counters := metrics.NewCounters()
	proxy, err := wssproxy.New("ws://127.0.0.1:9944", &wssproxy.Options{
		Metrics:        counters.Hooks(),
		HealthInterval: -1, // no node in this example
		Logger:         slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer proxy.Close()
	gateway := httptest.NewServer(proxy)
	defer gateway.Close()
	admin := http.NewServeMux()
	admin.Handle("GET /metrics", counters)
	adminSrv := httptest.NewServer(admin)
	defer adminSrv.Close()

	// An upgrade to something other than WebSocket is refused: 400.
	req, _ := http.NewRequest(http.MethodGet, gateway.URL, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "h2c")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		fmt.Println("gateway:", resp.Status)
	}

	resp, err := http.Get(adminSrv.URL + "/metrics")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	fmt.Println(resp.Header.Get("Content-Type"))
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "refusals_total") || strings.Contains(sc.Text(), "handshakes_total") {
			fmt.Println(sc.Text())
		}
	}
	// Output:
	// gateway: 400 Bad Request
	// text/plain; version=0.0.4; charset=utf-8
	// # HELP wssgate_handshakes_total WebSocket handshakes, by outcome: ok or the refusal reason.
	// # TYPE wssgate_handshakes_total counter
	// wssgate_handshakes_total{upstream="",outcome="bad_handshake"} 1
	// # HELP wssgate_refusals_total Requests refused, by reason.
	// # TYPE wssgate_refusals_total counter
	// wssgate_refusals_total{reason="bad_handshake"} 1
}
