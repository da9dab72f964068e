package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// DefaultACMECacheDir is where [ACME] keeps its account key and
// certificates when neither Cache nor CacheDir is set.
const DefaultACMECacheDir = "./acme-cache"

// ACME is a [Source] that obtains and renews certificates from an ACME CA
// such as Let's Encrypt, through golang.org/x/crypto/acme/autocert.
//
// It answers both challenge types: TLS-ALPN-01 on the TLS listener (serve
// with [TLSConfig], which offers "acme-tls/1" for this source) and HTTP-01
// through [ACME.HTTPHandler] on port 80. Certificates are issued only for
// Domains: a handshake for any other name fails at once, before any
// request to the CA, so scanners cannot burn the CA's rate limits.
// Using ACME accepts the CA's terms of service.
//
// ACME wraps its *autocert.Manager rather than exposing it: autocert makes
// no API stability promises, and a reachable Manager would let callers
// loosen the host policy this type guarantees. Callers who need the
// Manager itself can build one; it satisfies [Source] directly.
//
// Fields must not be changed after the first Init, GetCertificate or
// HTTPHandler call.
type ACME struct {
	// Domains lists the DNS names to obtain certificates for, in ASCII
	// (punycode) form. No wildcards: they need DNS-01, which autocert does
	// not do. Required.
	Domains []string
	// Email is the contact the CA uses for expiry and incident notices.
	// If empty, the account has no contact.
	Email string
	// Cache stores the account key and certificates. If nil,
	// autocert.DirCache(CacheDir). Without a persistent cache every restart
	// orders new certificates and soon hits the CA's rate limits.
	Cache autocert.Cache
	// CacheDir is the directory of the default Cache. If empty,
	// DefaultACMECacheDir. Ignored when Cache is set.
	CacheDir string
	// DirectoryURL is the CA's ACME directory. If empty, Let's Encrypt
	// production (autocert.DefaultACMEDirectory). Must be https.
	DirectoryURL string
	// RootCAs verifies the directory's TLS certificate, for private CAs such
	// as Pebble or step-ca. If nil, the system roots.
	RootCAs *x509.CertPool
	// RenewBefore is how long before expiry certificates are renewed. If
	// zero, autocert's default: a third of the lifetime, at most 30 days.
	RenewBefore time.Duration
	// HTTPSPort is the port HTTPHandler's redirect points at. If zero, 443,
	// which is left out of the URL.
	HTTPSPort int
	// Logger receives issuance failures with the domain and the CA's
	// problem document. If nil, slog.Default().
	Logger *slog.Logger

	// wrapTransport, if set by tests, wraps the ACME client's transport.
	wrapTransport func(http.RoundTripper) http.RoundTripper

	once    sync.Once
	initErr error
	m       *autocert.Manager
	allowed map[string]bool
}

var (
	_ Source       = (*ACME)(nil)
	_ NextProtoser = (*ACME)(nil)
	_ Source       = (*autocert.Manager)(nil)
)

// NewACME returns an ACME source for domains with the default cache and CA
// (Let's Encrypt production), validated and ready.
func NewACME(email string, domains ...string) (*ACME, error) {
	a := &ACME{Email: email, Domains: domains}
	if err := a.Init(); err != nil {
		return nil, err
	}
	return a, nil
}

// Init validates the fields and prepares the autocert manager. It does not
// contact the CA. GetCertificate and HTTPHandler call it; call it at
// startup to fail early. Calls after the first return the first result.
func (a *ACME) Init() error {
	a.once.Do(func() { a.initErr = a.init() })
	return a.initErr
}

func (a *ACME) init() error {
	if err := a.validate(); err != nil {
		return err
	}
	a.allowed = make(map[string]bool, len(a.Domains))
	for _, d := range a.Domains {
		a.allowed[normalizeName(d)] = true
	}
	cache := a.Cache
	if cache == nil {
		dir := a.CacheDir
		if dir == "" {
			dir = DefaultACMECacheDir
		}
		cache = autocert.DirCache(dir)
	}
	dirURL := a.DirectoryURL
	if dirURL == "" {
		dirURL = autocert.DefaultACMEDirectory
	}
	a.m = &autocert.Manager{
		Prompt:      autocert.AcceptTOS,
		Cache:       cache,
		HostPolicy:  autocert.HostWhitelist(a.Domains...),
		RenewBefore: a.RenewBefore,
		Email:       a.Email,
		Client: &acme.Client{
			DirectoryURL: dirURL,
			HTTPClient:   &http.Client{Transport: a.transport()},
			UserAgent:    "wssgate",
		},
	}
	return nil
}

func (a *ACME) transport() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if a.RootCAs != nil {
		t.TLSClientConfig = &tls.Config{RootCAs: a.RootCAs, MinVersion: tls.VersionTLS12}
	}
	var rt http.RoundTripper = &problemLogger{next: t, log: a.logger()}
	if a.wrapTransport != nil {
		rt = a.wrapTransport(rt)
	}
	return rt
}

