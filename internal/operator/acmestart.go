package operator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// problemRecorder is the ACME source's log handler. It remembers the CA's
// last problem per domain so that the startup outcome can name it in one
// line, and holds the source's own lines back while the gateway starts
// (they would say the same thing several times); after that, and with -v,
// they pass through.
type problemRecorder struct {
	next  slog.Handler
	quiet *atomic.Bool
	mu    *sync.Mutex
	last  map[string]string // domain ("" when unknown) -> "problem: detail"
	seen  map[string]bool   // domain and problem pairs already reported
}

// maxSeenProblems bounds problemRecorder.seen.
const maxSeenProblems = 256

func newProblemRecorder(next slog.Handler) *problemRecorder {
	r := &problemRecorder{next: next, quiet: new(atomic.Bool), mu: new(sync.Mutex), last: map[string]string{}, seen: map[string]bool{}}
	r.quiet.Store(true)
	return r
}

func (r *problemRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *problemRecorder) Handle(ctx context.Context, rec slog.Record) error {
	var domain, problem, detail, challenge string
	rec.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "domain":
			domain = a.Value.String()
		case "problem":
			problem = a.Value.String()
		case "detail":
			detail = a.Value.String()
		case "challenge":
			challenge = a.Value.String()
		}
		return true
	})
	if problem != "" || detail != "" {
		s := strings.TrimPrefix(problem, "urn:ietf:params:acme:error:")
		if challenge != "" {
			s = challenge + " " + s
		}
		if detail != "" {
			s += ": " + detail
		}
		r.mu.Lock()
		repeat := r.seen[domain+"\x00"+s]
		if len(r.seen) >= maxSeenProblems {
			clear(r.seen)
		}
		r.seen[domain+"\x00"+s] = true
		r.last[domain] = s
		r.last[""] = s
		r.mu.Unlock()
		if repeat {
			// autocert cleans up a failed order after reporting it, and the
			// CA's answers repeat reasons already reported.
			rec.Level = slog.LevelDebug
		}
	}
	if r.quiet.Load() {
		rec.Level = slog.LevelDebug
	}
	if !r.next.Enabled(ctx, rec.Level) {
		return nil
	}
	return r.next.Handle(ctx, rec)
}

func (r *problemRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	c := *r
	c.next = r.next.WithAttrs(as)
	return &c
}

func (r *problemRecorder) WithGroup(name string) slog.Handler {
	c := *r
	c.next = r.next.WithGroup(name)
	return &c
}

// lastProblem returns what the CA last said about domain.
func (r *problemRecorder) lastProblem(domain string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.last[domain]; s != "" {
		return s
	}
	return r.last[""]
}

// obtain gets a certificate for each -domain before the gateway says it
// serves, and logs the outcome for each in one line: the expiry, or the
// CA's reason and what to check. It returns the names obtained.
func (s *certSet) obtain(ctx context.Context, c *Config, logger *slog.Logger) map[string]bool {
	defer s.problems.quiet.Store(false)
	got := map[string]bool{}
	for _, d := range s.domains {
		start := time.Now()
		type result struct {
			info CertInfo
			err  error
		}
		done := make(chan result, 1)
		go func() { // autocert bounds an order at 5 minutes
			cert, err := s.acme.GetCertificate(hello(d))
			done <- result{leafInfo("acme", cert, err), err}
		}()
		var r result
		select {
		case r = <-done:
		case <-ctx.Done():
			return got
		}
		if r.err == nil && r.info.Error == "" {
			got[d] = true
			logger.Info("certificate obtained", "domain", d, "issuer", r.info.Issuer,
				"not_after", r.info.NotAfter.UTC().Format(time.RFC3339), "took", time.Since(start).Round(time.Millisecond))
			continue
		}
		reason := s.problems.lastProblem(d)
		if reason == "" {
			reason = strings.TrimPrefix(r.err.Error(), "certs: ACME: ")
		}
		logger.Error("certificate not obtained; clients using the name get a TLS error until it is",
			"domain", d, "reason", reason, "check", acmeHint(d, reason, c))
	}
	return got
}

// acmeHint says what to check for an ACME failure.
func acmeHint(domain, reason string, c *Config) string {
	low := strings.ToLower(reason)
	switch {
	case strings.Contains(low, "ratelimit") || strings.Contains(low, "rate limit") || strings.Contains(low, "too many"):
		return "the CA's rate limit: wait for the time it names, keep -acme-cache between restarts, and try the staging CA (-acme-directory https://acme-staging-v02.api.letsencrypt.org/directory)"
	case strings.Contains(low, "dns") || strings.Contains(low, "nxdomain") || strings.Contains(low, "no such host"):
		return fmt.Sprintf("DNS: %s needs an A/AAAA record for this machine's public address (%s)", domain, resolved(domain))
	case strings.Contains(low, "connection") || strings.Contains(low, "timeout") || strings.Contains(low, "refused") || strings.Contains(low, "no viable challenge"):
		return fmt.Sprintf("reachability: the CA must reach this machine as %s on port 443 (TLS-ALPN-01, -listen %s) or 80 (HTTP-01, -http-listen %s); check firewalls and port forwarding, and that %s (%s) is this machine",
			domain, c.Listen, c.HTTPListen, domain, resolved(domain))
	case strings.Contains(low, "unauthorized") || strings.Contains(low, "incorrect") || strings.Contains(low, "tls"):
		return fmt.Sprintf("the CA reached a server that did not answer the challenge: does %s (%s) point to this machine, and does nothing else hold ports 80/443?", domain, resolved(domain))
	case strings.Contains(low, "x509") || strings.Contains(low, "directory"):
		return "the CA directory is unreachable or untrusted: check -acme-directory, -acme-ca and outbound HTTPS"
	}
	return fmt.Sprintf("that %s (%s) points to this machine, ports 80 and 443 are reachable from the internet, and the CA's rate limits", domain, resolved(domain))
}

// resolved describes what name resolves to here, for hints.
func resolved(name string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupHost(ctx, name)
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return "it does not resolve here"
	case err != nil:
		return "lookup failed here: " + err.Error()
	}
	return "resolves here to " + strings.Join(addrs, ", ")
}
