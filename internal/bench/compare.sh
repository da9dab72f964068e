#!/usr/bin/env bash
# compare.sh: wssgate against nginx, haproxy and a direct wss:// server, all
# on loopback in front of the same plain ws:// echo upstream. Not run by CI.
#
#   internal/bench/compare.sh                       # full run
#   DURATION=2 ROUNDS=1 IDLE_CONNS=2000 internal/bench/compare.sh   # quick
#
# Environment (defaults in brackets):
#   DURATION [5]   seconds measured per run      WARMUP [1]  warm-up seconds
#   ROUNDS [3]     interleaved rounds (every target once per scenario per round)
#   IDLE_CONNS ["2000 9500"]  idle connection counts; IDLE_HOLD [5] seconds
#   TARGETS ["direct-wss wssgate nginx nginx-tuned haproxy caddy"]
#                  (plus wssgate-base, another build of examples/basic given
#                  as BASE_BASIC=path, to measure a change before and after)
#   SCENARIOS ["rtt1 rtt32 pipe100 pipe64k fanout100 handshake handshake-x25519 idle"]
#   LOAD_CPU [0], SERVER_CPU [1]   taskset pinning (skipped without taskset)
#   BASE_PORT [18440]              ports BASE_PORT..BASE_PORT+8 (wssgate's
#                  -admin-listen, with /debug/pprof, on BASE_PORT+8)
#   WSSGATE_FLAGS [""]             more flags for wssgate, e.g. "-node-warm-conns 4"
#   BASE_FLAGS [""]                more flags for wssgate-base (BASE_BASIC may be
#                  the same build, to compare two configurations)
#   OUT [a new /tmp dir]           configs, logs and results.jsonl
#
# Installs nginx, haproxy and caddy from Debian packages when missing (root).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
ROUNDS=${ROUNDS:-3}
IDLE_CONNS=${IDLE_CONNS:-"2000 9500"}
IDLE_HOLD=${IDLE_HOLD:-5}
BASE_BASIC=${BASE_BASIC:-}
TARGETS=${TARGETS:-"direct-wss wssgate${BASE_BASIC:+ wssgate-base} nginx nginx-tuned haproxy caddy"}
SCENARIOS=${SCENARIOS:-"rtt1 rtt32 pipe100 pipe64k fanout100 handshake handshake-x25519 idle"}
LOAD_CPU=${LOAD_CPU:-0}
SERVER_CPU=${SERVER_CPU:-1}
BASE_PORT=${BASE_PORT:-18440}
WSSGATE_FLAGS=${WSSGATE_FLAGS:-}
BASE_FLAGS=${BASE_FLAGS:-}
OUT=${OUT:-$(mktemp -d /tmp/wssgate-bench.XXXXXX)}
mkdir -p "$OUT/bin" "$OUT/logs" "$OUT/nginx/logs"

UP_PORT=$BASE_PORT
declare -A PORT=([direct-wss]=$((BASE_PORT + 1)) [wssgate]=$((BASE_PORT + 2))
	[nginx]=$((BASE_PORT + 3)) [nginx-tuned]=$((BASE_PORT + 4)) [haproxy]=$((BASE_PORT + 5))
	[caddy]=$((BASE_PORT + 6)) [wssgate-base]=$((BASE_PORT + 7)) [wssgate-admin]=$((BASE_PORT + 8)))
declare -A PID=() # server name -> pid we started

log() { printf '%s\n' "compare: $*" >&2; }

# Command prefixes that pin to one CPU (taskset execs, so $! is the server).
PIN_LOAD=() PIN_SERVER=()
if command -v taskset >/dev/null; then
	PIN_LOAD=(taskset -c "$LOAD_CPU") PIN_SERVER=(taskset -c "$SERVER_CPU")
fi

