package operator

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/wssgate/wssgate/certs"
	"golang.org/x/crypto/acme/autocert"
)

// certSet is the gateway's certificate source, built from the flags: a
// -cert/-key pair, or a self-signed pair, with ACME names in front of it
// when -domain is set (raw-IP clients and other names get the self-signed
// pair).
type certSet struct {
	src        certs.Source
	file       *certs.File
	selfSigned *certs.SelfSigned
	acme       *certs.ACME
	problems   *problemRecorder
	domains    []string
	trustFile  string // PEM a client trusts for the self-signed pair
}

// newCertSet builds the source. A bad -cert or -key fails here with one
// line naming the flag.
func newCertSet(c *Config, logger *slog.Logger, cacheHook func(*Config) (autocert.Cache, error)) (*certSet, error) {
	s := &certSet{domains: c.Domains}
	if c.CertFile != "" {
		// Check the pair first, so a bad one is one error line rather than
		// the reload failure log of certs.File.
		if _, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile); err != nil {
			return nil, fmt.Errorf("-cert %s / -key %s: %w", c.CertFile, c.KeyFile, unwrapPath(err))
		}
		s.file = &certs.File{CertFile: c.CertFile, KeyFile: c.KeyFile, Logger: logger}
		if err := s.file.Reload(); err != nil {
			return nil, fmt.Errorf("-cert %s: %w", c.CertFile, err)
		}
		s.src = s.file
		return s, nil
	}
	if len(c.Domains) > 0 { // first: its errors are about flags, not files
		a, rec, err := newACME(c, logger, cacheHook)
		if err != nil {
			return nil, err
		}
		s.acme, s.problems = a, rec
	}
	s.selfSigned = &certs.SelfSigned{Hosts: c.Hosts, Dir: c.SelfSignedDir, Logger: logger}
	if err := s.selfSigned.Init(); err != nil {
		return nil, fmt.Errorf("-hosts/-self-signed-dir: %w", err)
	}
	if c.SelfSignedDir != "" {
		s.trustFile = c.SelfSignedDir + "/cert.pem"
	}
	s.src = s.selfSigned
	if len(c.Domains) == 0 {
		return s, nil
	}
	names := make(map[string]certs.Source, len(c.Domains))
	for _, d := range c.Domains {
		names[d] = s.acme
	}
	s.src = &certs.SNI{Names: names, Default: s.selfSigned}
	return s, nil
}

// unwrapPath drops the *os.PathError op ("open") for a shorter line.
func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}

// newACME maps the ACME flags to certs.ACME, naming flags in errors.
func newACME(c *Config, logger *slog.Logger, cacheHook func(*Config) (autocert.Cache, error)) (*certs.ACME, *problemRecorder, error) {
	rec := newProblemRecorder(logger.Handler())
	a := &certs.ACME{
		Domains:      c.Domains,
		Email:        c.Email,
		CacheDir:     c.ACMECache,
		DirectoryURL: c.ACMEDirectory,
		HTTPSPort:    portOf(c.Listen),
		Logger:       slog.New(rec),
	}
	if cacheHook != nil {
		cache, err := cacheHook(c)
		if err != nil {
			return nil, nil, fmt.Errorf("ACME cache: %w", err)
		}
		a.Cache = cache
	}
	if c.ACMECA != "" {
		pem, err := os.ReadFile(c.ACMECA)
		if err != nil {
			return nil, nil, fmt.Errorf("-acme-ca: %w", unwrapPath(err))
		}
		a.RootCAs = x509.NewCertPool()
		if !a.RootCAs.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("-acme-ca %s: no PEM certificate in it", c.ACMECA)
		}
	}
	if err := a.Init(); err != nil {
		return nil, nil, fmt.Errorf("%s", flagNames(err.Error()))
	}
	return a, rec, nil
}

// checkDomain rejects what the ACME source would, with the flag's words.
func checkDomain(d string) error {
	if net.ParseIP(d) != nil {
		return fmt.Errorf("%q is an IP address; Let's Encrypt certifies DNS names (raw-IP clients get the self-signed pair of -hosts)", d)
	}
	if strings.HasPrefix(d, "*.") {
		return fmt.Errorf("%q: wildcards need DNS-01, which is not supported; list each name", d)
	}
	return nil
}

// flagNames rewrites certs' field names into the flags that set them.
func flagNames(s string) string {
	return strings.NewReplacer(
		"certs: ACME.Domains", "-domain",
		"certs: ACME.Email", "-email",
		"certs: ACME.DirectoryURL", "-acme-directory",
		"certs: ACME.HTTPSPort", "-listen",
	).Replace(s)
}

// portOf returns the port of a listen address, 0 if none.
func portOf(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}

// reload re-reads -cert/-key (SIGHUP). Self-signed and ACME pairs renew by
// themselves.
func (s *certSet) reload() error {
	if s.file == nil {
		return nil
	}
	return s.file.Reload()
}

// CertInfo describes one certificate the gateway serves.
type CertInfo struct {
	Source   string    `json:"source"` // "file", "self-signed", "acme"
	Names    []string  `json:"names"`
	Issuer   string    `json:"issuer"`
	NotAfter time.Time `json:"notAfter"`
	SHA256   string    `json:"sha256,omitempty"`
	Error    string    `json:"error,omitempty"`
}

// hello is a ClientHelloInfo for looking up a served certificate; it
// offers ECDSA so that ACME returns its default (P-256) certificate.
func hello(name string) *tls.ClientHelloInfo {
	return &tls.ClientHelloInfo{ServerName: name,
		SignatureSchemes: []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256, tls.PSSWithSHA256},
		SupportedCurves:  []tls.CurveID{tls.X25519, tls.CurveP256},
		CipherSuites:     []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}}
}

// info lists the certificates served. ACME ones are looked up in the cache
// only after they were obtained (obtained lists those names).
func (s *certSet) info(obtained map[string]bool) []CertInfo {
	var out []CertInfo
	if s.file != nil {
		c, err := s.file.GetCertificate(hello(""))
		out = append(out, leafInfo("file", c, err))
	}
	if s.selfSigned != nil {
		out = append(out, leafInfo("self-signed", s.selfSigned.Certificate(), nil))
	}
	for _, d := range s.domains {
		if !obtained[d] {
			out = append(out, CertInfo{Source: "acme", Names: []string{d}, Error: "not obtained"})
			continue
		}
		c, err := s.acme.GetCertificate(hello(d))
		out = append(out, leafInfo("acme", c, err))
	}
	return out
}

func leafInfo(source string, c *tls.Certificate, err error) CertInfo {
	if err != nil || c == nil || len(c.Certificate) == 0 {
		msg := "no certificate"
		if err != nil {
			msg = err.Error()
		}
		return CertInfo{Source: source, Error: msg}
	}
	leaf := c.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return CertInfo{Source: source, Error: err.Error()}
		}
	}
	names := append([]string(nil), leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	return CertInfo{Source: source, Names: names, Issuer: leaf.Issuer.CommonName, NotAfter: leaf.NotAfter,
		SHA256: certs.Fingerprint(c.Certificate[0])}
}
