package wssproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/wssgate/wssgate/internal/jsonrpc"
	"golang.org/x/time/rate"
)

// maxBatch bounds the elements of one JSON-RPC batch the gateway judges.
const maxBatch = 1000

// session is one connection's JSON-RPC inspection: the seam on the
// client-to-node path where the method policy, message rate limits and the
// subscription cap act. Its client-side methods run on the client-to-node
// copier only; nodeMessage runs on the node-to-client copier.
type session struct {
	p   *Proxy
	key string // client key for per-client limits

	conn       *rate.Limiter // per-connection message rate; nil if off
	refusedRun int           // consecutive calls refused for rate

	beforeWait func() // sends held writes before a delay-mode wait

	calls []jsonrpc.Call // reused by Parse
	out   []byte         // reused for replies and rebuilt batches
	errs  [][]byte       // reused: error replies of one batch
	keep  [][]byte       // reused: forwarded elements of one batch

	mu      sync.Mutex
	pending map[string]pendingCall // by raw request id: replies the node owes that the gateway must see
	waiting atomic.Int32           // len(pending), read without mu on the hot path
	subs    int                    // active subscriptions (guarded by mu)
}

// pendingCall is a forwarded call whose reply the gateway must see: to
// count a subscription, or to merge refused batch elements into the
// node's batch reply.
type pendingCall struct {
	kind  int    // pendingSubscribe, pendingUnsubscribe or pendingBatch
	merge []byte // for pendingBatch: error objects to append, comma separated
}

const (
	pendingSubscribe = iota
	pendingUnsubscribe
	pendingBatch
)

// verdict is what the session decides for one client message.
type verdict struct {
	forward []byte // to the node; nil for nothing
	reply   []byte // to the client; nil for nothing
	close   error  // non-nil: close the client (a *policyClose)
}

// inspecting reports whether client messages need reading at all. With
// no policy, limits or cap, the proxy is a pure splice.
func (p *Proxy) inspecting() bool {
	o := &p.opts
	return !o.Policy.allowsAll() || o.MessageRate > 0 || o.ClientMessageLimit != nil || o.MaxSubscriptions > 0
}

func (p *Proxy) newSession(key string) *session {
	if !p.inspecting() {
		return nil
	}
	s := &session{p: p, key: key}
	if o := &p.opts; o.MessageRate > 0 {
		s.conn = rate.NewLimiter(o.MessageRate, o.MessageBurst)
	}
	return s
}

// clientMessage judges one whole client message.
func (s *session) clientMessage(ctx context.Context, msg []byte) verdict {
	calls, batch, err := jsonrpc.Parse(msg, maxBatch, s.calls[:0])
	s.calls = calls
	if err != nil {
		// Not JSON (or an empty or huge batch): the policy cannot read
		// it, so it never reaches the node. Answer as the node would.
		var je *jsonrpc.Error
		code := jsonrpc.CodeParseError
		if errors.As(err, &je) {
			code = je.Code
		}
		s.out = jsonrpc.AppendError(s.out[:0], nil, code, je.Reason, "")
		return verdict{reply: s.out}
	}
	if !batch {
		errObj, closeErr := s.judge(ctx, &calls[0], msg)
		if closeErr != nil {
			return verdict{close: closeErr}
		}
		if errObj != nil {
			return verdict{reply: errObj}
		}
		s.track(&calls[0], pendingCall{kind: -1})
		return verdict{forward: msg}
	}
	return s.judgeBatch(ctx, calls, msg)
}

// judgeBatch judges each element: refused ones are answered, the rest are
// forwarded as a smaller batch whose reply gets the refusals merged in.
func (s *session) judgeBatch(ctx context.Context, calls []jsonrpc.Call, msg []byte) verdict {
	s.errs, s.keep = s.errs[:0], s.keep[:0]
	s.out = s.out[:0]
	for i := range calls {
		c := &calls[i]
		start := len(s.out)
		errObj, closeErr := s.judge(ctx, c, msg)
		if closeErr != nil {
			return verdict{close: closeErr}
		}
		if errObj != nil {
			s.errs = append(s.errs, s.out[start:])
			continue
		}
		s.keep = append(s.keep, msg[c.Start:c.End])
	}
	if len(s.errs) == 0 {
		for i := range calls {
			s.track(&calls[i], pendingCall{kind: -1})
		}
		return verdict{forward: msg}
	}
	// s.out holds the error objects; build the reply or the merge after it.
	if len(s.keep) == 0 {
		return verdict{reply: jsonrpc.AppendBatch(s.out, s.errs...)[len(s.out):]}
	}
	merge := string(joinComma(s.errs))
	fwd := jsonrpc.AppendBatch(s.out, s.keep...)[len(s.out):]
	firstID := -1
	for i := range calls {
		c := &calls[i]
		if c.Err == nil && c.HasID && s.allowedElement(c, msg) {
			if firstID < 0 {
				firstID = i
			}
		}
	}
	if firstID < 0 { // only notifications forwarded: the node sends no reply to merge into
		reply := make([]byte, 0, len(merge)+2)
		reply = append(append(append(reply, '['), merge...), ']')
		return verdict{forward: fwd, reply: reply}
	}
	s.track(&calls[firstID], pendingCall{kind: pendingBatch, merge: []byte(merge)})
	return verdict{forward: fwd}
}

