package rpctest

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestBlake2b256(t *testing.T) {
	t.Parallel()
	// Expected values from @polkadot/util-crypto blake2AsHex.
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "0x0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8"},
		{"abc", []byte("abc"), "0xbddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319"},
		{"empty trie root", []byte{0}, emptyTrieRoot},
		{"two blocks", []byte(strings.Repeat("a", 200)), "0x6b6e59aaf00eb730cf93de53560846722184bbd92f8368c21ffa95380c2f9fe6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sum := blake2b256(tt.in)
			if diff := cmp.Diff(tt.want, hexString(sum[:])); diff != "" {
				t.Errorf("blake2b256 (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCompact(t *testing.T) {
	t.Parallel()
	tests := []struct {
		n    uint64
		want string
	}{
		{0, "0x00"}, {1, "0x04"}, {63, "0xfc"}, {64, "0x0101"}, {16383, "0xfdff"},
		{16384, "0x02000100"}, {1<<30 - 1, "0xfeffffff"}, {1 << 30, "0x0300000040"},
		{1 << 32, "0x070000000001"},
	}
	for _, tt := range tests {
		if got := hexString(compact(tt.n)); got != tt.want {
			t.Errorf("compact(%d) = %s, want %s", tt.n, got, tt.want)
		}
	}
}

func TestStatic(t *testing.T) {
	t.Parallel()
	s, err := loadStatic()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.metadataHex, "0x6d657461") {
		t.Errorf("metadata starts %.12s", s.metadataHex)
	}
	// Some, compact length of the 685064-byte metadata, metadata.
	if want := "0x0122d02900" + s.metadataHex[2:]; s.atVersionHex != want {
		t.Errorf("atVersionHex starts %.20s, want %.20s", s.atVersionHex, want)
	}
}
