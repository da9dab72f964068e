package wssproxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"time"

	"github.com/wssgate/wssgate/internal/jsonrpc"
)

// transport is shared by the WebSocket dialer and the HTTP forwarder, so
// both honour DialTimeout and UpstreamTLS.
func (p *Proxy) transport() *http.Transport {
	d := p.dialer()
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

func (p *Proxy) dialer() *net.Dialer {
	return &net.Dialer{Timeout: p.opts.DialTimeout, KeepAlive: 30 * time.Second, Resolver: p.opts.resolver}
}

func (p *Proxy) reverseProxy(tr http.RoundTripper) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Transport: tr,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(p.pick().httpURL) // also sets Host to the node's own
			pr.Out.Host = ""
			p.forwardedHeaders(pr.Out.Header, pr.In)
			if !p.opts.ForwardOrigin {
				pr.Out.Header.Del("Origin")
			}
			for k, v := range p.opts.UpstreamHeader {
				pr.Out.Header[k] = append([]string(nil), v...)
			}
		},
		ModifyResponse: mergeReply,
		ErrorLog:       slog.NewLogLogger(p.log.Handler(), slog.LevelWarn),
		ErrorHandler:   p.httpError,
	}
}

func (p *Proxy) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if !p.allowRequest(w, r, p.opts.Key(r)) {
		return
	}
	if r.ContentLength > p.opts.MaxBodyBytes {
		p.refuse(w, r, http.StatusRequestEntityTooLarge, RefusalBodyTooLarge, "request body too large")
		return
	}
	hasBody := r.Body != nil && r.Body != http.NoBody
	if hasBody {
		r.Body = http.MaxBytesReader(w, r.Body, p.opts.MaxBodyBytes)
		// NewServer sets no ReadTimeout, since WebSockets are long-lived:
		// bound the body here, or a client trickling it holds a handler
		// (and, with AllowAll, a request to the node) for ever.
		http.NewResponseController(w).SetReadDeadline(time.Now().Add(p.opts.HandshakeTimeout))
	}
	if hasBody && !p.opts.Policy.allowsAll() {
		// Every body is judged by the policy, whatever the method: the
		// node, or anything between, may treat "post" or PUT as POST.
		if r.Method != http.MethodPost {
			p.refuseMethod(w, r)
			return
		}
		p.serveRPCPost(w, r)
		return
	}
	p.http.ServeHTTP(w, r)
}

// refuseMethod answers a request with a body and a method other than POST
// while a policy is on: 405, as a JSON-RPC error for a JSON-RPC body.
func (p *Proxy) refuseMethod(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Allow", "GET, POST")
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<10))
	p.refuse(w, rpcBody(r, body), http.StatusMethodNotAllowed, RefusalMethod,
		"HTTP method "+r.Method+" not allowed: send JSON-RPC requests with POST")
}

// mergeKey carries, in a forwarded request's context, the JSON-RPC errors
// to merge into the node's batch reply.
type mergeKey struct{}

// serveRPCPost applies the session's policy to a JSON-RPC POST: refused
// calls are answered by the gateway, the rest forwarded, and for a batch
// the node's reply gets the refusals merged in.
func (p *Proxy) serveRPCPost(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	r = rpcBody(r, body) // refusals from here on are JSON-RPC errors
	if err != nil {
		p.httpError(w, r, err)
		return
	}
	s := &session{p: p, http: true}
	calls, batch, v := s.judgeMessage(r.Context(), body)
	switch {
	case v != nil:
		p.writeRPC(w, v.reply)
		return
	case len(s.errs) == 0 && len(s.keep) == 0:
		p.writeRPC(w, nil) // a refused notification: no answer, as from the node
		return
	case p.hub != nil && p.serveSharedPost(w, r, s, calls, batch):
		return
	case len(s.errs) == 0:
	case !batch:
		p.writeRPC(w, s.errs[0])
		return
	case len(s.keep) == 0:
		p.writeRPC(w, jsonrpc.AppendBatch(nil, s.errs...))
		return
	default:
		body = s.appendKept(nil, body, calls)
		r = r.WithContext(context.WithValue(r.Context(), mergeKey{}, joinComma(s.errs)))
		r.Header.Del("Accept-Encoding") // the reply is edited: get it uncompressed
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.Header.Set("Content-Length", strconv.Itoa(len(body)))
	p.http.ServeHTTP(w, r)
}

// writeRPC answers a JSON-RPC POST from the gateway itself, as the node
// would: 200 with the JSON body.
func (p *Proxy) writeRPC(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}

// mergeReply appends the gateway's refusals to the node's batch reply.
// If the node answered something else (an error status, or not an
// array), the refusals are sent alone instead.
func mergeReply(resp *http.Response) error {
	merge, _ := resp.Request.Context().Value(mergeKey{}).([]byte)
	if merge == nil {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	resp.Body.Close()
	if err != nil {
		return err
	}
	merged, ok := jsonrpc.MergeBatch(nil, body, merge)
	if resp.StatusCode != http.StatusOK || !ok {
		merged = jsonrpc.AppendBatch(nil, merge)
		resp.StatusCode, resp.Status = http.StatusOK, "200 OK"
	}
	body = merged
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	resp.Header.Del("Content-Encoding")
	return nil
}

// httpError answers a request the node could not serve.
func (p *Proxy) httpError(w http.ResponseWriter, r *http.Request, err error) {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		p.refuse(w, r, http.StatusRequestEntityTooLarge, RefusalBodyTooLarge, "request body too large")
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away; there is no one to answer.
		w.WriteHeader(499)
	case isTimeout(err):
		p.refuse(w, r, http.StatusGatewayTimeout, RefusalNodeTimeout, "node did not answer in time")
	default:
		p.log.LogAttrs(r.Context(), slog.LevelWarn, "wssproxy: node request failed",
			slog.String("error", err.Error()))
		p.refuse(w, r, http.StatusBadGateway, RefusalNodeDown, "node unavailable: "+dialCause(err))
	}
}
