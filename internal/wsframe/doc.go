// Package wsframe reads and writes RFC 6455 WebSocket frames at the byte
// level: frame headers ([ParseHeader], [AppendHeader]), masking ([Mask])
// and close-frame payloads ([ParseClose], [AppendClose]). It keeps no
// state and allocates nothing; it is the frame layer of wssproxy's relay,
// which passes frames between two sockets without re-framing them.
package wsframe