// allowedElement reports whether element c was kept in the forwarded batch.
func (s *session) allowedElement(c *jsonrpc.Call, msg []byte) bool {
	el := msg[c.Start:c.End]
	for _, k := range s.keep {
		if len(k) == len(el) && &k[0] == &el[0] {
			return true
		}
	}
	return false
}

func joinComma(parts [][]byte) []byte {
	var b []byte
	for i, p := range parts {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, p...)
	}
	return b
}

// judge decides one call. It returns the JSON-RPC error object to answer
// it with (appended to s.out), or nil to forward it; or an error to close
// the client with.
func (s *session) judge(ctx context.Context, c *jsonrpc.Call, msg []byte) ([]byte, error) {
	start := len(s.out)
	var denied bool
	if s.out, denied = s.p.checkPolicy(s.out, c); denied {
		return s.out[start:], nil
	}
	if c.IsResponse && !c.HasMethod {
		return nil, nil // a client answering a server request: nothing to limit
	}
	if msg, closeErr := s.rateCheck(ctx); closeErr != nil {
		return nil, closeErr
	} else if msg != "" {
		s.p.metrics.Denied("rate")
		if !c.HasID {
			return s.out[start:start], nil // a notification gets no answer, and is dropped
		}
		s.out = jsonrpc.AppendError(s.out, c.ID, jsonrpc.CodeLimitExceeded, msg, "")
		return s.out[start:], nil
	}
	if s.p.opts.MaxSubscriptions > 0 && isSubscribe(c.Method) && s.subscriptions() >= s.p.opts.MaxSubscriptions {
		s.p.metrics.Denied("subscriptions")
		s.out = jsonrpc.AppendError(s.out, c.ID, jsonrpc.CodeLimitExceeded,
			fmt.Sprintf("limit exceeded: at most %d subscriptions per connection", s.p.opts.MaxSubscriptions), "")
		return s.out[start:], nil
	}
	return nil, nil
}

// checkPolicy judges call c against the policy. If c is refused (invalid,
// or its method denied), it appends the JSON-RPC error answering it to dst
// and reports true.
func (p *Proxy) checkPolicy(dst []byte, c *jsonrpc.Call) ([]byte, bool) {
	if c.Err != nil {
		return jsonrpc.AppendError(dst, c.ID, c.Err.Code, c.Err.Reason, ""), true
	}
	if c.IsResponse && !c.HasMethod {
		return dst, false // a client answering a server request
	}
	if err := p.opts.Policy.Check(c.Method); err != nil {
		p.metrics.Denied("method")
		return jsonrpc.AppendError(dst, c.ID, jsonrpc.CodeMethodNotFound, err.Error(), ""), true
	}
	return dst, false
}

// rateCheck takes one call's token from the connection's and the client's
// limits. It returns a refusal message, or an error to close the client
// when it is far over, or neither.
func (s *session) rateCheck(ctx context.Context) (string, error) {
	o := &s.p.opts
	wait, limit := time.Duration(0), ""
	if s.conn != nil && !s.conn.Allow() { // Allow does not allocate; Reserve does
		d := s.connWait()
		switch {
		case o.MessageLimitDelay > 0 && d <= o.MessageLimitDelay:
			s.aboutToWait()
			if err := s.conn.Wait(ctx); err != nil {
				return "", &policyClose{websocket.StatusGoingAway, "connection closing"}
			}
		default:
			wait = d
			limit = fmt.Sprintf("%g calls/s per connection (burst %d)", float64(o.MessageRate), o.MessageBurst)
		}
	}
	if limit == "" && o.ClientMessageLimit != nil {
		for {
			ok, retry := o.ClientMessageLimit.Allow(s.key)
			if ok {
				break
			}
			if o.MessageLimitDelay > 0 && retry <= o.MessageLimitDelay {
				s.aboutToWait()
			}
			if o.MessageLimitDelay <= 0 || retry > o.MessageLimitDelay || !sleep(ctx, retry) {
				wait, limit = retry, "the per-client call rate"
				break
			}
		}
	}
	if limit == "" {
		s.refusedRun = 0
		return "", nil
	}
	s.refusedRun++
	if o.MaxRefusedCalls > 0 && s.refusedRun > o.MaxRefusedCalls {
		return "", &policyClose{websocket.StatusPolicyViolation,
			fmt.Sprintf("message rate limit exceeded: %d calls refused in a row", s.refusedRun-1)}
	}
	return fmt.Sprintf("limit exceeded: over %s; retry in %dms", limit, wait.Milliseconds()+1), nil
}

