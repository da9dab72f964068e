package wssproxy

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/wssgate/wssgate/internal/wsframe"
)

// logClose writes the one log line each connection gets when it ends.
func (pc *proxyConn) logClose() {
	ci := &pc.end
	level := slog.LevelInfo
	if ci.by == sideNode && ci.clientCode != 1000 && ci.clientCode != 1001 {
		level = slog.LevelWarn
	}
	if !pc.p.log.Enabled(context.Background(), level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("client", pc.key),
		slog.String("upstream", pc.b.host),
		slog.Duration("duration", time.Since(pc.start)),
		slog.String("closed_by", ci.by.String()),
		slog.Int64("msgs_in", pc.stats[toNode].msgs.Load()),
		slog.Int64("bytes_in", pc.stats[toNode].bytes.Load()),
		slog.Int64("msgs_out", pc.stats[toClient].msgs.Load()),
		slog.Int64("bytes_out", pc.stats[toClient].bytes.Load()),
		slog.Int("client_code", int(ci.clientCode)),
		slog.String("client_reason", ci.clientReason),
		slog.Int("node_code", int(ci.nodeCode)),
		slog.String("node_reason", ci.nodeReason),
	}
	if pc.warm { // the node saw no X-Forwarded-For for this client
		attrs = append(attrs, slog.Bool("warm", true))
	}
	if pc.dfl != nil { // bytes_out are then the compressed bytes sent
		attrs = append(attrs, slog.Bool("deflate", true))
	}
	if ci.err != nil && !normalEnd(ci) {
		attrs = append(attrs, slog.String("error", ci.err.Error()))
	}
	pc.p.log.LogAttrs(context.Background(), level, "wssproxy: connection closed", attrs...)
}

// normalEnd reports whether the connection ended by a close handshake or
// the gateway's own decision (shutdown), which the codes and reasons
// already describe: no error to log.
func normalEnd(ci *closeInfo) bool {
	return errors.As(ci.err, new(wsframe.CloseError)) || ci.by == sideGateway && errors.Is(ci.err, errShutdown) ||
		ci.by == sideGateway && ci.clientReason == reasonShutdown
}
