package certs_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wssgate/wssgate/certs"
)

func TestSelfSigned(t *testing.T) {
	t.Parallel()

	t.Run("SANs and usage", func(t *testing.T) {
		t.Parallel()
		s, err := certs.NewSelfSigned("node.test", "10.0.0.1", "::1")
		if err != nil {
			t.Fatal(err)
		}
		leaf := s.Certificate().Leaf
		type sans struct {
			DNS []string
			IP  []string
		}
		got := sans{DNS: leaf.DNSNames}
		for _, ip := range leaf.IPAddresses {
			got.IP = append(got.IP, ip.String())
		}
		if diff := cmp.Diff(sans{DNS: []string{"node.test"}, IP: []string{"10.0.0.1", "::1"}}, got); diff != "" {
			t.Errorf("SANs (-want +got):\n%s", diff)
		}
		if leaf.NotAfter.Sub(leaf.NotBefore) != certs.DefaultSelfSignedValidity {
			t.Errorf("lifetime = %v", leaf.NotAfter.Sub(leaf.NotBefore))
		}
		if err := leaf.VerifyHostname("10.0.0.1"); err != nil {
			t.Error(err)
		}
		if fp := s.Fingerprint(); len(fp) != 95 || fp != strings.ToUpper(fp) || fp != certs.Fingerprint(leaf.Raw) {
			t.Errorf("Fingerprint() = %q", fp)
		}
	})

	t.Run("default hosts", func(t *testing.T) {
		t.Parallel()
		var s certs.SelfSigned // the zero value works
		for _, h := range []string{"localhost", "127.0.0.1", "::1"} {
			if err := s.Certificate().Leaf.VerifyHostname(h); err != nil {
				t.Error(err)
			}
		}
	})

	t.Run("persisted fingerprint is stable", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join(t.TempDir(), "tls")
		a := &certs.SelfSigned{Dir: dir}
		if err := a.Init(); err != nil {
			t.Fatal(err)
		}
		log, logs := testLogger()
		b := &certs.SelfSigned{Dir: dir, Logger: log}
		if err := b.Init(); err != nil {
			t.Fatal(err)
		}
		if a.Fingerprint() != b.Fingerprint() {
			t.Errorf("fingerprint changed across restarts: %s != %s", a.Fingerprint(), b.Fingerprint())
		}
		if !strings.Contains(logs.String(), "fingerprint="+b.Fingerprint()) {
			t.Errorf("fingerprint not logged:\n%s", logs)
		}
		st, err := os.Stat(filepath.Join(dir, "key.pem"))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("key.pem mode = %v, want 0600", st.Mode().Perm())
		}
		c := &certs.SelfSigned{Dir: dir, Hosts: []string{"other.test"}}
		if err := c.Init(); err != nil {
			t.Fatal(err)
		}
		if c.Fingerprint() == a.Fingerprint() {
			t.Error("persisted certificate reused for other hosts")
		}
	})

	t.Run("regenerates near expiry", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		now := time.Now()
		s := &certs.SelfSigned{Dir: dir, Validity: 30 * 24 * time.Hour, RenewBefore: 7 * 24 * time.Hour}
		certs.SetSelfSignedNow(s, func() time.Time { return now })
		first := s.Fingerprint()
		now = now.Add(22 * 24 * time.Hour) // 8 days left: not yet due
		if _, err := s.GetCertificate(nil); err != nil || s.Fingerprint() != first {
			t.Fatalf("regenerated early: err %v", err)
		}
		now = now.Add(2 * 24 * time.Hour) // 6 days left: due
		if _, err := s.GetCertificate(nil); err != nil || s.Fingerprint() == first {
			t.Fatalf("not regenerated within RenewBefore: err %v", err)
		}
		second := s.Fingerprint()
		// A restart at this time reuses the regenerated, persisted pair, and
		// a restart near its expiry replaces it.
		r := &certs.SelfSigned{Dir: dir, Validity: 30 * 24 * time.Hour, RenewBefore: 7 * 24 * time.Hour}
		certs.SetSelfSignedNow(r, func() time.Time { return now })
		if r.Fingerprint() != second {
			t.Error("restart did not reuse the persisted pair")
		}
		later := now.Add(25 * 24 * time.Hour)
		r2 := &certs.SelfSigned{Dir: dir, Validity: 30 * 24 * time.Hour, RenewBefore: 7 * 24 * time.Hour}
		certs.SetSelfSignedNow(r2, func() time.Time { return later })
		if r2.Fingerprint() == second {
			t.Error("restart near expiry reused the old pair")
		}
	})

	t.Run("invalid config names the field", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			s    *certs.SelfSigned
			want string
		}{
			{&certs.SelfSigned{Validity: 900 * 24 * time.Hour}, "certs: SelfSigned.Validity: "},
			{&certs.SelfSigned{Validity: -time.Hour}, "certs: SelfSigned.Validity: "},
			{&certs.SelfSigned{Validity: time.Hour, RenewBefore: time.Hour}, "certs: SelfSigned.RenewBefore: "},
			{&certs.SelfSigned{Hosts: []string{"a b"}}, "certs: SelfSigned.Hosts: "},
		}
		for _, tt := range tests {
			if err := tt.s.Init(); err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("Init() = %v, want prefix %q", err, tt.want)
			}
		}
	})
}

func TestFingerprint(t *testing.T) {
	t.Parallel()
	got := certs.Fingerprint([]byte("abc"))
	want := "BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:B0:03:61:A3:96:17:7A:9C:B4:10:FF:61:F2:00:15:AD"
	if got != want {
		t.Errorf("Fingerprint = %s, want %s", got, want)
	}
}