cleanup() {
	local name
	for name in "${!PID[@]}"; do stop_server "$name"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_server() {
	local pid=${PID[$1]:-}
	[[ -n $pid ]] || return 0
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	unset "PID[$1]"
}

wait_port() { # wait_port PORT NAME
	local i
	for i in $(seq 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		kill -0 "${PID[$2]}" 2>/dev/null || break
		sleep 0.1
	done
	log "$2 did not listen on $1; its log:"
	tail -20 "$OUT/logs/$2.log" >&2
	exit 1
}

install_peers() {
	if command -v nginx >/dev/null && command -v haproxy >/dev/null && command -v caddy >/dev/null; then return; fi
	log "installing nginx, haproxy and caddy"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx haproxy caddy >/dev/null
}

build() {
	log "building loadtest, basic and aggregate into $OUT/bin"
	(cd "$ROOT" && go build -o "$OUT/bin/" ./examples/loadtest ./examples/basic ./internal/bench/aggregate)
	LT=$OUT/bin/loadtest
}

make_cert() {
	CERT=$OUT/cert.pem KEY=$OUT/key.pem
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
		-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
		-keyout "$KEY" -out "$CERT" 2>/dev/null
	chmod 600 "$KEY"
	cat "$CERT" "$KEY" >"$OUT/haproxy.pem"
}

# gateway_flags [BINARY] prints the flags that turn basic's limits off, for
# those its -h lists: they come and go as the gateway grows.
gateway_flags() {
	local help f flags=()
	help=$("${1:-$OUT/bin/basic}" -h 2>&1 || true)
	for f in rate msg-rate max-conns max-conns-per-client max-conns-per-node max-subscriptions; do
		if grep -qE "^ +-$f( |$)" <<<"$help"; then flags+=("-$f=0"); fi
	done
	echo "${flags[*]}"
}

write_nginx_conf() {
	local loc='proxy_pass http://bench; proxy_http_version 1.1;
			proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade";
			proxy_set_header Host $host; proxy_read_timeout 3600s; proxy_send_timeout 3600s;'
	cat >"$OUT/nginx/nginx.conf" <<EOF
worker_processes auto;
worker_rlimit_nofile 20000;
pid $OUT/nginx/nginx.pid;
error_log $OUT/nginx/logs/error.log warn;
events { worker_connections 20000; }
http {
	access_log off;
	upstream bench { server 127.0.0.1:$UP_PORT; }
	ssl_certificate $CERT;
	ssl_certificate_key $KEY;
	# Mozilla's intermediate settings: nginx 1.22 leaves TLS 1.3 off by default
	ssl_protocols TLSv1.2 TLSv1.3;
	ssl_ecdh_curve X25519:prime256v1:secp384r1;
	server {
		listen 127.0.0.1:${PORT[nginx]} ssl;
		location / { $loc }
	}
	server { # tuned: a 64 KiB buffer per direction instead of one page
		# (proxy_buffers/busy only so nginx accepts it; upgraded conns use proxy_buffer_size)
		listen 127.0.0.1:${PORT[nginx-tuned]} ssl;
		location / { $loc proxy_buffer_size 64k; proxy_buffers 8 64k; proxy_busy_buffers_size 128k; }
	}
}
EOF
}

write_haproxy_conf() {
	cat >"$OUT/haproxy.cfg" <<EOF
global
	maxconn 9800
defaults
	mode http
	timeout connect 5s
	timeout client 1h
	timeout server 1h
	timeout tunnel 1h
	timeout http-request 10s
frontend wss
	bind 127.0.0.1:${PORT[haproxy]} ssl crt $OUT/haproxy.pem alpn http/1.1
	default_backend node
backend node
	server up 127.0.0.1:$UP_PORT
EOF
}

write_caddy_conf() {
	mkdir -p "$OUT/caddy"
	cat >"$OUT/caddy/Caddyfile" <<EOF
{
	admin off
	auto_https off
	storage file_system $OUT/caddy/data
	log {
		output discard
	}
}
https://127.0.0.1:${PORT[caddy]} {
	tls $CERT $KEY
	reverse_proxy 127.0.0.1:$UP_PORT
}
EOF
}

# start_server NAME: start one server (nginx serves nginx and nginx-tuned).
start_server() {
	local name=$1 logf="$OUT/logs/$1.log"
	case $name in
	upstream) "${PIN_SERVER[@]}" "$LT" -mode serve -listen "127.0.0.1:$UP_PORT" >"$logf" 2>&1 & ;;
	direct-wss) "${PIN_SERVER[@]}" "$LT" -mode serve -listen "127.0.0.1:${PORT[$name]}" \
		-tls-cert "$CERT" -tls-key "$KEY" >"$logf" 2>&1 & ;;
	# shellcheck disable=SC2086 # GATEWAY_FLAGS is a list of flags
	wssgate) "${PIN_SERVER[@]}" "$OUT/bin/basic" -listen "127.0.0.1:${PORT[$name]}" \
		-admin-listen "127.0.0.1:${PORT[wssgate-admin]}" -upstream "ws://127.0.0.1:$UP_PORT" \
		-cert "$CERT" -key "$KEY" $GATEWAY_FLAGS $WSSGATE_FLAGS >"$logf" 2>&1 & ;;
	# shellcheck disable=SC2086
	wssgate-base) "${PIN_SERVER[@]}" "$BASE_BASIC" -listen "127.0.0.1:${PORT[$name]}" -admin-listen "" \
		-upstream "ws://127.0.0.1:$UP_PORT" -cert "$CERT" -key "$KEY" $BASE_GATEWAY_FLAGS $BASE_FLAGS >"$logf" 2>&1 & ;;
	caddy) XDG_DATA_HOME=$OUT/caddy XDG_CONFIG_HOME=$OUT/caddy "${PIN_SERVER[@]}" caddy run \
		--config "$OUT/caddy/Caddyfile" --adapter caddyfile >"$logf" 2>&1 & ;;
	nginx) "${PIN_SERVER[@]}" nginx -p "$OUT/nginx" -e "$OUT/nginx/logs/error.log" \
		-c "$OUT/nginx/nginx.conf" -g 'daemon off;' >"$logf" 2>&1 & ;;
	haproxy) "${PIN_SERVER[@]}" haproxy -db -f "$OUT/haproxy.cfg" >"$logf" 2>&1 & ;;
	esac
	PID[$name]=$!
	case $name in
	upstream) wait_port "$UP_PORT" "$name" ;;
	nginx) wait_port "${PORT[nginx]}" "$name" && wait_port "${PORT[nginx-tuned]}" "$name" ;;
	*) wait_port "${PORT[$name]}" "$name" ;;
	esac
}

