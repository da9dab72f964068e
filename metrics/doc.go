// Package metrics counts what a [wssproxy.Proxy] does and exports it as
// Prometheus text and expvar JSON, with the standard library only.
//
//	counters := metrics.NewCounters()
//	p, err := wssproxy.New(upstream, &wssproxy.Options{Metrics: counters.Hooks()})
//	...
//	adminMux.Handle("GET /metrics", counters)
//
// Any other collector sets the hooks it wants in [wssproxy.Metrics]; this
// package is one such collector.
//
// # Series
//
// The series below are stable: names, types and label names do not change
// (new series or label values may be added). Every name has the prefix
// wssgate_. Labels: upstream is the node's host:port as configured ("" for
// a handshake refused before a node was chosen); reason and outcome take
// the wssproxy.Refusal* values; closed_by is client, node or gateway; code
// is the close code sent to the client, or "none".
//
//	connections_open{upstream}                      gauge      WebSocket connections open
//	connections_total{upstream}                     counter    WebSocket connections opened
//	connections_closed_total{upstream,closed_by,code} counter  connections closed
//	connection_duration_seconds                     histogram  connection lifetimes (1 s to 1 day)
//	handshakes_total{upstream,outcome}              counter    handshakes: "ok" or the refusal reason
//	refusals_total{reason}                          counter    requests refused (WebSocket and HTTP)
//	messages_total{upstream,direction}              counter    messages, direction to_node or to_client
//	bytes_total{upstream,direction}                 counter    payload bytes, by direction
//	node_dial_seconds{upstream}                     histogram  node dial time, failed dials included
//	node_dial_errors_total{upstream}                counter    failed node dials
//	node_healthy{upstream}                          gauge      last health check passed (1) or not (0)
//	node_health_checks_total{upstream,result}       counter    health checks, result healthy or unhealthy
//	denied_calls_total{reason}                      counter    JSON-RPC calls answered by the gateway
//	node_best_block{upstream}                       gauge      best block number at the last check
//	node_finalized_block{upstream}                  gauge      finalized block number at the last check
//	node_seconds_since_head{upstream}               gauge      seconds since the best block last changed
//	node_block_lag{upstream}                        gauge      blocks behind the pool's best node
//	node_peers{upstream}                            gauge      peers, from system_health
//	node_syncing{upstream}                          gauge      syncing (1) or not (0)
//	node_serves_unsafe_methods{upstream}            gauge      node answers unsafe methods (1) or refuses them (0)
//	nodes_all_unhealthy                             gauge      every node unhealthy (1) or not (0)
//	cache_lookups_total{outcome}                    counter    shared mode's cache lookups: hit or miss
//
// Each refused request is counted once in refusals_total, and, when it was
// a WebSocket handshake, once in handshakes_total; an accepted handshake is
// counted in handshakes_total{outcome="ok"} and connections_total.
// [Snapshot] holds the same values, under the same names without the
// prefix, for expvar.
package metrics