func (a *ACME) validate() error {
	if len(a.Domains) == 0 {
		return errors.New("certs: ACME.Domains: empty; list the names to obtain certificates for")
	}
	for _, d := range a.Domains {
		if err := checkACMEDomain(d); err != nil {
			return fmt.Errorf("certs: ACME.Domains: %w", err)
		}
	}
	if a.Email != "" {
		if _, err := mail.ParseAddress(a.Email); err != nil {
			return fmt.Errorf("certs: ACME.Email: %q: %w", a.Email, err)
		}
	}
	if a.DirectoryURL != "" {
		u, err := url.Parse(a.DirectoryURL)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("certs: ACME.DirectoryURL: %q is not an https URL", a.DirectoryURL)
		}
	}
	if a.RenewBefore < 0 {
		return fmt.Errorf("certs: ACME.RenewBefore: %v is negative", a.RenewBefore)
	}
	if a.HTTPSPort < 0 || a.HTTPSPort > 65535 {
		return fmt.Errorf("certs: ACME.HTTPSPort: %d is not a port", a.HTTPSPort)
	}
	return nil
}

// checkACMEDomain accepts lowercase-insensitive ASCII DNS names with at
// least two labels, as autocert and public CAs require.
func checkACMEDomain(d string) error {
	n := normalizeName(d)
	switch {
	case strings.HasPrefix(n, "*."):
		return fmt.Errorf("%q: wildcards need DNS-01, which is not supported", d)
	case net.ParseIP(n) != nil:
		return fmt.Errorf("%q: IP addresses are not supported", d)
	case len(n) > 253 || !strings.Contains(n, "."):
		return fmt.Errorf("%q: not a fully qualified DNS name", d)
	}
	for _, label := range strings.Split(n, ".") {
		if !validLabel(label) {
			return fmt.Errorf("%q: invalid DNS label %q (use the punycode form for IDNs)", d, label)
		}
	}
	return nil
}

func validLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for _, c := range []byte(l) {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

func (a *ACME) logger() *slog.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return slog.Default()
}

// NextProtos returns ["acme-tls/1"] so that [TLSConfig] enables
// TLS-ALPN-01 challenges.
func (a *ACME) NextProtos() []string { return []string{ALPNProto} }

// GetCertificate returns the certificate for hello.ServerName, obtaining it
// from the CA on first use (the handshake waits, up to a few minutes). It
// also answers TLS-ALPN-01 challenge hellos. Names outside Domains fail
// without contacting the CA.
func (a *ACME) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if err := a.Init(); err != nil {
		return nil, err
	}
	name := normalizeName(hello.ServerName)
	if name == "" {
		return nil, errors.New("certs: ACME: client sent no server name (SNI); ACME certificates need a DNS name")
	}
	if !a.allowed[name] {
		return nil, fmt.Errorf("certs: ACME: server name %q is not in ACME.Domains", name)
	}
	cert, err := a.m.GetCertificate(hello)
	if err != nil {
		if isChallengeHello(hello) {
			a.logger().Warn("acme: no challenge certificate", "domain", name, "err", err)
		} else {
			a.logger().Error("acme: obtaining certificate failed", problemAttrs(name, err)...)
		}
		return nil, fmt.Errorf("certs: ACME: %s: %w", name, err)
	}
	return cert, nil
}

// problemAttrs returns log attributes for an autocert error, with the
// ACME problem when the error carries one.
func problemAttrs(domain string, err error) []any {
	attrs := []any{"domain", domain, "err", err}
	var ae *acme.Error
	if errors.As(err, &ae) {
		attrs = append(attrs, "problem", ae.ProblemType, "detail", ae.Detail)
	}
	var ze *acme.AuthorizationError
	if errors.As(err, &ze) {
		attrs = append(attrs, "problem", ze.Error())
	}
	return attrs
}

// HTTPHandler returns the handler for the plain HTTP listener (port 80): it
// answers HTTP-01 challenges for Domains and passes everything else to
// fallback. If fallback is nil, GET and HEAD requests for Domains are
// redirected (302) to https://host[:HTTPSPort]/path?query; other requests
// get 400.
//
// Unlike autocert's handler, it ignores the port in the Host header, so it
// also works behind port mappings and on test ports. Calling HTTPHandler
// enables HTTP-01, which is tried after TLS-ALPN-01. If the fields are
// invalid, the handler answers 500; call Init first to catch that.
func (a *ACME) HTTPHandler(fallback http.Handler) http.Handler {
	if err := a.Init(); err != nil {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		})
	}
	if fallback == nil {
		fallback = http.HandlerFunc(a.redirect)
	}
	h := a.m.HTTPHandler(fallback)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r2 := new(http.Request)
		*r2 = *r
		r2.Host = hostOnly(r.Host)
		h.ServeHTTP(w, r2)
	})
}

// hostOnly lowercases a Host header and drops its port and trailing dot.
func hostOnly(hostport string) string {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	return normalizeName(host)
}

func (a *ACME) redirect(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "use HTTPS", http.StatusBadRequest)
		return
	}
	host := hostOnly(r.Host)
	if !a.allowed[host] {
		http.Error(w, "unknown host", http.StatusBadRequest)
		return
	}
	if a.HTTPSPort != 0 && a.HTTPSPort != 443 {
		host = net.JoinHostPort(host, strconv.Itoa(a.HTTPSPort))
	}
	http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusFound)
}
