package certs_test

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wssgate/wssgate/certs"
)

// named is a Source that reports its name through the certificate's
// OCSPStaple field, and optionally lists NextProtos.
type named struct {
	name   string
	protos []string
}

func (n *named) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return &tls.Certificate{OCSPStaple: []byte(n.name)}, nil
}

func (n *named) NextProtos() []string { return n.protos }

func TestSNI(t *testing.T) {
	t.Parallel()
	acme := &named{name: "acme", protos: []string{certs.ALPNProto}}
	s := &certs.SNI{
		Names: map[string]certs.Source{
			"Node.Example.com.": acme,
			"*.example.com":     &named{name: "wild"},
			"exact.example.com": &named{name: "exact"},
			"ip.example.org":    certs.SourceFunc(func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return nil, errors.New("boom") }),
		},
		Default: &named{name: "default"},
	}
	tests := []struct {
		name, server string
		protos       []string
		want         string
	}{
		{"exact", "exact.example.com", nil, "exact"},
		{"case and trailing dot", "NODE.example.COM.", nil, "acme"},
		{"wildcard", "other.example.com", nil, "wild"},
		{"wildcard is one label", "a.b.example.com", nil, "default"},
		{"wildcard needs a label", "example.com", nil, "default"},
		{"no SNI", "", nil, "default"},
		{"unknown", "node.example.net", nil, "default"},
		{"challenge hello for non-ACME name", "exact.example.com", []string{certs.ALPNProto}, "acme"},
		{"normal hello offering acme-tls/1 too", "exact.example.com", []string{"http/1.1", certs.ALPNProto}, "exact"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: tt.server, SupportedProtos: tt.protos})
			if err != nil {
				t.Fatal(err)
			}
			if got := string(c.OCSPStaple); got != tt.want {
				t.Errorf("routed to %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("NextProtos", func(t *testing.T) {
		t.Parallel()
		if diff := cmp.Diff([]string{"http/1.1", certs.ALPNProto}, certs.TLSConfig(s).NextProtos); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("no default", func(t *testing.T) {
		t.Parallel()
		var empty certs.SNI
		if _, err := empty.GetCertificate(&tls.ClientHelloInfo{}); err == nil {
			t.Error("zero SNI served a certificate")
		}
	})
}

func TestTLSConfig(t *testing.T) {
	t.Parallel()
	cfg := certs.TLSConfig(certs.Static(nil))
	if cfg.MinVersion != tls.VersionTLS12 || cfg.SessionTicketsDisabled {
		t.Errorf("MinVersion %x, SessionTicketsDisabled %v", cfg.MinVersion, cfg.SessionTicketsDisabled)
	}
	if diff := cmp.Diff([]string{"http/1.1"}, cfg.NextProtos); diff != "" {
		t.Errorf("NextProtos (-want +got):\n%s", diff)
	}
	for _, id := range cfg.CipherSuites {
		for _, s := range tls.CipherSuites() {
			if s.ID == id && (s.Insecure || !strings.Contains(s.Name, "ECDHE") || !(strings.Contains(s.Name, "_GCM_") || strings.Contains(s.Name, "CHACHA20"))) {
				t.Errorf("weak suite %s", s.Name)
			}
		}
		for _, s := range tls.InsecureCipherSuites() {
			if s.ID == id {
				t.Errorf("insecure suite %s", s.Name)
			}
		}
	}
}
