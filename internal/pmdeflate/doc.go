// Package pmdeflate implements the server side of the WebSocket
// permessage-deflate extension (RFC 7692) for wssproxy's relay: the
// negotiation of the Sec-WebSocket-Extensions header ([Negotiate]) and the
// compression of one message at a time ([Deflater], [Inflater]) with
// compress/flate.
//
// It knows nothing of frames: the relay sets RSV1 on the first frame of a
// compressed message, collects a compressed message from a client and
// inflates it, and maps [ErrTooBig] to close code 1009 and [ErrCorrupt]
// to 1007.
//
// # Memory
//
// A flate compressor holds about 0.8 MB (1.2 MB at level 1) and a
// decompressor about 40 KB, whatever the window. Both come from pools and
// are held only while a message is compressed or inflated, so an idle
// connection holds none, unless context takeover is chosen (see
// [Options]): then a connection keeps its compressor between messages
// (server context takeover) or the last 2^client_max_window_bits bytes a
// client sent (client context takeover). [Deflater.IdleBytes] and
// [Inflater.IdleBytes] report what a connection holds between messages.
//
// # Windows
//
// compress/flate always compresses with a 32 KiB window (15 bits) and
// inflates with one, so:
//
//   - server_max_window_bits=15 in an offer is accepted and echoed;
//     server_max_window_bits below 15 is honoured by compressing Huffman-only
//     (no back-references at all, so any window suffices) and echoed.
//   - client_max_window_bits (with or without a value) needs nothing to
//     inflate; it is answered only with client context takeover, to bound
//     the window a connection keeps ([Options.ClientMaxWindowBits]).
package pmdeflate
