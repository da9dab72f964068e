package operator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// AppsURL returns the Polkadot-JS Apps link that connects to wss.
func AppsURL(wss string) string {
	return "https://polkadot.js.org/apps/?rpc=" + url.QueryEscape(wss)
}

// publicHost returns the host (with :port unless 443) that the served
// certificate covers, for URLs people copy.
func (s *server) publicHost() string {
	port := portOf(s.addrs.TLS)
	host := s.certHost()
	if port == 443 {
		return bracket(host)
	}
	return net.JoinHostPort(host, fmt.Sprint(port))
}

func bracket(h string) string {
	if strings.Contains(h, ":") {
		return "[" + h + "]"
	}
	return h
}

// certHost picks a name the certificate covers: the first -domain; the
// -cert leaf's first name; for the self-signed pair the listen host if it
// covers it, else 127.0.0.1 or localhost for a local listener, else the
// first of -hosts.
func (s *server) certHost() string {
	c := s.cfg
	if len(c.Domains) > 0 {
		return c.Domains[0]
	}
	listenHost, _, _ := net.SplitHostPort(s.addrs.TLS)
	if s.certs.file != nil {
		cert, err := s.certs.file.GetCertificate(hello(""))
		info := leafInfo("file", cert, err)
		if slices.Contains(info.Names, listenHost) || len(info.Names) == 0 {
			return listenHost
		}
		return strings.TrimPrefix(info.Names[0], "*.")
	}
	hosts := c.Hosts
	ip := net.ParseIP(listenHost)
	local := ip == nil || ip.IsUnspecified() || ip.IsLoopback()
	switch {
	case slices.Contains(hosts, listenHost) && !ip.IsUnspecified():
		return listenHost
	case local && slices.Contains(hosts, "127.0.0.1"):
		return "127.0.0.1"
	case local && slices.Contains(hosts, "localhost"):
		return "localhost"
	case len(hosts) > 0:
		return hosts[0]
	}
	return listenHost
}

// banner logs what a person needs next: the URLs, the Apps link, a curl
// line, how to trust a self-signed certificate, and how to start a node
// when none answers.
func (s *server) banner() {
	c, host := s.cfg, s.publicHost()
	wss := "wss://" + host
	attrs := []any{"wss", wss, "https", "https://" + host, "upstream", strings.Join(c.Upstreams, ",")}
	if s.addrs.Admin != "" {
		attrs = append(attrs, "dashboard", "http://"+s.addrs.Admin+"/")
	}
	s.logger.Info(s.prog.name()+" serving", attrs...)
	s.logger.Info("open in Polkadot-JS Apps", "url", AppsURL(wss))
	trust := ""
	if s.certs.file == nil && len(c.Domains) == 0 {
		if s.certs.trustFile != "" {
			trust = "--cacert " + s.certs.trustFile + " "
		} else {
			trust = "-k "
		}
	}
	s.logger.Info("try it", "curl", fmt.Sprintf(`curl %s-H 'Content-Type: application/json' -d '{"id":1,"jsonrpc":"2.0","method":"system_health","params":[]}' https://%s/`, trust, host))
	if s.certs.file == nil && (len(c.Domains) == 0 || !s.certHostObtained()) {
		info := leafInfo("self-signed", s.certs.selfSigned.Certificate(), nil)
		how := "browsers: open https://" + host + "/ once and accept the warning (check the fingerprint)"
		if s.certs.trustFile != "" {
			how += "; or import " + s.certs.trustFile + " as a trusted authority; Node.js: NODE_EXTRA_CA_CERTS=" + s.certs.trustFile
		}
		s.logger.Info("trust the self-signed certificate", "sha256", info.SHA256, "names", strings.Join(info.Names, ","), "how", how)
	}
	if err := probeNodes(c.Upstreams); err != nil {
		s.logger.Warn("no node answers yet; start one and the gateway picks it up", "err", err,
			"try", "go run ./examples/testnode (a fake node, for a try)",
			"node", "a Substrate node with --rpc-port 9944 --rpc-methods safe")
	}
}

func (s *server) certHostObtained() bool {
	got := s.obtained.Load()
	return got != nil && (*got)[s.cfg.Domains[0]]
}

// probeNodes dials every upstream over TCP once, and returns nil if any
// answers, else the errors with their real cause (DNS, refused, timeout).
func probeNodes(upstreams []string) error {
	errs := make([]error, len(upstreams))
	var wg sync.WaitGroup
	for i, u := range upstreams {
		wg.Go(func() {
			pu, err := url.Parse(u)
			if err != nil {
				errs[i] = err
				return
			}
			port := pu.Port()
			if port == "" {
				port = map[string]string{"ws": "80", "wss": "443"}[pu.Scheme]
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			var d net.Dialer
			conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(pu.Hostname(), port))
			if err != nil {
				errs[i] = fmt.Errorf("%s: %s", u, dialCause(err))
				return
			}
			conn.Close()
		})
	}
	wg.Wait()
	msgs := make([]string, len(errs))
	for i, e := range errs {
		if e == nil {
			return nil
		}
		msgs[i] = e.Error()
	}
	return errors.New(strings.Join(msgs, "; "))
}

// dialCause names why a TCP dial failed.
func dialCause(err error) string {
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr):
		return "DNS: " + dnsErr.Name + ": " + dnsErr.Err
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return "timed out (a firewall, or the wrong address)"
	case strings.Contains(err.Error(), "connection refused"):
		return "connection refused (nothing listens on that port)"
	}
	return err.Error()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
