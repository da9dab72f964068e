package wssproxy_test

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/wssgate/wssgate/wssproxy"
)

// ExampleCounters serves the proxy's metrics on /metrics for Prometheus.
// Pass the same Counters as the proxy's Metrics.
func ExampleCounters() {
	metrics := wssproxy.NewCounters()
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	// What the proxy reports for one connection so far.
	metrics.ConnOpened("node:9944")
	metrics.Traffic("node:9944", true, 3, 420)

	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	fmt.Println(resp.Header.Get("Content-Type"))
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "wssgate_connections_") || strings.Contains(sc.Text(), "wssgate_bytes_total") {
			fmt.Println(sc.Text())
		}
	}
	// Output:
	// text/plain; version=0.0.4; charset=utf-8
	// wssgate_connections_open{upstream="node:9944"} 1
	// wssgate_connections_total{upstream="node:9944"} 1
	// # HELP wssgate_bytes_total WebSocket payload bytes proxied, by direction.
	// # TYPE wssgate_bytes_total counter
	// wssgate_bytes_total{upstream="node:9944",direction="to_client"} 0
	// wssgate_bytes_total{upstream="node:9944",direction="to_node"} 420
}
