package pmdeflate_test

import (
	"bytes"
	"fmt"

	"github.com/wssgate/wssgate/internal/pmdeflate"
)

// A server answers what Chromium and Node's ws offer.
func ExampleNegotiate() {
	offer := []string{"permessage-deflate; client_max_window_bits"}
	p, ok := pmdeflate.Negotiate(offer, nil)
	fmt.Println(ok, p.Header())

	p, _ = pmdeflate.Negotiate(offer, &pmdeflate.Options{ClientContextTakeover: true, ClientMaxWindowBits: 10})
	fmt.Println(p.Header())

	_, ok = pmdeflate.Negotiate([]string{"permessage-deflate; server_max_window_bits=16"}, nil)
	fmt.Println(ok)
	// Output:
	// true permessage-deflate; server_no_context_takeover; client_no_context_takeover
	// permessage-deflate; server_no_context_takeover; client_max_window_bits=10
	// false
}

// One message each way: what the server sends, and what it reads with a
// read limit.
func ExampleDeflater() {
	p, _ := pmdeflate.Negotiate([]string{"permessage-deflate"}, nil)
	msg := bytes.Repeat([]byte(`{"jsonrpc":"2.0","id":1,"result":"0x00"}`), 100)
	if !p.Compress(len(msg)) {
		return
	}
	d := pmdeflate.NewDeflater(p)
	z, err := d.Append(nil, msg)
	if err != nil {
		panic(err)
	}
	fmt.Println(len(msg), "bytes sent as", len(z))

	back, err := pmdeflate.NewInflater(p).Inflate(nil, z, 1000)
	fmt.Println(len(back), err)
	// Output:
	// 4000 bytes sent as 86
	// 0 pmdeflate: decompressed message over the read limit
}
