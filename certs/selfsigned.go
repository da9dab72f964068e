package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

const (
	// DefaultSelfSignedValidity is the lifetime of a self-signed certificate
	// when SelfSigned.Validity is zero.
	DefaultSelfSignedValidity = 365 * 24 * time.Hour
	// MaxSelfSignedValidity is the exclusive upper bound of
	// SelfSigned.Validity: Apple platforms reject TLS server certificates
	// valid for 825 days or more.
	MaxSelfSignedValidity = 825 * 24 * time.Hour

	selfSignedCertFile = "cert.pem"
	selfSignedKeyFile  = "key.pem"
)

// DefaultSelfSignedHosts are the names a [SelfSigned] certificate covers
// when Hosts is empty.
var DefaultSelfSignedHosts = []string{"localhost", "127.0.0.1", "::1"}

// SelfSigned is a [Source] that serves a self-signed ECDSA P-256
// certificate, for development and for clients that pin its fingerprint.
//
// With Dir set, the certificate and key persist as Dir/cert.pem and
// Dir/key.pem (mode 0600), so the fingerprint survives restarts. A persisted
// pair is reused unless it does not parse, covers other hosts, or is within
// RenewBefore of expiry. The same expiry check runs lazily on handshakes,
// so a long-running process regenerates in time without a background
// goroutine. Every new certificate's fingerprint is logged.
//
// The zero value serves localhost, 127.0.0.1 and ::1 from memory. Fields
// must not be changed after the first Init or GetCertificate.
type SelfSigned struct {
	// Hosts are the DNS names and IP literals the certificate covers.
	// If empty, DefaultSelfSignedHosts.
	Hosts []string
	// Validity is the certificate lifetime. If zero,
	// DefaultSelfSignedValidity. It must be below MaxSelfSignedValidity.
	Validity time.Duration
	// RenewBefore is how long before expiry a new certificate replaces the
	// old one. If zero, Validity/3. It must be below Validity.
	RenewBefore time.Duration
	// Dir is where the pair persists. If empty, it lives in memory only and
	// every process start makes a new fingerprint.
	Dir string
	// Logger receives the fingerprint of each new certificate. If nil,
	// slog.Default().
	Logger *slog.Logger

	now func() time.Time // tests; nil means time.Now

	mu      sync.Mutex
	inited  bool
	initErr error
	cert    *tls.Certificate
}

var _ Source = (*SelfSigned)(nil)

// NewSelfSigned returns an in-memory SelfSigned source for hosts (or
// DefaultSelfSignedHosts) with its certificate already made.
func NewSelfSigned(hosts ...string) (*SelfSigned, error) {
	s := &SelfSigned{Hosts: hosts}
	if err := s.Init(); err != nil {
		return nil, err
	}
	return s, nil
}

// Init validates the fields and loads or makes the certificate. It is
// called by the first GetCertificate; call it at startup to fail early and
// log the fingerprint. Calls after the first return the first result.
func (s *SelfSigned) Init() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.initLocked()
}

func (s *SelfSigned) initLocked() error {
	if s.inited {
		return s.initErr
	}
	s.inited = true
	if s.initErr = s.validate(); s.initErr != nil {
		return s.initErr
	}
	if s.Dir != "" {
		if cert, err := s.loadPersisted(); err == nil {
			s.cert = cert
			s.logCert("self-signed certificate loaded")
			return nil
		} else if !errors.Is(err, os.ErrNotExist) {
			s.logger().Warn("replacing persisted self-signed certificate", "dir", s.Dir, "err", err)
		}
	}
	s.initErr = s.renewLocked()
	return s.initErr
}

func (s *SelfSigned) validate() error {
	if s.Validity < 0 || s.Validity >= MaxSelfSignedValidity {
		return fmt.Errorf("certs: SelfSigned.Validity: %v is not in (0, %v)", s.Validity, MaxSelfSignedValidity)
	}
	if s.RenewBefore < 0 || s.RenewBefore >= s.validity() {
		return fmt.Errorf("certs: SelfSigned.RenewBefore: %v is not in [0, Validity %v)", s.RenewBefore, s.validity())
	}
	for _, h := range s.hosts() {
		if err := checkHost(h); err != nil {
			return fmt.Errorf("certs: SelfSigned.Hosts: %w", err)
		}
	}
	return nil
}

func checkHost(h string) error {
	if net.ParseIP(h) != nil {
		return nil
	}
	if h == "" || strings.ContainsAny(h, " /:@") || strings.Contains(h, "..") {
		return fmt.Errorf("%q is neither an IP literal nor a DNS name", h)
	}
	return nil
}

