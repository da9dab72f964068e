package certs

import (
	"crypto/tls"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// SNI is a [Source] that picks another Source by the server name the client
// sent (SNI).
//
// The zero value fails every handshake. Fields must not be changed after the
// first GetCertificate call.
type SNI struct {
	// Names maps server name patterns to the Source serving them. A pattern
	// is an exact name ("node.example.com") or a wildcard ("*.example.com")
	// that matches exactly one extra leftmost label. Exact names win over
	// wildcards. Matching ignores case and a trailing dot.
	//
	// If nil, every handshake goes to Default.
	Names map[string]Source

	// Default serves handshakes without SNI (clients dialing a raw IP) and
	// names that match no pattern.
	//
	// If nil, such handshakes fail.
	Default Source

	once  sync.Once
	exact map[string]Source
	wild  map[string]Source // key: the suffix after "*."
	all   []Source          // Default, then Names by sorted pattern
	acme  []Source          // children that list ALPNProto, in that order
}

// normalizeName lowercases name and drops one trailing dot.
func normalizeName(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, "."))
}

func (s *SNI) init() {
	s.exact = make(map[string]Source, len(s.Names))
	s.wild = make(map[string]Source)
	patterns := make([]string, 0, len(s.Names))
	for p := range s.Names {
		patterns = append(patterns, p)
	}
	slices.Sort(patterns)
	children := []Source{s.Default}
	for _, p := range patterns {
		src := s.Names[p]
		children = append(children, src)
		n := normalizeName(p)
		if suffix, ok := strings.CutPrefix(n, "*."); ok {
			s.wild[suffix] = src
		} else {
			s.exact[n] = src
		}
	}
	s.all = children
	for _, c := range children {
		if servesChallenges(c) {
			s.acme = append(s.acme, c)
		}
	}
}

func servesChallenges(src Source) bool {
	np, ok := src.(NextProtoser)
	return ok && slices.Contains(np.NextProtos(), ALPNProto)
}

// lookup returns the Source for a server name, or Default.
func (s *SNI) lookup(name string) Source {
	name = normalizeName(name)
	if name == "" {
		return s.Default
	}
	if src, ok := s.exact[name]; ok {
		return src
	}
	if _, parent, ok := strings.Cut(name, "."); ok {
		if src, ok := s.wild[parent]; ok {
			return src
		}
	}
	return s.Default
}

// GetCertificate picks the Source for hello.ServerName and asks it.
//
// ACME TLS-ALPN-01 challenge hellos (ALPN offering only "acme-tls/1") go to
// the matching Source if it answers challenges, else to the first child
// that does (Default first, then Names by sorted pattern).
func (s *SNI) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.once.Do(s.init)
	src := s.lookup(hello.ServerName)
	if isChallengeHello(hello) && !servesChallenges(src) && len(s.acme) > 0 {
		src = s.acme[0]
	}
	if src == nil {
		return nil, fmt.Errorf("certs: SNI: no Source for server name %q", hello.ServerName)
	}
	return src.GetCertificate(hello)
}

// NextProtos returns the union of the NextProtos of all children, so that
// [TLSConfig] offers "acme-tls/1" when any child is an [ACME] source.
func (s *SNI) NextProtos() []string {
	s.once.Do(s.init)
	var protos []string
	add := func(src Source) {
		if np, ok := src.(NextProtoser); ok {
			for _, p := range np.NextProtos() {
				if !slices.Contains(protos, p) {
					protos = append(protos, p)
				}
			}
		}
	}
	for _, src := range s.all {
		add(src)
	}
	return protos
}
