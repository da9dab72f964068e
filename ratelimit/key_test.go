package ratelimit

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// mustTrusted is the trusted set of most key tests.
func mustTrusted(t testing.TB, list string) []netip.Prefix {
	t.Helper()
	p, err := ParseTrusted(list)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newRequest(remote string, header http.Header) *http.Request {
	if header == nil {
		header = http.Header{}
	}
	return &http.Request{RemoteAddr: remote, Header: header}
}

func TestKeyerKey(t *testing.T) {
	t.Parallel()
	trusted := mustTrusted(t, "10.0.0.0/8, 2001:db8:ffff::/48, 127.0.0.1")
	xff := func(v ...string) http.Header { return http.Header{"X-Forwarded-For": v} }
	fwd := func(v ...string) http.Header { return http.Header{"Forwarded": v} }
	tests := []struct {
		name   string
		keyer  Keyer
		remote string
		header http.Header
		want   string
	}{
		{"untrusted peer ignores XFF", Keyer{TrustedProxies: trusted}, "203.0.113.7:1234", xff("198.51.100.9"), "203.0.113.7"},
		{"no trusted proxies ignores XFF", Keyer{}, "10.0.0.1:1234", xff("198.51.100.9"), "10.0.0.1"},
		{"trusted peer honoured", Keyer{TrustedProxies: trusted}, "10.0.0.1:1234", xff("198.51.100.9"), "198.51.100.9"},
		{"right-most untrusted wins", Keyer{TrustedProxies: trusted}, "10.0.0.1:1234", xff("6.6.6.6, 198.51.100.9, 10.0.0.2"), "198.51.100.9"},
		{"all trusted gives left-most", Keyer{TrustedProxies: trusted}, "10.0.0.1:1234", xff("10.0.0.3, 10.0.0.2"), "10.0.0.3"},
		{"several lines, last line first", Keyer{TrustedProxies: trusted}, "10.0.0.1:1234", xff("6.6.6.6", "198.51.100.9, 10.0.0.2"), "198.51.100.9"},
		{"walk crosses lines", Keyer{TrustedProxies: trusted}, "10.0.0.1:1234", xff("198.51.100.9", "10.0.0.2"), "198.51.100.9"},
		{"ports and spaces", Keyer{TrustedProxies: trusted}, "10.0.0.1:1234", xff(" 198.51.100.9:5678 ,\t10.0.0.2:80 "), "198.51.100.9"},
		{"bracketed IPv6 with port", Keyer{TrustedProxies: trusted}, "10.0.0.1:1234", xff("[2001:db8:1:2::9]:80"), "2001:db8:1:2::/64"},
		{"bare IPv6", Keyer{TrustedProxies: trusted}, "10.0.0.1:1234", xff("2001:db8:1:2::9"), "2001:db8:1:2::/64"},
		{"garbage stops the walk", Keyer{TrustedProxies: trusted}, "10.0.0.1:1234", xff("198.51.100.9, garbage, 10.0.0.2"), "10.0.0.2"},
		{"unknown stops the walk", Keyer{TrustedProxies: trusted}, "10.0.0.1:1234", xff("198.51.100.9, unknown"), "10.0.0.1"},
		{"bad port is garbage", Keyer{TrustedProxies: trusted}, "10.0.0.1:1234", xff("198.51.100.9:99999999"), "10.0.0.1"},
		{"empty elements skipped", Keyer{TrustedProxies: trusted}, "10.0.0.1:1234", xff(",198.51.100.9,, 10.0.0.2,"), "198.51.100.9"},
		{"no header from trusted peer", Keyer{TrustedProxies: trusted}, "10.0.0.1:1234", nil, "10.0.0.1"},
		{"mapped XFF entry", Keyer{TrustedProxies: trusted}, "10.0.0.1:1234", xff("::ffff:198.51.100.9"), "198.51.100.9"},
		{"mapped peer", Keyer{}, "[::ffff:203.0.113.7]:1", nil, "203.0.113.7"},
		{"mapped trusted peer", Keyer{TrustedProxies: trusted}, "[::ffff:10.0.0.1]:1", xff("198.51.100.9"), "198.51.100.9"},
		{"trusted IPv6 proxy", Keyer{TrustedProxies: trusted}, "[2001:db8:ffff::1]:443", xff("198.51.100.9"), "198.51.100.9"},
		{"IPv6 grouped by /64", Keyer{}, "[2001:db8:1:2:a:b:c:d]:443", nil, "2001:db8:1:2::/64"},
		{"zone dropped", Keyer{}, "[fe80::1%eth0]:80", nil, "fe80::/64"},
		{"IPv4Prefix 24", Keyer{IPv4Prefix: 24}, "203.0.113.7:1", nil, "203.0.113.0/24"},
		{"IPv6Prefix 128", Keyer{IPv6Prefix: 128}, "[2001:db8::7]:1", nil, "2001:db8::7"},
		{"IPv6Prefix 48", Keyer{IPv6Prefix: 48}, "[2001:db8:1:2::7]:1", nil, "2001:db8:1::/48"},
		{"RemoteAddr without port", Keyer{}, "203.0.113.7", nil, "203.0.113.7"},
		{"Unix socket peer", Keyer{}, "@", nil, UnknownKey},
		{"empty RemoteAddr", Keyer{TrustedProxies: trusted}, "", xff("198.51.100.9"), UnknownKey},
		{"hostname RemoteAddr", Keyer{}, "localhost:80", nil, UnknownKey},

		// RFC 7239 Forwarded.
		{"Forwarded honoured", Keyer{TrustedProxies: trusted, Header: "Forwarded"}, "10.0.0.1:1", fwd("for=198.51.100.9"), "198.51.100.9"},
		{"Forwarded untrusted peer", Keyer{TrustedProxies: trusted, Header: "Forwarded"}, "203.0.113.7:1", fwd("for=198.51.100.9"), "203.0.113.7"},
		{"Forwarded quoted IPv6 port", Keyer{TrustedProxies: trusted, Header: "forwarded"}, "10.0.0.1:1", fwd(`for="[2001:db8:1:2::9]:4711"`), "2001:db8:1:2::/64"},
		{"Forwarded case and params", Keyer{TrustedProxies: trusted, Header: "Forwarded"}, "10.0.0.1:1", fwd("For=6.6.6.6;proto=https, by=10.0.0.1;FOR=198.51.100.9 ;host=x"), "198.51.100.9"},
		{"Forwarded right-most untrusted", Keyer{TrustedProxies: trusted, Header: "Forwarded"}, "10.0.0.1:1", fwd("for=6.6.6.6, for=198.51.100.9", `for="10.0.0.2:_port"`), "198.51.100.9"},
		{"Forwarded obfuscated stops", Keyer{TrustedProxies: trusted, Header: "Forwarded"}, "10.0.0.1:1", fwd("for=198.51.100.9, for=_hidden, for=10.0.0.2"), "10.0.0.2"},
		{"Forwarded unknown stops", Keyer{TrustedProxies: trusted, Header: "Forwarded"}, "10.0.0.1:1", fwd("for=198.51.100.9, for=unknown"), "10.0.0.1"},
		{"Forwarded element without for", Keyer{TrustedProxies: trusted, Header: "Forwarded"}, "10.0.0.1:1", fwd("for=198.51.100.9, proto=https"), "10.0.0.1"},
		{"Forwarded two for in one element", Keyer{TrustedProxies: trusted, Header: "Forwarded"}, "10.0.0.1:1", fwd("for=198.51.100.9;for=6.6.6.6"), "10.0.0.1"},
		{"Forwarded escapes", Keyer{TrustedProxies: trusted, Header: "Forwarded"}, "10.0.0.1:1", fwd(`for="\[2001:db8:1:2::9\]"`), "2001:db8:1:2::/64"},
		{"Forwarded quoted comma", Keyer{TrustedProxies: trusted, Header: "Forwarded"}, "10.0.0.1:1", fwd(`for=198.51.100.9;x="a,b"`), "198.51.100.9"},
		{"Forwarded unterminated quote", Keyer{TrustedProxies: trusted, Header: "Forwarded"}, "10.0.0.1:1", fwd(`for="6.6.6.6, for=198.51.100.9`), "10.0.0.1"},
		{"Forwarded bad line spoils only itself", Keyer{TrustedProxies: trusted, Header: "Forwarded"}, "10.0.0.1:1", fwd(`for="6.6.6.6`, "for=198.51.100.9"), "198.51.100.9"},
		{"Forwarded ignores XFF", Keyer{TrustedProxies: trusted, Header: "Forwarded"}, "10.0.0.1:1", xff("198.51.100.9"), "10.0.0.1"},
		{"XFF ignores Forwarded", Keyer{TrustedProxies: trusted}, "10.0.0.1:1", fwd("for=198.51.100.9"), "10.0.0.1"},
		{"X-Real-IP", Keyer{TrustedProxies: trusted, Header: "X-Real-IP"}, "10.0.0.1:1", http.Header{"X-Real-Ip": {"198.51.100.9"}}, "198.51.100.9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := tt.keyer.Key(newRequest(tt.remote, tt.header))
			if got != tt.want {
				t.Errorf("Key = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRemoteAddrAndForwardedFor(t *testing.T) {
	t.Parallel()
	t.Run("RemoteAddr ignores headers", func(t *testing.T) {
		t.Parallel()
		r := newRequest("127.0.0.1:5", http.Header{"X-Forwarded-For": {"1.2.3.4"}, "Forwarded": {"for=1.2.3.4"}})
		if got := RemoteAddr(r); got != "127.0.0.1" {
			t.Errorf("RemoteAddr = %q", got)
		}
	})
	t.Run("ForwardedFor", func(t *testing.T) {
		t.Parallel()
		trusted := mustTrusted(t, "127.0.0.1")
		key := ForwardedFor(trusted...)
		trusted[0] = netip.MustParsePrefix("0.0.0.0/0") // copied: no effect
		h := http.Header{"X-Forwarded-For": {"1.2.3.4"}}
		if got := key(newRequest("127.0.0.1:5", h)); got != "1.2.3.4" {
			t.Errorf("trusted peer: key = %q", got)
		}
		if got := key(newRequest("127.0.0.2:5", h)); got != "127.0.0.2" {
			t.Errorf("untrusted peer: key = %q", got)
		}
		if got := ForwardedFor()(newRequest("127.0.0.1:5", h)); got != "127.0.0.1" {
			t.Errorf("no trusted: key = %q", got)
		}
	})
	t.Run("ClientAddr error", func(t *testing.T) {
		t.Parallel()
		_, err := (&Keyer{}).ClientAddr(newRequest("@", nil))
		if err == nil || !strings.HasPrefix(err.Error(), "ratelimit: ") || !strings.Contains(err.Error(), `"@"`) {
			t.Errorf("err = %v", err)
		}
	})
}

func TestParseTrusted(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		want     []string
		wantErr  string
	}{
		{"mixed", "10.0.0.0/8, 127.0.0.1, ::1", []string{"10.0.0.0/8", "127.0.0.1/32", "::1/128"}, ""},
		{"spaces only", " 10.0.0.0/8\t192.168.0.0/16\n", []string{"10.0.0.0/8", "192.168.0.0/16"}, ""},
		{"masked", "10.1.2.3/8", []string{"10.0.0.0/8"}, ""},
		{"mapped", "::ffff:10.0.0.0/104, ::ffff:1.2.3.4", []string{"10.0.0.0/8", "1.2.3.4/32"}, ""},
		{"empty", " , ", nil, ""},
		{"bad prefix length", "10.0.0.0/8, 10.0.0.0/33", nil, `ratelimit: bad trusted proxy "10.0.0.0/33"`},
		{"hostname", "127.0.0.1, localhost", nil, `ratelimit: bad trusted proxy "localhost"`},
		{"zone", "fe80::1%eth0", nil, `ratelimit: bad trusted proxy "fe80::1%eth0"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseTrusted(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want prefix %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var gotS []string
			for _, p := range got {
				gotS = append(gotS, p.String())
			}
			if diff := cmp.Diff(tt.want, gotS); diff != "" {
				t.Errorf("ParseTrusted (-want +got):\n%s", diff)
			}
		})
	}
}

func TestKeyerValidate(t *testing.T) {
	t.Parallel()
	t.Run("zero is valid", func(t *testing.T) {
		t.Parallel()
		if err := (&Keyer{}).Validate(); err != nil {
			t.Error(err)
		}
	})
	t.Run("out of range", func(t *testing.T) {
		t.Parallel()
		k := &Keyer{IPv4Prefix: 33, IPv6Prefix: -1, TrustedProxies: []netip.Prefix{{}}}
		err := k.Validate()
		for _, want := range []string{"IPv4Prefix 33", "IPv6Prefix -1", "TrustedProxies[0]"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Validate() = %v, want mention of %q", err, want)
			}
		}
		defer func() {
			if recover() == nil {
				t.Error("Key did not panic")
			}
		}()
		k.Key(newRequest("1.2.3.4:5", nil))
	})
}
