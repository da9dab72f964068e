package ratelimit

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

// The fuzz targets check, for any header, that parsing never panics,
// that an untrusted peer's key never depends on the header, and that
// the client address found is the peer or an address written in the
// header. Seeds are in testdata/fuzz. Run one with, for example,
//
//	go test -run '^$' -fuzz '^FuzzXForwardedFor$' -fuzztime 15s ./ratelimit

func FuzzXForwardedFor(f *testing.F) {
	for _, s := range []string{
		"198.51.100.9", "6.6.6.6, 198.51.100.9, 10.0.0.2", "[2001:db8::1]:80, 1.2.3.4:5678",
		"unknown, garbage,,", "::ffff:1.2.3.4", "fe80::1%eth0", " 1.2.3.4 \t, [::1]",
	} {
		f.Add(s, "", true)
		f.Add(s, "10.0.0.3", false)
	}
	f.Fuzz(func(t *testing.T, line1, line2 string, trustAll bool) {
		checkHeader(t, "X-Forwarded-For", line1, line2, trustAll)
	})
}

func FuzzForwarded(f *testing.F) {
	for _, s := range []string{
		"for=198.51.100.9", `for="[2001:db8::1]:4711";proto=https, For=1.2.3.4`,
		"for=_hidden, for=unknown", `for="\[::1\]";by=x, ;, for=1.2.3.4:_p`,
		`for="unterminated, for=1.2.3.4`, "proto=http;host=a, FOR=5.6.7.8",
	} {
		f.Add(s, "", true)
		f.Add(s, "for=10.0.0.3", false)
	}
	f.Fuzz(func(t *testing.T, line1, line2 string, trustAll bool) {
		checkHeader(t, "Forwarded", line1, line2, trustAll)
	})
}

func checkHeader(t *testing.T, name, line1, line2 string, trustAll bool) {
	lines := []string{line1}
	if line2 != "" {
		lines = append(lines, line2)
	}
	h := http.Header{name: lines}
	peer := netip.MustParseAddr("10.0.0.1")
	r := newRequest("10.0.0.1:1234", h)

	untrusted := &Keyer{Header: name, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}
	if got := untrusted.Key(r); got != "10.0.0.1" {
		t.Fatalf("untrusted peer: key %q depends on header %q", got, lines)
	}

	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32")}
	if trustAll {
		trusted = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
	}
	k := &Keyer{Header: name, TrustedProxies: trusted}
	got, err := k.ClientAddr(r)
	if err != nil {
		t.Fatal(err)
	}
	if !got.IsValid() || got.Zone() != "" || got.Is4In6() {
		t.Fatalf("ClientAddr = %v: not a plain address", got)
	}
	if got != peer && !addrsIn(lines)[got] {
		t.Fatalf("ClientAddr = %v, neither the peer nor in %q", got, lines)
	}
	_ = k.Key(r) // must not panic
}

// addrsIn returns every address that any piece of lines could spell,
// more loosely than the parsers read them: a reference to check that
// the parsers invent no address.
func addrsIn(lines []string) map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	add := func(s string) {
		if a, err := netip.ParseAddr(s); err == nil {
			out[a.Unmap().WithZone("")] = true
		}
	}
	for _, line := range lines {
		for _, part := range strings.Split(line, ",") { // whole elements: a zone may hold spaces
			add(strings.Trim(part, " \t"))
		}
		line = strings.ReplaceAll(line, `\`, "")
		for _, tok := range strings.FieldsFunc(line, func(r rune) bool { return strings.ContainsRune(",;= \t\"[]", r) }) {
			add(tok)
			if i := strings.LastIndexByte(tok, ':'); i >= 0 {
				add(tok[:i])
			}
		}
	}
	return out
}

func TestParseXFF(t *testing.T) {
	t.Parallel()
	got := parseList(parseXFF, []string{" 1.2.3.4:80 , [::1]:8", "x,,", ""})
	want := []netip.Addr{netip.MustParseAddr("1.2.3.4"), netip.MustParseAddr("::1"), {}}
	if len(got) != len(want) {
		t.Fatalf("parseXFF = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("hop %d = %v, want %v", i, got[i], want[i])
		}
	}
}

func TestParseForwarded(t *testing.T) {
	t.Parallel()
	got := parseList(parseForwarded, []string{`for=1.2.3.4;proto=http, , for="[::1]:8" ,for=_x;by=y`, `;;`, `x=1, for=2.3.4.5`, `for=1.1.1.1 junk, FOR=3.3.3.3`})
	want := []netip.Addr{
		netip.MustParseAddr("1.2.3.4"), netip.MustParseAddr("::1"), {},
		{}, netip.MustParseAddr("2.3.4.5"),
		{}, netip.MustParseAddr("3.3.3.3"),
	}
	if len(got) != len(want) {
		t.Fatalf("parseForwarded = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("hop %d = %v, want %v", i, got[i], want[i])
		}
	}
}

// parseList runs parse on lines and returns the hops, left to right.
func parseList(parse func(*hops, []string), lines []string) []netip.Addr {
	var h hops
	parse(&h, lines)
	out := make([]netip.Addr, h.len())
	for i := range out {
		out[len(out)-1-i] = h.fromRight(i)
	}
	return out
}

func TestHopsBound(t *testing.T) {
	t.Parallel()
	chain := func(trustedRight int) string { // a client, then trusted hops
		return strings.Repeat("6.6.6.6, ", 1000) + "198.51.100.9, " + strings.Repeat("10.0.0.8, ", trustedRight-1) + "10.0.0.7"
	}
	k := &Keyer{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	for _, tt := range []struct{ name, xff, want string }{
		{"client 64th from the right is found", chain(63), "198.51.100.9"},
		{"client 65th from the right is not", chain(64), "10.0.0.8"},
		{"all trusted stops at the 64th", strings.Repeat("10.0.0.9, ", 1000) + strings.Repeat("10.0.0.8, ", 63) + "10.0.0.7", "10.0.0.8"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := k.Key(newRequest("10.0.0.1:1", http.Header{"X-Forwarded-For": {tt.xff}}))
			if got != tt.want {
				t.Errorf("Key = %q, want %q", got, tt.want)
			}
		})
	}
}