server_of() { [[ $1 == nginx-tuned ]] && echo nginx || echo "$1"; }

# scenario_args SCENARIO: the loadtest flags of a scenario.
scenario_args() {
	local t="-duration ${DURATION}s -warmup ${WARMUP}s"
	case $1 in
	rtt1) echo "-method bench_echo -mode rtt -conns 1 -size 100 $t" ;;
	rtt32) echo "-method bench_echo -mode rtt -conns 32 -size 100 $t" ;;
	pipe100) echo "-method bench_echo -mode pipe -conns 1 -window 64 -size 100 $t" ;;
	pipe64k) echo "-method bench_echo -mode pipe -conns 1 -window 64 -size 65536 $t" ;;
	fanout100) echo "-mode fanout -conns 4 -size 100 $t" ;;
	handshake) echo "-method bench_echo -mode handshake -conns 4 -size 100 $t" ;;
	handshake-x25519) echo "-method bench_echo -mode handshake -x25519 -conns 4 -size 100 $t" ;;
	idle*) echo "-mode idle -conns ${1#idle} -ramp 64 -hold ${IDLE_HOLD}s" ;;
	esac
}

# measure ROUND TARGET SCENARIO: one loadtest run, appended to results.jsonl.
measure() {
	local round=$1 target=$2 scenario=$3 server rc=0 args res
	server=$(server_of "$target")
	args=$(scenario_args "$scenario")
	if [[ $scenario == idle* ]]; then
		# A fresh process, so memory freed by earlier runs is not reused.
		stop_server "$server"
		start_server "$server"
		sleep 1
		args="$args -pid ${PID[$server]}"
	fi
	log "round $round: $scenario -> $target"
	# shellcheck disable=SC2086
	"${PIN_LOAD[@]}" "$LT" -url "wss://127.0.0.1:${PORT[$target]}" -ca "$CERT" -json $args \
		>"$OUT/run.json" 2>>"$OUT/logs/loadtest.log" || rc=$?
	res=$(head -c 100000 "$OUT/run.json")
	[[ -n $res ]] || res=null
	printf '{"round":%d,"target":"%s","scenario":"%s","exit":%d,"result":%s}\n' \
		"$round" "$target" "$scenario" "$rc" "$res" >>"$OUT/results.jsonl"
	if ((rc != 0)); then log "  exit $rc: $(tail -1 "$OUT/logs/loadtest.log")"; fi
	sleep 0.5
}

