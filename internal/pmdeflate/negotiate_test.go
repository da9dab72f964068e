package pmdeflate

import (
	"compress/flate"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	bothNoTakeover = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
	clientTakeover = "permessage-deflate; server_no_context_takeover"
)

// TestNegotiate is the negotiation matrix: what browsers and Node's ws
// send, each parameter with the server's options, and invalid offers.
func TestNegotiate(t *testing.T) {
	t.Parallel()
	takeover := &Options{ClientContextTakeover: true}
	both := &Options{ClientContextTakeover: true, ServerContextTakeover: true}
	tests := []struct {
		name    string
		values  []string
		opts    *Options
		want    string // the response; "" for no compression
		level   int    // if not 0, the level the server compresses at
		bitsWin int    // the client window an Inflater keeps (0: none)
	}{
		{name: "no header", values: nil},
		{name: "empty header", values: []string{""}},
		{name: "other extension", values: []string{"x-webkit-deflate-frame"}},
		{name: "firefox and safari", values: []string{"permessage-deflate"}, want: bothNoTakeover, level: DefaultLevel},
		{name: "chromium and node ws", values: []string{"permessage-deflate; client_max_window_bits"}, want: bothNoTakeover},
		{name: "chromium with client takeover", values: []string{"permessage-deflate; client_max_window_bits"}, opts: takeover,
			want: clientTakeover + "; client_max_window_bits=15", bitsWin: 15},
		{name: "client window asked smaller", values: []string{"permessage-deflate; client_max_window_bits"},
			opts: &Options{ClientContextTakeover: true, ClientMaxWindowBits: 10}, want: clientTakeover + "; client_max_window_bits=10", bitsWin: 10},
		{name: "client window hint kept", values: []string{"permessage-deflate; client_max_window_bits=12"}, opts: takeover,
			want: clientTakeover + "; client_max_window_bits=12", bitsWin: 12},
		{name: "client window hint over ours", values: []string{"permessage-deflate; client_max_window_bits=14"},
			opts: &Options{ClientContextTakeover: true, ClientMaxWindowBits: 9}, want: clientTakeover + "; client_max_window_bits=9", bitsWin: 9},
		{name: "client window without support", values: []string{"permessage-deflate"}, opts: takeover, want: clientTakeover, bitsWin: 15},
		{name: "client window hint ignored without takeover", values: []string{"permessage-deflate; client_max_window_bits=9"}, want: bothNoTakeover},
		{name: "client_no_context_takeover offered", values: []string{"permessage-deflate; client_no_context_takeover; client_max_window_bits"},
			opts: takeover, want: bothNoTakeover},
		{name: "server_no_context_takeover offered", values: []string{"permessage-deflate; server_no_context_takeover"}, opts: both,
			want: "permessage-deflate; server_no_context_takeover", bitsWin: 15},
		{name: "server takeover", values: []string{"permessage-deflate"}, opts: both, want: "permessage-deflate", bitsWin: 15},
		{name: "server window 15", values: []string{"permessage-deflate; server_max_window_bits=15"},
			want: bothNoTakeover + "; server_max_window_bits=15", level: DefaultLevel},
		{name: "server window 10 is Huffman only", values: []string{"permessage-deflate; server_max_window_bits=10"},
			opts: &Options{Level: 9}, want: bothNoTakeover + "; server_max_window_bits=10", level: flate.HuffmanOnly},
		{name: "server window 8", values: []string{"permessage-deflate; server_max_window_bits=8"},
			want: bothNoTakeover + "; server_max_window_bits=8", level: flate.HuffmanOnly},
		{name: "quoted value", values: []string{`permessage-deflate; server_max_window_bits="15"`},
			want: bothNoTakeover + "; server_max_window_bits=15"},
		{name: "escaped quoted value", values: []string{`permessage-deflate; client_max_window_bits="1\2"`}, opts: takeover,
			want: clientTakeover + "; client_max_window_bits=12", bitsWin: 12},
		{name: "level option", values: []string{"permessage-deflate"}, opts: &Options{Level: 6}, want: bothNoTakeover, level: 6},
		{name: "case of names", values: []string{"Permessage-Deflate; Client_Max_Window_Bits"}, want: bothNoTakeover},
		{name: "spaces and tabs", values: []string{" permessage-deflate \t;\tclient_max_window_bits = 10 "}, opts: takeover,
			want: clientTakeover + "; client_max_window_bits=10", bitsWin: 10},
		{name: "empty list elements", values: []string{",, permessage-deflate ,"}, want: bothNoTakeover},
		{name: "second field", values: []string{"x-foo; a=1", "permessage-deflate"}, want: bothNoTakeover},
		{name: "after another extension", values: []string{`x-foo; a="b,c;d", permessage-deflate`}, want: bothNoTakeover},
		{name: "first acceptable of several", values: []string{"permessage-deflate; server_max_window_bits=10; client_max_window_bits, permessage-deflate; client_max_window_bits"},
			want: bothNoTakeover + "; server_max_window_bits=10", level: flate.HuffmanOnly},

		// Offers RFC 7692 section 5 has the server decline; the next one is taken.
		{name: "unknown parameter", values: []string{"permessage-deflate; foo"}},
		{name: "unknown then plain", values: []string{"permessage-deflate; foo=1, permessage-deflate"}, want: bothNoTakeover},
		{name: "repeated parameter", values: []string{"permessage-deflate; client_no_context_takeover; client_no_context_takeover"}},
		{name: "repeated window", values: []string{"permessage-deflate; client_max_window_bits; client_max_window_bits=10"}},
		{name: "value on server_no_context_takeover", values: []string{"permessage-deflate; server_no_context_takeover=1"}},
		{name: "value on client_no_context_takeover", values: []string{`permessage-deflate; client_no_context_takeover=""`}},
		{name: "server window without value", values: []string{"permessage-deflate; server_max_window_bits"}},
		{name: "server window 7", values: []string{"permessage-deflate; server_max_window_bits=7"}},
		{name: "server window 16", values: []string{"permessage-deflate; server_max_window_bits=16"}},
		{name: "server window leading zero", values: []string{"permessage-deflate; server_max_window_bits=09"}},
		{name: "server window not a number", values: []string{"permessage-deflate; server_max_window_bits=ten"}},
		{name: "client window 0", values: []string{"permessage-deflate; client_max_window_bits=0"}},
		{name: "client window 16", values: []string{"permessage-deflate; client_max_window_bits=16"}},
		{name: "client window quoted space", values: []string{`permessage-deflate; client_max_window_bits="1 0"`}},
		{name: "client window signed", values: []string{"permessage-deflate; client_max_window_bits=+9"}},
		{name: "invalid then valid", values: []string{"permessage-deflate; server_max_window_bits=16", "permessage-deflate"}, want: bothNoTakeover},

		// Headers that are not extension lists: nothing is negotiated.
		{name: "trailing semicolon", values: []string{"permessage-deflate;"}},
		{name: "missing value", values: []string{"permessage-deflate; client_max_window_bits="}},
		{name: "unterminated quote", values: []string{`permessage-deflate; x="abc`}},
		{name: "two names", values: []string{"permessage-deflate x"}},
		{name: "non-ASCII", values: []string{"permessage-deflate; client_max_window_bits=\u00b9\u2075"}},
		{name: "broken field spoils the list", values: []string{"permessage-deflate", "x;;"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, ok := Negotiate(tt.values, tt.opts)
			got := ""
			if ok {
				got = p.Header()
			}
			if got != tt.want {
				t.Fatalf("Negotiate(%q) = %q, want %q", tt.values, got, tt.want)
			}
			if !ok {
				return
			}
			if tt.level != 0 && p.Level() != tt.level {
				t.Errorf("level %d, want %d", p.Level(), tt.level)
			}
			want := 0
			if tt.bitsWin != 0 {
				want = 1 << tt.bitsWin
			}
			if got := NewInflater(p).size; got != want {
				t.Errorf("inflater keeps a %d-byte window, want %d bits", got, tt.bitsWin)
			}
			// The response is itself a valid list that reads back as p.
			back, err := ParseOffers([]string{got})
			if err != nil || len(back) != 1 || back[0].Err != nil {
				t.Fatalf("response %q reads back as %+v, %v", got, back, err)
			}
		})
	}
}

