package wssproxy

import "sync"

// Pools of the relay's buffers. A connection holds one only while data
// is in flight: see [copier.read] and [gather].
var (
	readPool   = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}
	gatherPool = sync.Pool{New: func() any { b := make([]byte, 0, gatherMax); return &b }}
)

// bigPools hold buffers for whole messages the session reads that do not
// come as one frame in the read buffer, by size class (128 KiB, 256 KiB,
// ... 32 MiB), so inspecting large messages does not allocate per message.
var bigPools [9]sync.Pool

const bigMin = 4 * readBufSize

func bigClass(n int) int {
	c := 0
	for size := bigMin; size < n && c < len(bigPools)-1; size *= 2 {
		c++
	}
	return c
}

func getBig(n int) []byte {
	c := bigClass(n)
	if size := bigMin << c; size >= n {
		if p, ok := bigPools[c].Get().(*[]byte); ok {
			return (*p)[:0]
		}
		return make([]byte, 0, size)
	}
	return make([]byte, 0, n) // beyond the largest class: not pooled
}

func putBig(b []byte) {
	c := bigClass(cap(b))
	if bigMin<<c != cap(b) {
		return
	}
	b = b[:0]
	bigPools[c].Put(&b)
}

// appendBig appends p to b, moving to a larger pooled buffer as needed.
func appendBig(b, p []byte) []byte {
	if len(b)+len(p) > cap(b) {
		nb := getBig(max(2*cap(b), len(b)+len(p)))[:len(b)]
		copy(nb, b)
		putBig(b)
		b = nb
	}
	return append(b, p...)
}