func (s *SelfSigned) hosts() []string {
	if len(s.Hosts) == 0 {
		return DefaultSelfSignedHosts
	}
	return s.Hosts
}

func (s *SelfSigned) validity() time.Duration {
	if s.Validity == 0 {
		return DefaultSelfSignedValidity
	}
	return s.Validity
}

func (s *SelfSigned) renewBefore() time.Duration {
	if s.RenewBefore == 0 {
		return s.validity() / 3
	}
	return s.RenewBefore
}

func (s *SelfSigned) nowTime() time.Time {
	if s.now != nil {
		return s.now()
	}
	return time.Now()
}

func (s *SelfSigned) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// GetCertificate returns the certificate, first replacing it if it is
// within RenewBefore of expiry. If replacing fails, the old one keeps
// serving until it expires and the error is logged.
func (s *SelfSigned) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.initLocked(); err != nil {
		return nil, err
	}
	if s.due(s.cert) {
		if err := s.renewLocked(); err != nil {
			s.logger().Error("self-signed certificate renewal failed", "err", err)
		}
	}
	return s.cert, nil
}

// Certificate returns the current certificate, or nil if Init failed.
func (s *SelfSigned) Certificate() *tls.Certificate {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.initLocked() != nil {
		return nil
	}
	return s.cert
}

// Fingerprint returns the SHA-256 fingerprint of the current certificate
// in [Fingerprint]'s form, or "" if Init failed.
func (s *SelfSigned) Fingerprint() string {
	if c := s.Certificate(); c != nil {
		return Fingerprint(c.Certificate[0])
	}
	return ""
}

func (s *SelfSigned) due(cert *tls.Certificate) bool {
	return !s.nowTime().Before(cert.Leaf.NotAfter.Add(-s.renewBefore()))
}

func (s *SelfSigned) logCert(msg string) {
	fp := Fingerprint(s.cert.Certificate[0])
	s.logger().Info(msg, "hosts", s.hosts(), "not_after", s.cert.Leaf.NotAfter,
		"fingerprint", fp, "fingerprint_hex", strings.ReplaceAll(fp, ":", ""), "dir", s.Dir)
}

// renewLocked makes a new certificate, persists it if Dir is set, and
// installs it.
func (s *SelfSigned) renewLocked() error {
	cert, certPEM, keyPEM, err := s.generate()
	if err != nil {
		return err
	}
	if s.Dir != "" {
		if err := writePair(s.Dir, certPEM, keyPEM); err != nil {
			return err
		}
	}
	s.cert = cert
	s.logCert("self-signed certificate created")
	return nil
}

func (s *SelfSigned) generate() (cert *tls.Certificate, certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("certs: generating key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("certs: generating serial: %w", err)
	}
	// Backdate a little for client clock skew; the span stays Validity.
	notBefore := s.nowTime().Add(-min(s.validity()/10, time.Hour))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"wssgate self-signed"}, CommonName: s.hosts()[0]},
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(s.validity()),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range s.hosts() {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("certs: creating certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("certs: encoding key: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	cert, err = ParsePEM(certPEM, keyPEM)
	return cert, certPEM, keyPEM, err
}

// loadPersisted reads Dir's pair and checks that it still fits.
func (s *SelfSigned) loadPersisted() (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(filepath.Join(s.Dir, selfSignedCertFile))
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(s.Dir, selfSignedKeyFile))
	if err != nil {
		return nil, err
	}
	cert, err := ParsePEM(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	if !sameHosts(cert.Leaf, s.hosts()) {
		return nil, errors.New("certs: persisted certificate covers other hosts")
	}
	if s.due(cert) {
		return nil, fmt.Errorf("certs: persisted certificate expires at %s, within RenewBefore", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return cert, nil
}

func sameHosts(leaf *x509.Certificate, hosts []string) bool {
	var have []string
	have = append(have, leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		have = append(have, ip.String())
	}
	want := make([]string, 0, len(hosts))
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			h = ip.String()
		}
		want = append(want, h)
	}
	slices.Sort(have)
	slices.Sort(want)
	return slices.Equal(have, want)
}

// writePair writes the key (0600) then the certificate (0644), each
// through a temporary file and a rename, so readers never see a torn file.
// A crash between the two leaves a mismatched pair, which the next Init
// replaces.
func writePair(dir string, certPEM, keyPEM []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("certs: SelfSigned.Dir: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, selfSignedKeyFile), keyPEM, 0o600); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, selfSignedCertFile), certPEM, 0o644)
}

func writeFileAtomic(name string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), ".tmp-"+filepath.Base(name)+"-*")
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("certs: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("certs: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	return nil
}
