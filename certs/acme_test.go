package certs_test

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wssgate/wssgate/certs"
)

func TestACMEConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		a    *certs.ACME
		want string
	}{
		{"no domains", &certs.ACME{}, "certs: ACME.Domains: empty"},
		{"wildcard", &certs.ACME{Domains: []string{"*.example.com"}}, "certs: ACME.Domains: \"*.example.com\": wildcards"},
		{"ip", &certs.ACME{Domains: []string{"10.0.0.1"}}, "certs: ACME.Domains: \"10.0.0.1\": IP"},
		{"single label", &certs.ACME{Domains: []string{"localhost"}}, "certs: ACME.Domains: \"localhost\": not a fully"},
		{"bad label", &certs.ACME{Domains: []string{"a_b.example.com"}}, "certs: ACME.Domains: \"a_b.example.com\": invalid DNS label"},
		{"email", &certs.ACME{Domains: []string{"a.example.com"}, Email: "nope"}, "certs: ACME.Email: "},
		{"directory", &certs.ACME{Domains: []string{"a.example.com"}, DirectoryURL: "http://ca.test/dir"}, "certs: ACME.DirectoryURL: "},
		{"port", &certs.ACME{Domains: []string{"a.example.com"}, HTTPSPort: 70000}, "certs: ACME.HTTPSPort: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := tt.a.Init(); err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("Init() = %v, want prefix %q", err, tt.want)
			}
		})
	}
}

func TestACMEHTTPHandler(t *testing.T) {
	t.Parallel()
	a := &certs.ACME{Domains: []string{"node.example.com"}, CacheDir: t.TempDir(), HTTPSPort: 8443}
	if err := a.Init(); err != nil {
		t.Fatal(err)
	}
	h := a.HTTPHandler(nil)
	tests := []struct {
		name, method, host, path string
		code                     int
		location                 string
	}{
		{"redirect keeps path and query", "GET", "node.example.com:8080", "/a/b?c=d", http.StatusFound, "https://node.example.com:8443/a/b?c=d"},
		{"redirect HEAD", "HEAD", "NODE.example.com", "/", http.StatusFound, "https://node.example.com:8443/"},
		{"POST is refused", "POST", "node.example.com", "/", http.StatusBadRequest, ""},
		{"unknown host", "GET", "evil.test", "/", http.StatusBadRequest, ""},
		// The port is stripped before autocert's host policy: an unknown
		// token is a 404, not a 403 for "node.example.com:8080".
		{"challenge on a non-80 port", "GET", "node.example.com:8080", "/.well-known/acme-challenge/x", http.StatusNotFound, ""},
		{"challenge for unknown host", "GET", "evil.test:8080", "/.well-known/acme-challenge/x", http.StatusForbidden, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(tt.method, "http://"+tt.host+tt.path, nil)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.code || w.Header().Get("Location") != tt.location {
				t.Errorf("got %d %q, want %d %q", w.Code, w.Header().Get("Location"), tt.code, tt.location)
			}
		})
	}
	t.Run("default port omitted", func(t *testing.T) {
		t.Parallel()
		b := &certs.ACME{Domains: []string{"node.example.com"}, CacheDir: t.TempDir()}
		w := httptest.NewRecorder()
		b.HTTPHandler(nil).ServeHTTP(w, httptest.NewRequest("GET", "http://node.example.com:80/x", nil))
		if got := w.Header().Get("Location"); got != "https://node.example.com/x" {
			t.Errorf("Location = %q", got)
		}
	})
}

func TestACMENoSNI(t *testing.T) {
	t.Parallel()
	a := &certs.ACME{Domains: []string{"node.example.com"}, CacheDir: t.TempDir()}
	_, err := a.GetCertificate(&tls.ClientHelloInfo{})
	if err == nil || !strings.Contains(err.Error(), "no server name") {
		t.Errorf("err = %v", err)
	}
}
