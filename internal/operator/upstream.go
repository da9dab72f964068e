package operator

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// checkUpstream validates one -upstream value and returns it as a ws:// or
// wss:// URL. Mistakes get a suggestion: "127.0.0.1:9944" -> "did you mean
// ws://127.0.0.1:9944?".
func checkUpstream(s string) (string, error) {
	if !strings.Contains(s, "://") {
		guess := "ws://" + s
		if u, err := url.Parse(guess); err == nil && u.Host != "" && checkPort(u.Port()) == nil {
			return "", fmt.Errorf("%q has no scheme; did you mean %s?", s, guess)
		}
		return "", fmt.Errorf("%q is not a URL; use the node's RPC address, such as ws://127.0.0.1:9944", s)
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%q: %v", s, err)
	}
	switch u.Scheme {
	case "ws", "wss":
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("%q: the scheme must be ws:// or wss:// (did you mean ws://%s?)", s, u.Host+u.Path)
	}
	if u.Hostname() == "" {
		return "", fmt.Errorf("%q has no host; such as ws://127.0.0.1:9944", s)
	}
	if u.User != nil || u.Fragment != "" {
		return "", fmt.Errorf("%q: user info and fragments are not supported", s)
	}
	if u.Port() != "" || strings.HasSuffix(u.Host, ":") {
		if err := checkPort(u.Port()); err != nil {
			return "", fmt.Errorf("%q: %v (a Substrate node's RPC port is 9944 by default)", s, err)
		}
	}
	return u.String(), nil
}

// checkPort accepts 1-65535.
func checkPort(p string) error {
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not in 1-65535", p)
	}
	return nil
}

// checkListen validates a listen address (empty is allowed: disabled).
// Port 0 is allowed: the system picks one, and the banner shows it.
func checkListen(addr string) error {
	if addr == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port (such as :8443 or 127.0.0.1:8443)", addr)
	}
	if port == "0" {
		return nil
	}
	return checkPort(port)
}