// aboutToWait is called before the session makes a client wait.
func (s *session) aboutToWait() {
	if s.beforeWait != nil {
		s.beforeWait()
	}
}

// connWait is how long until the connection's limiter has a token.
func (s *session) connWait() time.Duration {
	missing := 1 - s.conn.Tokens()
	if missing <= 0 {
		return 0
	}
	return time.Duration(missing / float64(s.conn.Limit()) * float64(time.Second))
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// isSubscribe reports whether method opens a subscription: Substrate's
// *_subscribe* methods, submitAndWatch, and the new API's follow.
func isSubscribe(method string) bool {
	i := strings.IndexByte(method, '_')
	if i < 0 {
		return false
	}
	m := method[i+1:]
	return strings.HasPrefix(m, "subscribe") || strings.HasSuffix(m, "submitAndWatchExtrinsic") ||
		strings.HasSuffix(m, "_submitAndWatch") || strings.HasSuffix(m, "_follow")
}

// isUnsubscribe reports whether method ends a subscription.
func isUnsubscribe(method string) bool {
	i := strings.IndexByte(method, '_')
	if i < 0 {
		return false
	}
	m := method[i+1:]
	return strings.HasPrefix(m, "unsubscribe") || m == "unwatchExtrinsic" ||
		strings.HasSuffix(m, "_unfollow") || strings.HasSuffix(m, "_unwatch")
}

func (s *session) subscriptions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.subs
	for _, pc := range s.pending {
		if pc.kind == pendingSubscribe {
			n++
		}
	}
	return n
}

// track remembers a forwarded call whose reply the gateway must see. A
// kind of -1 means: only if it (un)subscribes and subscriptions are capped.
func (s *session) track(c *jsonrpc.Call, pc pendingCall) {
	if !c.HasID || c.Err != nil || c.IsResponse {
		return
	}
	if pc.kind < 0 {
		if s.p.opts.MaxSubscriptions <= 0 {
			return
		}
		switch {
		case isSubscribe(c.Method):
			pc.kind = pendingSubscribe
		case isUnsubscribe(c.Method):
			pc.kind = pendingUnsubscribe
		default:
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending == nil {
		s.pending = make(map[string]pendingCall)
	}
	s.pending[string(c.ID)] = pc
	s.waiting.Store(int32(len(s.pending)))
}

// nodeMessage sees a whole node message while replies are awaited and
// returns what to send the client: msg, or a batch reply with refused
// elements merged in.
func (s *session) nodeMessage(msg []byte) []byte {
	if s.waiting.Load() == 0 {
		return msg
	}
	calls, batch, err := jsonrpc.Parse(msg, maxBatch, nil)
	if err != nil {
		return msg
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var merge []byte
	for i := range calls {
		c := &calls[i]
		if !c.IsResponse || c.ID == nil {
			continue
		}
		pc, ok := s.pending[string(c.ID)]
		if !ok {
			continue
		}
		delete(s.pending, string(c.ID))
		switch pc.kind {
		case pendingSubscribe:
			if !c.HasError {
				s.subs++
			}
		case pendingUnsubscribe:
			if !c.HasError && string(c.Result) == "true" && s.subs > 0 {
				s.subs--
			}
		case pendingBatch:
			if batch {
				merge = pc.merge
			}
		}
	}
	s.waiting.Store(int32(len(s.pending)))
	if merge == nil {
		return msg
	}
	end := bytes.LastIndexByte(msg, ']')
	out := make([]byte, 0, len(msg)+len(merge)+1)
	out = append(out, msg[:end]...)
	out = append(out, ',')
	out = append(out, merge...)
	return append(out, ']')
}
