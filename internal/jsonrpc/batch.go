package jsonrpc

import "bytes"

// The gateway's edits of a message: batch split (AppendBatch), id rewriting
// (ReplaceIDs) and reply merge (MergeBatch) live here, once, for the
// WebSocket and the HTTP paths.

// An IDEdit replaces the raw id at msg[At:End] with ID.
type IDEdit struct {
	At, End int
	ID      []byte
}

// ReplaceIDs appends msg to dst with each edit applied. Edits must be in
// increasing order of At and must not overlap.
func ReplaceIDs(dst, msg []byte, edits []IDEdit) []byte {
	last := 0
	for _, e := range edits {
		dst = append(dst, msg[last:e.At]...)
		dst = append(dst, e.ID...)
		last = e.End
	}
	return append(dst, msg[last:]...)
}

// MergeBatch appends to dst the JSON array reply with the raw JSON values
// extra added at its end: the gateway's answers to the batch elements it
// refused, merged into the node's answer to the rest. If reply is not an
// array, it appends false and dst unchanged.
func MergeBatch(dst, reply []byte, extra ...[]byte) ([]byte, bool) {
	t := TrimSpace(reply)
	if len(t) < 2 || t[0] != '[' || t[len(t)-1] != ']' {
		return dst, false
	}
	end := bytes.LastIndexByte(reply, ']')
	dst = append(dst, reply[:end]...)
	empty := skipSpace(t, 1) == len(t)-1
	for i, e := range extra {
		if i > 0 || !empty {
			dst = append(dst, ',')
		}
		dst = append(dst, e...)
	}
	return append(dst, ']'), true
}
