package wsframe

import (
	"encoding/binary"
	"math/bits"
)

// Mask applies (and, being its own inverse, removes) the masking key key
// to b in place, for bytes starting at offset pos of the payload, and
// returns the offset after b, for the next call on the same payload. It
// works a machine word at a time.
func Mask(key [4]byte, pos int, b []byte) int {
	if len(b) == 0 {
		return pos
	}
	k := binary.LittleEndian.Uint32(key[:])
	k = bits.RotateLeft32(k, -8*(pos&3)) // key as seen from b[0]
	// Bytes until b is 8-byte aligned in the payload's key rhythm do not
	// matter for correctness; unaligned 64-bit loads are fine on the
	// platforms Go supports well, so go straight to words.
	k64 := uint64(k) | uint64(k)<<32
	for len(b) >= 32 {
		v := binary.LittleEndian.Uint64(b)
		binary.LittleEndian.PutUint64(b, v^k64)
		v = binary.LittleEndian.Uint64(b[8:])
		binary.LittleEndian.PutUint64(b[8:], v^k64)
		v = binary.LittleEndian.Uint64(b[16:])
		binary.LittleEndian.PutUint64(b[16:], v^k64)
		v = binary.LittleEndian.Uint64(b[24:])
		binary.LittleEndian.PutUint64(b[24:], v^k64)
		b = b[32:]
		pos += 32
	}
	for len(b) >= 8 {
		v := binary.LittleEndian.Uint64(b)
		binary.LittleEndian.PutUint64(b, v^k64)
		b = b[8:]
		pos += 8
	}
	for i := range b {
		b[i] ^= byte(k)
		k = bits.RotateLeft32(k, -8)
	}
	return pos + len(b)
}

// MaskCopy writes src masked (or unmasked) with key from offset pos into
// dst, which must be at least as long, and returns the next offset.
func MaskCopy(dst, src []byte, key [4]byte, pos int) int {
	copy(dst, src)
	return Mask(key, pos, dst[:len(src)])
}
