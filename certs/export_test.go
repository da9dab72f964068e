package certs

import (
	"net/http"
	"time"
)

// SetACMETransportWrapper lets tests observe the ACME client's requests.
func SetACMETransportWrapper(a *ACME, wrap func(http.RoundTripper) http.RoundTripper) {
	a.wrapTransport = wrap
}

// SetFileNow injects the clock of a File.
func SetFileNow(f *File, now func() time.Time) { f.now = now }

// SetSelfSignedNow injects the clock of a SelfSigned.
func SetSelfSignedNow(s *SelfSigned, now func() time.Time) { s.now = now }
