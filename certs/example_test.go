package certs_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/wssgate/wssgate/certs"
)

func ExampleTLSConfig() {
	src, err := certs.NewSelfSigned("127.0.0.1")
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello over %s", r.Proto)
	}))
	srv.TLS = certs.TLSConfig(src)
	srv.StartTLS()
	defer srv.Close()

	// Trust the self-signed certificate, as a pinning client would.
	client := srv.Client()
	client.Transport.(*http.Transport).TLSClientConfig.RootCAs.AddCert(src.Certificate().Leaf)
	res, err := client.Get(srv.URL)
	if err != nil {
		log.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	fmt.Println(string(body))
	fmt.Println(srv.TLS.NextProtos[0], srv.TLS.MinVersion == tls.VersionTLS12)
	// Output:
	// hello over HTTP/1.1
	// http/1.1 true
}

func ExampleNewSelfSigned() {
	src, err := certs.NewSelfSigned("node.internal", "10.0.0.7")
	if err != nil {
		log.Fatal(err)
	}
	leaf := src.Certificate().Leaf
	fmt.Println(leaf.DNSNames, leaf.IPAddresses)
	fmt.Println(len(src.Fingerprint()), strings.Count(src.Fingerprint(), ":"))
	// Output:
	// [node.internal] [10.0.0.7]
	// 95 31
}

func ExampleSelfSigned_persisted() {
	dir, err := os.MkdirTemp("", "wssgate-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	logger := slog.New(slog.DiscardHandler)
	first := &certs.SelfSigned{Dir: dir, Logger: logger}
	restarted := &certs.SelfSigned{Dir: dir, Logger: logger}
	fmt.Println(first.Fingerprint() == restarted.Fingerprint())
	st, _ := os.Stat(filepath.Join(dir, "key.pem"))
	fmt.Println(st.Mode().Perm())
	// Output:
	// true
	// -rw-------
}

func ExampleFile() {
	// Write a pair where certbot would, then serve it.
	dir, err := os.MkdirTemp("", "wssgate-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	gen := &certs.SelfSigned{Hosts: []string{"node.example.com"}, Dir: dir, Logger: slog.New(slog.DiscardHandler)}
	if err := gen.Init(); err != nil {
		log.Fatal(err)
	}

	f, err := certs.NewFile(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		log.Fatal(err)
	}
	f.Logger = slog.New(slog.DiscardHandler)
	// On SIGHUP: if err := f.Reload(); err != nil { the old pair keeps serving }
	cert, _ := f.GetCertificate(&tls.ClientHelloInfo{ServerName: "node.example.com"})
	fmt.Println(cert.Leaf.DNSNames)
	// Output:
	// [node.example.com]
}

func ExampleSNI() {
	local, _ := certs.NewSelfSigned("127.0.0.1")
	public := &certs.ACME{Domains: []string{"node.example.com"}, Email: "ops@example.com"}
	src := &certs.SNI{
		Names:   map[string]certs.Source{"node.example.com": public},
		Default: local, // clients dialing the IP send no SNI
	}
	fmt.Println(certs.TLSConfig(src).NextProtos)
	// Output:
	// [http/1.1 acme-tls/1]
}

func ExampleACME_HTTPHandler() {
	src := &certs.ACME{Domains: []string{"node.example.com"}, CacheDir: os.TempDir(), HTTPSPort: 8443}
	w := httptest.NewRecorder()
	src.HTTPHandler(nil).ServeHTTP(w, httptest.NewRequest("GET", "http://node.example.com/rpc?x=1", nil))
	fmt.Println(w.Code, w.Header().Get("Location"))
	// Output:
	// 302 https://node.example.com:8443/rpc?x=1
}
