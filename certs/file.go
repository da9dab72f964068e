package certs

import (
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultPollInterval is how often a [File] looks at its files when
// PollInterval is zero.
const DefaultPollInterval = 10 * time.Second

// File is a [Source] that serves a PEM certificate chain and key read from
// disk, and picks up renewed files without dropping connections.
//
// It reloads in two ways: lazily, when a handshake finds that at least
// PollInterval has passed since the last look and the file contents
// changed; and on [File.Reload], which suits a SIGHUP handler. A new pair is
// installed only once it validates (chain parses, key matches, leaf within
// its validity dates). Until then the old pair keeps serving and the error
// is logged, so a half-written renewal (new cert, old key) is never served.
//
// Files are read through symlinks and compared by content, which fits
// certbot's live/ layout (fullchain.pem and privkey.pem as symlinks swapped
// on renewal) and survives renewals with equal modification times.
//
// Fields must not be changed after the first Reload or GetCertificate.
// Existing TLS connections are never touched: a new pair applies to new
// handshakes only.
type File struct {
	// CertFile is the PEM certificate chain, leaf first. Required.
	CertFile string
	// KeyFile is the PEM private key. Required.
	KeyFile string
	// PollInterval bounds how often handshakes look for changed files.
	// If zero, DefaultPollInterval. If negative, files are read only by
	// Reload.
	PollInterval time.Duration
	// Logger receives reload results. If nil, slog.Default().
	Logger *slog.Logger

	now func() time.Time // tests; nil means time.Now

	mu       sync.Mutex // serializes loads
	cur      atomic.Pointer[tls.Certificate]
	sum      [sha256.Size]byte // content hash of the installed pair
	badSum   [sha256.Size]byte // content hash of the last pair that failed
	nextPoll atomic.Int64      // unix nanos; handshakes before it skip polling
}

var _ Source = (*File)(nil)

// NewFile returns a File for the given pair and loads it, so that a bad
// pair fails at startup rather than at the first handshake.
func NewFile(certFile, keyFile string) (*File, error) {
	f := &File{CertFile: certFile, KeyFile: keyFile}
	if err := f.Reload(); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *File) logger() *slog.Logger {
	if f.Logger != nil {
		return f.Logger
	}
	return slog.Default()
}

func (f *File) nowTime() time.Time {
	if f.now != nil {
		return f.now()
	}
	return time.Now()
}

func (f *File) pollInterval() time.Duration {
	if f.PollInterval == 0 {
		return DefaultPollInterval
	}
	return f.PollInterval
}

// Reload reads both files now and installs the pair if it changed and
// validates. On error the previous pair, if any, keeps serving; the error
// is also logged.
func (f *File) Reload() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.load(true)
}

// Certificate returns the pair being served, or nil before the first
// successful load.
func (f *File) Certificate() *tls.Certificate {
	return f.cur.Load()
}

// GetCertificate returns the current pair, first reloading it if the poll
// interval has passed and the files changed.
func (f *File) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	cert := f.cur.Load()
	if cert == nil {
		if err := f.Reload(); err != nil {
			return nil, err
		}
		return f.cur.Load(), nil
	}
	if f.pollInterval() > 0 && f.nowTime().UnixNano() >= f.nextPoll.Load() {
		// One handshake polls; the others serve the current pair.
		if f.mu.TryLock() {
			f.load(false) // errors are logged; the old pair stays
			f.mu.Unlock()
		}
		cert = f.cur.Load()
	}
	return cert, nil
}

// load reads and, if changed, installs the pair. f.mu must be held. Unless
// forced, a pair identical to the last failed one is not reported again.
func (f *File) load(force bool) error {
	now := f.nowTime()
	f.nextPoll.Store(now.Add(f.pollInterval()).UnixNano())
	certPEM, keyPEM, sum, err := f.read()
	if err == nil && f.cur.Load() != nil && sum == f.sum {
		return nil
	}
	if err == nil && !force && sum == f.badSum {
		return nil
	}
	var cert *tls.Certificate
	if err == nil {
		cert, err = f.validate(certPEM, keyPEM, now)
	}
	if err != nil {
		f.badSum = sum
		f.logger().Error("certificate reload failed, keeping the current one",
			"cert_file", f.CertFile, "key_file", f.KeyFile, "err", err,
			"serving", f.cur.Load() != nil)
		return err
	}
	f.sum, f.badSum = sum, [sha256.Size]byte{}
	f.cur.Store(cert)
	f.logger().Info("certificate loaded", "cert_file", f.CertFile,
		"subject", cert.Leaf.Subject.String(), "not_after", cert.Leaf.NotAfter,
		"fingerprint", Fingerprint(cert.Leaf.Raw))
	return nil
}

func (f *File) read() (certPEM, keyPEM []byte, sum [sha256.Size]byte, err error) {
	if f.CertFile == "" {
		return nil, nil, sum, errors.New("certs: File.CertFile: empty")
	}
	if f.KeyFile == "" {
		return nil, nil, sum, errors.New("certs: File.KeyFile: empty")
	}
	// os.ReadFile follows symlinks, so certbot's swapped links are read
	// at their current targets.
	if certPEM, err = os.ReadFile(f.CertFile); err != nil {
		return nil, nil, sum, fmt.Errorf("certs: %w", err)
	}
	if keyPEM, err = os.ReadFile(f.KeyFile); err != nil {
		return nil, nil, sum, fmt.Errorf("certs: %w", err)
	}
	h := sha256.New()
	h.Write(certPEM)
	h.Write([]byte{0})
	h.Write(keyPEM)
	h.Sum(sum[:0])
	return certPEM, keyPEM, sum, nil
}

// validate parses the pair and names the file at fault in the error.
func (f *File) validate(certPEM, keyPEM []byte, now time.Time) (*tls.Certificate, error) {
	if _, err := parseChain(certPEM); err != nil {
		return nil, fmt.Errorf("certs: %s: %w", f.CertFile, trimPrefix(err))
	}
	cert, err := ParsePEM(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certs: %s: %w (certificate %s)", f.KeyFile, trimPrefix(err), f.CertFile)
	}
	if err := CheckValidity(cert.Leaf, now); err != nil {
		return nil, fmt.Errorf("certs: %s: %w", f.CertFile, trimPrefix(err))
	}
	return cert, nil
}

// prefixErr drops the package prefix of a wrapped certs error so that
// messages read "certs: file: problem" rather than repeating "certs: ".
type prefixErr struct{ err error }

func (e prefixErr) Error() string { return strings.TrimPrefix(e.err.Error(), "certs: ") }
func (e prefixErr) Unwrap() error { return e.err }

func trimPrefix(err error) error { return prefixErr{err} }