main() {
	install_peers
	build
	make_cert
	GATEWAY_FLAGS=$(gateway_flags)
	if [[ -n $BASE_BASIC ]]; then BASE_GATEWAY_FLAGS=$(gateway_flags "$BASE_BASIC"); fi
	write_nginx_conf
	write_haproxy_conf
	write_caddy_conf
	local scenarios=() s t r servers=()
	for s in $SCENARIOS; do
		if [[ $s == idle ]]; then
			for n in $IDLE_CONNS; do scenarios+=("idle$n"); done
		else
			scenarios+=("$s")
		fi
	done
	start_server upstream
	for t in $TARGETS; do
		s=$(server_of "$t")
		if [[ " ${servers[*]} " != *" $s "* ]]; then servers+=("$s") && start_server "$s"; fi
	done
	: >"$OUT/results.jsonl"
	for r in $(seq "$ROUNDS"); do
		for s in "${scenarios[@]}"; do
			for t in $TARGETS; do measure "$r" "$t" "$s"; done
		done
	done
	report
}

report() {
	local cpus="not pinned (no taskset)"
	command -v taskset >/dev/null && cpus="load generator on CPU $LOAD_CPU, servers and upstream on CPU $SERVER_CPU"
	cat <<EOF

## wssgate vs nginx vs haproxy vs caddy (loopback, wss:// in, ws:// echo upstream)

- $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs; $cpus; ROUNDS=$ROUNDS DURATION=${DURATION}s WARMUP=${WARMUP}s IDLE_HOLD=${IDLE_HOLD}s
- direct-wss: loadtest -mode serve with TLS (the floor: no proxy hop)
- wssgate: examples/basic -cert/-key, flags: ${GATEWAY_FLAGS:-none}${WSSGATE_FLAGS:+ $WSSGATE_FLAGS}, admin (pprof) on 127.0.0.1:${PORT[wssgate-admin]} ($(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?'))
- nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'): worker_processes auto, proxy_http_version 1.1, Upgrade/Connection "upgrade", proxy_read_timeout 3600s, default proxy_buffer_size, ssl_protocols TLSv1.2 TLSv1.3 and ssl_ecdh_curve X25519:prime256v1:secp384r1 (Mozilla intermediate; 1.22's default has no TLS 1.3)
- nginx-tuned: the same nginx, another server block with proxy_buffer_size 64k (and proxy_buffers 8 64k, proxy_busy_buffers_size 128k, which nginx requires with it)
- wssgate-base: ${BASE_BASIC:-not measured}, flags: ${BASE_GATEWAY_FLAGS:-none}${BASE_FLAGS:+ $BASE_FLAGS}
- caddy $(caddy version 2>/dev/null | awk '{print $1}'): reverse_proxy to the upstream, tls with the same cert, logs discarded
- haproxy $(haproxy -v | head -1 | awk '{print $3}'): mode http, timeout tunnel 1h, bind ssl crt, alpn http/1.1, maxconn 9800
- idle: each target restarted before the run; VmRSS of the process and its children (nginx workers), (max(after open, end of hold) - before) / opened
- client: loadtest, Go crypto/tls (TLS 1.3, no session resumption), 100 B JSON-RPC bench_echo calls
- handshakes: Go's client offers X25519MLKEM768 first; the Go servers (direct-wss, wssgate, caddy) take it, while nginx and haproxy on OpenSSL $(openssl version | awk '{print $2}') cannot and use a classic group, so their handshakes are cheaper key exchanges; handshake-x25519 offers only X25519, like for like

EOF
	"$OUT/bin/aggregate" -baseline direct-wss "$OUT/results.jsonl"
	echo
	echo "raw results: $OUT/results.jsonl; logs: $OUT/logs"
}

main "$@"
