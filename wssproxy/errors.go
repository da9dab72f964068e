package wssproxy

import (
	"errors"

	"github.com/coder/websocket"
	"github.com/wssgate/wssgate/internal/wsframe"
)

// Reasons the gateway gives in close frames it initiates.
const reasonShutdown = "gateway shutting down"

var (
	errShutdown      = errors.New(reasonShutdown)
	errIdle          = errors.New("idle timeout")
	errPingTimeout   = errors.New("no answer to keepalive ping")
	errWriteTimeout  = errors.New("write timed out: peer is not reading")
	errMessageTooBig = errors.New("message over the read limit")
)

// policyClose is an error that closes the client with a chosen code, such
// as 1008 (policy violation) for a client far over its message rate.
type policyClose struct {
	code   websocket.StatusCode
	reason string
}

func (e *policyClose) Error() string { return e.reason }

// protocolError is a frame that breaks RFC 6455: its sender is closed
// with 1002.
type protocolError struct{ wsframe.ProtocolError }
