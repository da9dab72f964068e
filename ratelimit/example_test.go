package ratelimit_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"time"

	"github.com/wssgate/wssgate/ratelimit"
	"golang.org/x/time/rate"
)

func ExampleHandler() {
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello\n")
	})
	// Two requests at once, then one an hour, per client address.
	limits := &ratelimit.Buckets{Rate: rate.Every(time.Hour), Burst: 2}
	ts := httptest.NewServer(ratelimit.Handler(hello, ratelimit.RemoteAddr, limits))
	defer ts.Close()

	for range 3 {
		resp, err := ts.Client().Get(ts.URL)
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%d Retry-After set: %t %s", resp.StatusCode, resp.Header.Get("Retry-After") != "", body)
	}
	// Output:
	// 200 Retry-After set: false hello
	// 200 Retry-After set: false hello
	// 429 Retry-After set: true too many requests: rate limit exceeded
}

func ExampleKeyer() {
	trusted, err := ratelimit.ParseTrusted("10.0.0.0/8")
	if err != nil {
		fmt.Println(err)
		return
	}
	keyer := &ratelimit.Keyer{TrustedProxies: trusted}

	show := func(remote, xff string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		fmt.Printf("%-22s %-28q -> %s\n", remote, xff, keyer.Key(r))
	}
	show("203.0.113.7:5555", "")
	show("203.0.113.7:5555", "1.2.3.4")                      // untrusted peer: header ignored
	show("10.0.0.2:5555", "1.2.3.4, 198.51.100.9, 10.0.0.3") // right-most untrusted hop
	show("[2001:db8:1:2::99]:443", "")                       // IPv6 grouped by /64
	show("@", "")                                            // Unix socket: no address
	// Output:
	// 203.0.113.7:5555       ""                           -> 203.0.113.7
	// 203.0.113.7:5555       "1.2.3.4"                    -> 203.0.113.7
	// 10.0.0.2:5555          "1.2.3.4, 198.51.100.9, 10.0.0.3" -> 198.51.100.9
	// [2001:db8:1:2::99]:443 ""                           -> 2001:db8:1:2::/64
	// @                      ""                           -> unknown
}

func ExampleKeyer_forwarded() {
	keyer := &ratelimit.Keyer{
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		Header:         "Forwarded",
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "127.0.0.1:40000"
	r.Header.Set("Forwarded", `for="[2001:db8:cafe::17]:4711";proto=https`)
	fmt.Println(keyer.Key(r))
	// Output: 2001:db8:cafe::/64
}

func ExampleParseTrusted() {
	trusted, err := ratelimit.ParseTrusted("10.0.0.0/8, 127.0.0.1, ::1")
	fmt.Println(trusted, err)
	_, err = ratelimit.ParseTrusted("10.0.0.0/8, localhost")
	fmt.Println(strings.SplitN(err.Error(), ":", 2)[0]+":", strings.Contains(err.Error(), `"localhost"`))
	// Output:
	// [10.0.0.0/8 127.0.0.1/32 ::1/128] <nil>
	// ratelimit: true
}

func ExampleBuckets() {
	b := ratelimit.NewBuckets(2, 5) // 2 events a second per key, bursts of 5
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	allowed := 0
	var retry time.Duration
	for range 30 {
		ok, d := b.AllowAt("203.0.113.7", now)
		if ok {
			allowed++
		} else {
			retry = d
		}
	}
	fmt.Println("allowed:", allowed, "retry after:", retry)
	ok, _ := b.AllowAt("203.0.113.7", now.Add(retry))
	fmt.Println("after waiting:", ok, "keys:", b.Len())
	// Output:
	// allowed: 5 retry after: 500ms
	// after waiting: true keys: 1
}

func ExampleConns() {
	c := &ratelimit.Conns{PerKey: 2, Total: 100}
	release1, _ := c.Acquire("203.0.113.7")
	release2, _ := c.Acquire("203.0.113.7")
	_, err := c.Acquire("203.0.113.7")
	fmt.Println(errors.Is(err, ratelimit.ErrTooManyForKey), c.Count("203.0.113.7"))
	release1()
	release1() // no-op
	defer release2()
	_, err = c.Acquire("203.0.113.7")
	fmt.Println(err, c.Count("203.0.113.7"))
	// Output:
	// true 2
	// <nil> 2
}
