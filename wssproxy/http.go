package wssproxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"
)

// transport is shared by the WebSocket dialer and the HTTP forwarder, so
// both honour DialTimeout and UpstreamTLS.
func (p *Proxy) transport() *http.Transport {
	d := &net.Dialer{Timeout: p.opts.DialTimeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 nil, // the node is local; never route it via HTTP_PROXY
		DialContext:           d.DialContext,
		TLSClientConfig:       p.opts.UpstreamTLS.Clone(),
		TLSHandshakeTimeout:   p.opts.DialTimeout,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     false,
	}
	return tr
}

// httpURL is the node's http(s) URL matching its ws(s) URL.
func (p *Proxy) httpURL() *url.URL {
	u := *p.upstream
	if u.Scheme == "wss" {
		u.Scheme = "https"
	} else {
		u.Scheme = "http"
	}
	return &u
}

func (p *Proxy) reverseProxy(tr http.RoundTripper) *httputil.ReverseProxy {
	target := p.httpURL()
	return &httputil.ReverseProxy{
		Transport: tr,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target) // also sets Host to the node's own
			pr.Out.Host = ""
			p.forwardedHeaders(pr.Out.Header, pr.In)
			if !p.opts.ForwardOrigin {
				pr.Out.Header.Del("Origin")
			}
			for k, v := range p.opts.UpstreamHeader {
				pr.Out.Header[k] = append([]string(nil), v...)
			}
		},
		ErrorLog:     slog.NewLogLogger(p.log.Handler(), slog.LevelWarn),
		ErrorHandler: p.httpError,
	}
}

func (p *Proxy) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > p.opts.MaxBodyBytes {
		p.refuse(w, r, http.StatusRequestEntityTooLarge, reasonBodyTooLarge, "request body too large")
		return
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = http.MaxBytesReader(w, r.Body, p.opts.MaxBodyBytes)
	}
	p.http.ServeHTTP(w, r)
}

// httpError answers a request the node could not serve.
func (p *Proxy) httpError(w http.ResponseWriter, r *http.Request, err error) {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		p.refuse(w, r, http.StatusRequestEntityTooLarge, reasonBodyTooLarge, "request body too large")
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away; there is no one to answer.
		w.WriteHeader(499)
	case isTimeout(err):
		p.refuse(w, r, http.StatusGatewayTimeout, reasonNodeTimeout, "node did not answer in time")
	default:
		p.log.LogAttrs(r.Context(), slog.LevelWarn, "wssproxy: node request failed",
			slog.String("upstream", p.upstream.Host), slog.String("error", err.Error()))
		p.refuse(w, r, http.StatusBadGateway, reasonNodeDown, "node unavailable: "+dialCause(err))
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// dialCause is a short, address-free description of why the node could not
// be reached, safe to show to internet clients.
func dialCause(err error) string {
	var op *net.OpError
	switch {
	case isTimeout(err):
		return "timeout"
	case errors.As(err, &op) && op.Op == "dial":
		return "connection refused"
	case errors.Is(err, net.ErrClosed), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	default:
		return "connection failed"
	}
}
