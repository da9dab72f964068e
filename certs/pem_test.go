package certs_test

import (
	"bytes"
	"testing"

	"github.com/wssgate/wssgate/certs"
)

func FuzzParsePEM(f *testing.F) {
	// The corpus under testdata/fuzz/FuzzParsePEM holds a valid pair and
	// near misses (mismatched key, truncated, key in the chain, ...).
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"), []byte{})
	f.Fuzz(func(t *testing.T, certPEM, keyPEM []byte) {
		cert, err := certs.ParsePEM(certPEM, keyPEM)
		if err != nil {
			if cert != nil {
				t.Fatal("non-nil certificate with an error")
			}
			if !bytes.HasPrefix([]byte(err.Error()), []byte("certs: ")) {
				t.Fatalf("error without package prefix: %v", err)
			}
			return
		}
		if cert.Leaf == nil || len(cert.Certificate) == 0 || cert.PrivateKey == nil {
			t.Fatalf("incomplete certificate: %+v", cert)
		}
		if !bytes.Equal(cert.Leaf.Raw, cert.Certificate[0]) {
			t.Fatal("Leaf is not the first certificate")
		}
	})
}