func TestParseOffers(t *testing.T) {
	t.Parallel()
	got, err := ParseOffers([]string{"permessage-deflate; client_max_window_bits; server_max_window_bits=12, x-other, permessage-deflate; client_max_window_bits=9; server_no_context_takeover; client_no_context_takeover, permessage-deflate; bogus"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[2].Err == nil || !strings.Contains(got[2].Err.Error(), `unknown parameter "bogus"`) {
		t.Fatalf("offers %+v", got)
	}
	got[2].Err = nil
	want := []Offer{
		{ClientMaxWindowBits: -1, ServerMaxWindowBits: 12},
		{ClientMaxWindowBits: 9, ServerNoContextTakeover: true, ClientNoContextTakeover: true},
		{},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("offers (-want +got):\n%s", d)
	}
	if _, err := ParseOffers([]string{"permessage-deflate; =1"}); !errors.Is(err, errSyntax) {
		t.Errorf("a parameter with no name: %v", err)
	}
}

func TestParamsCompress(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		threshold, n int
		want         bool
	}{
		{0, DefaultThreshold - 1, false}, {0, DefaultThreshold, true},
		{100, 99, false}, {100, 100, true}, {-1, 0, true},
	} {
		p, _ := Negotiate([]string{ExtensionName}, &Options{Threshold: tt.threshold})
		if got := p.Compress(tt.n); got != tt.want {
			t.Errorf("threshold %d: Compress(%d) = %v", tt.threshold, tt.n, got)
		}
	}
}

func TestOptionsCheck(t *testing.T) {
	t.Parallel()
	good := []Options{{}, {Level: 1}, {Level: 9}, {Level: flate.HuffmanOnly}, {ClientMaxWindowBits: 8}, {ClientMaxWindowBits: 15}}
	for _, o := range good {
		if err := o.Check(); err != nil {
			t.Errorf("%+v: %v", o, err)
		}
	}
	bad := map[string]Options{"Level": {Level: 10}, "Level ": {Level: -1}, "ClientMaxWindowBits": {ClientMaxWindowBits: 7}, "ClientMaxWindowBits ": {ClientMaxWindowBits: 16}}
	for field, o := range bad {
		if err := o.Check(); err == nil || !strings.Contains(err.Error(), strings.TrimSpace(field)) {
			t.Errorf("%+v: %v, want an error naming %s", o, err, field)
		}
	}
}
