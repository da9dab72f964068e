package wssproxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/wssgate/wssgate/internal/jsonrpc"
	"golang.org/x/time/rate"
)

// Bounds of one client's JSON-RPC state. The gateway sets them, not the
// client: a client over one gets a -32005 error with its call's id.
const (
	// maxBatch bounds the elements of one JSON-RPC batch the gateway judges.
	maxBatch = 1000

	// MaxIDLength is the longest call id, in bytes of JSON, that the
	// gateway forwards; a call with a longer id is refused as an invalid
	// request (answered with a null id). It bounds what the gateway holds
	// for one call: the id it restores in the reply, or echoes in an error.
	MaxIDLength = 256

	// MaxTrackedCalls is how many calls of one connection may await a
	// reply the gateway must see (subscribes, unsubscribes, batches it
	// split) at once.
	MaxTrackedCalls = 1024

	// MaxHeldBytes bounds the bytes one connection's tracked calls hold:
	// the client ids to restore and the refusals to merge into batch
	// replies.
	MaxHeldBytes = 1 << 20
)

// session is one client's JSON-RPC state, the same for a WebSocket and an
// HTTP request: the method policy with its parameter rules, message limits,
// the calls whose replies the gateway must see, and the subscriptions the
// client holds. A WebSocket's session is called from both copiers:
// clientMessage from the client-to-node one, nodeMessage from the other.
//
// Calls whose replies the gateway must see are sent to the node under ids
// of the gateway's own ("wg" + 16 random hex digits per session + "." + a
// counter), so a reply matches exactly whatever ids the client chose; the
// reply gets the client's id back. Ids follow the node's rules (null, an
// unsigned 64-bit integer, a string): a call with any other id is a
// notification to the node, which never answers it, so it is never
// tracked.
type session struct {
	p    *Proxy
	key  string // client key for per-client limits
	http bool   // an HTTP request: policy only, one reply, no subscriptions
	// shared: a shared-mode client, whose calls the gateway routes itself;
	// judge only counts its subscriptions against the cap.
	shared bool

	conn       *rate.Limiter // per-connection message rate; nil if off
	refusedRun int           // consecutive calls refused for rate
	beforeWait func()        // sends held writes before a delay-mode wait

	// Reused across client messages (client copier only).
	calls []jsonrpc.Call
	out   []byte
	errs  [][]byte
	keep  []int
	edits []jsonrpc.IDEdit
	newly []*tracked // tracked by the message being judged

	idPrefix string // `"wg<hex>.`; a gateway id is idPrefix + n + `"`

	mu      sync.Mutex
	next    uint64
	pending map[uint64]*tracked   // by gateway id number
	held    int                   // bytes held by pending
	opening int                   // subscribe calls awaiting their reply
	subs    map[string]*subFamily // live node subscriptions by canonical id
	ending  int                   // of subs, those the node may end by itself
	watch   atomic.Int32          // len(pending) + ending: node messages must be read
}

// tracked is a forwarded call whose reply the gateway must see.
type tracked struct {
	n        uint64
	clientID []byte     // the client's raw id, restored in the reply
	opens    *subFamily // a subscribe: the family it opens
	closes   *subFamily // an unsubscribe: the family it ends
	subID    string     // an unsubscribe: the canonical id it ends
	merge    []byte     // a batch's anchor: refusals to add to the reply
}

func (t *tracked) size() int { return len(t.clientID) + len(t.merge) + len(t.subID) + 64 }

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
	var r [8]byte
	rand.Read(r[:])
	s.idPrefix = `"wg` + hex.EncodeToString(r[:]) + "."
	return s
}

// watchNode reports whether node messages must be read whole: a reply the
// gateway awaits, or a subscription the node may end by itself.
func (s *session) watchNode() bool { return s.watch.Load() > 0 }

// judgeMessage parses msg and judges each call. Refused calls' answers are
// in s.errs, the indexes of the calls to forward in s.keep. A non-nil
// verdict is the whole answer (msg unreadable, or the client to close).
func (s *session) judgeMessage(ctx context.Context, msg []byte) (calls []jsonrpc.Call, batch bool, v *verdict) {
	calls, batch, err := jsonrpc.Parse(msg, maxBatch, s.calls[:0])
	s.calls = calls
	s.out, s.errs, s.keep = s.out[:0], s.errs[:0], s.keep[:0]
	if err != nil {
		// Not JSON (or an empty or huge batch): the policy cannot read
		// it, so it never reaches the node. Answer as the node would.
		var je *jsonrpc.Error
		code := jsonrpc.CodeParseError
		if errors.As(err, &je) {
			code = je.Code
		}
		s.out = jsonrpc.AppendError(s.out, nil, code, je.Reason, "")
		return nil, false, &verdict{reply: s.out}
	}
	for i := range calls {
		start := len(s.out)
		refused, closeErr := s.judge(ctx, &calls[i])
		if closeErr != nil {
			s.release()
			return nil, false, &verdict{close: closeErr}
		}
		if refused {
			if len(s.out) > start { // a dropped notification has no answer
				s.errs = append(s.errs, s.out[start:])
			}
			continue
		}
		s.keep = append(s.keep, i)
	}
	return calls, batch, nil
}

// judge decides one call: refused (with its answer appended to s.out, or
// none for a notification), or forwarded; or an error to close the client.
func (s *session) judge(ctx context.Context, c *jsonrpc.Call) (refused bool, _ error) {
	answered := answeredID(c)
	var id []byte
	if answered {
		id = c.ID
	}
	if len(c.ID) > MaxIDLength {
		s.out = jsonrpc.AppendError(s.out, nil, jsonrpc.CodeInvalidRequest,
			fmt.Sprintf("invalid request: id longer than %d bytes", MaxIDLength), "")
		return true, nil
	}
	if c.Err != nil {
		s.out = jsonrpc.AppendError(s.out, c.ID, c.Err.Code, c.Err.Reason, "")
		return true, nil
	}
	if c.IsResponse && !c.HasMethod {
		return false, nil // a client answering a server request
	}
	if err := s.p.opts.Policy.CheckParams(c.Method, c.Params); err != nil {
		s.p.metrics.Denied("method")
		s.out = jsonrpc.AppendError(s.out, id, jsonrpc.CodeMethodNotFound, err.Error(), "")
		return true, nil
	}
	if s.http {
		return false, nil
	}
	if msg, closeErr := s.rateCheck(ctx); closeErr != nil {
		return false, closeErr
	} else if msg != "" {
		s.p.metrics.Denied("rate")
		if answered {
			s.out = jsonrpc.AppendError(s.out, id, jsonrpc.CodeLimitExceeded, msg, "")
		}
		return true, nil // a notification gets no answer, and is dropped
	}
	if answered && s.p.opts.MaxSubscriptions > 0 {
		track := s.trackSubscription
		if s.shared {
			track = s.countSubscription
		}
		if why := track(c); why != "" {
			s.out = jsonrpc.AppendError(s.out, id, jsonrpc.CodeLimitExceeded, why, "")
			return true, nil
		}
	}
	return false, nil
}

// answeredID reports whether the node answers c: its id is null, an
// unsigned 64-bit integer or a string. Any other id makes c a notification
// to the node.
func answeredID(c *jsonrpc.Call) bool {
	k := c.IDKind()
	return k == jsonrpc.IDNull || k == jsonrpc.IDNumber || k == jsonrpc.IDString
}

// trackSubscription tracks c if it subscribes or unsubscribes, counting
// the subscription it opens against the cap. It returns why c is refused,
// or "".
func (s *session) trackSubscription(c *jsonrpc.Call) string {
	var (
		opens, closes *subFamily
		subID         string
	)
	if opens = subscribeOf(c.Method); opens == nil {
		if closes = unsubscribeOf(c.Method); closes == nil {
			return "" // an ordinary call: nothing allocated for it
		}
		raw, _ := jsonrpc.Param(c.Params, 0, "subscription")
		if subID = canonicalSubID(raw); subID == "" {
			return ""
		}
	}
	t := &tracked{opens: opens, closes: closes, subID: subID}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.closes != nil {
		if _, ok := s.subs[t.subID]; !ok {
			return "" // not a subscription the gateway counts
		}
	}
	if t.opens != nil && len(s.subs)+s.opening >= s.p.opts.MaxSubscriptions {
		s.p.metrics.Denied("subscriptions")
		return fmt.Sprintf("limit exceeded: at most %d subscriptions per connection", s.p.opts.MaxSubscriptions)
	}
	if why := s.trackLocked(c, t); why != "" {
		return why
	}
	if t.opens != nil {
		s.opening++
	}
	return ""
}

// trackLocked gives c a gateway id and records t under it, within the
// session's bounds. s.mu is held.
func (s *session) trackLocked(c *jsonrpc.Call, t *tracked) string {
	t.clientID = append([]byte(nil), c.ID...)
	if len(s.pending) >= MaxTrackedCalls || s.held+t.size() > MaxHeldBytes {
		s.p.metrics.Denied("tracked")
		return fmt.Sprintf("limit exceeded: at most %d calls awaiting replies per connection", MaxTrackedCalls)
	}
	s.next++
	t.n = s.next
	if s.pending == nil {
		s.pending = make(map[uint64]*tracked)
	}
	s.pending[t.n] = t
	s.held += t.size()
	s.newly = append(s.newly, t)
	s.edits = append(s.edits, jsonrpc.IDEdit{At: c.IDAt, End: c.IDAt + len(c.ID), ID: s.gatewayID(t.n)})
	s.updateWatch()
	return ""
}

func (s *session) gatewayID(n uint64) []byte {
	b := make([]byte, 0, len(s.idPrefix)+21)
	b = append(b, s.idPrefix...)
	b = strconv.AppendUint(b, n, 10)
	return append(b, '"')
}

// ownID returns the number of a gateway id, or false.
func (s *session) ownID(raw []byte) (uint64, bool) {
	if len(raw) < len(s.idPrefix)+2 || string(raw[:len(s.idPrefix)]) != s.idPrefix || raw[len(raw)-1] != '"' {
		return 0, false
	}
	n, err := strconv.ParseUint(string(raw[len(s.idPrefix):len(raw)-1]), 10, 64)
	return n, err == nil
}

// release forgets what the message being judged tracked: it is not sent.
func (s *session) release() {
	if len(s.newly) == 0 {
		return
	}
	s.mu.Lock()
	for _, t := range s.newly {
		s.forgetLocked(t)
		if t.opens != nil {
			s.opening--
		}
	}
	s.mu.Unlock()
	s.newly, s.edits = s.newly[:0], s.edits[:0]
}

func (s *session) forgetLocked(t *tracked) {
	if _, ok := s.pending[t.n]; ok {
		delete(s.pending, t.n)
		s.held -= t.size()
	}
	s.updateWatch()
}

func (s *session) updateWatch() { s.watch.Store(int32(len(s.pending) + s.ending)) }

// canonicalSubID is the key of a subscription id as the node sent it or a
// client names it: "s" + the decoded string, "n" + the number; "" if raw is
// neither.
func canonicalSubID(raw []byte) string {
	raw = jsonrpc.TrimSpace(raw)
	switch {
	case len(raw) == 0:
		return ""
	case raw[0] == '"':
		if v, ok := jsonrpc.Unquote(raw); ok {
			return "s" + v
		}
	case raw[0] >= '0' && raw[0] <= '9':
		return "n" + string(raw)
	}
	return ""
}

// clientMessage judges one whole client message and says what to send
// where. The slices it returns are valid until the next call.
func (s *session) clientMessage(ctx context.Context, msg []byte) verdict {
	s.newly, s.edits = s.newly[:0], s.edits[:0]
	calls, batch, v := s.judgeMessage(ctx, msg)
	// The calls alias msg: drop them before the next message, so an idle
	// connection pins no message buffer.
	defer clear(s.calls)
	if v != nil {
		return *v
	}
	switch {
	case len(s.keep) == 0 && !batch:
		if len(s.errs) == 0 {
			return verdict{} // a dropped notification
		}
		return verdict{reply: s.errs[0]}
	case len(s.keep) == 0:
		if len(s.errs) == 0 {
			return verdict{}
		}
		return verdict{reply: jsonrpc.AppendBatch(s.out, s.errs...)[len(s.out):]}
	case len(s.errs) == 0 && len(s.edits) == 0:
		return verdict{forward: msg}
	case len(s.errs) == 0:
		return verdict{forward: jsonrpc.ReplaceIDs(s.out, msg, s.edits)[len(s.out):]}
	}
	// A batch, part refused: forward the rest; the refusals are merged
	// into the node's reply, or sent now if the node will not answer.
	merge := joinComma(s.errs)
	var anchor *tracked
	for _, t := range s.newly {
		anchor = t
		break
	}
	if anchor == nil {
		if i := s.firstAnswered(calls); i >= 0 {
			s.mu.Lock()
			if why := s.trackLocked(&calls[i], &tracked{}); why != "" {
				s.mu.Unlock()
				s.release()
				s.out = jsonrpc.AppendError(s.out[:0], nil, jsonrpc.CodeLimitExceeded, why, "")
				return verdict{reply: s.out}
			}
			anchor = s.newly[len(s.newly)-1]
			s.mu.Unlock()
		}
	}
	fwd := s.appendKept(s.out, msg, calls)
	if anchor == nil { // only notifications forwarded: the node sends no reply
		return verdict{forward: fwd[len(s.out):], reply: jsonrpc.AppendBatch(nil, merge)}
	}
	s.mu.Lock()
	anchor.merge = merge
	s.held += len(merge)
	over := s.held > MaxHeldBytes
	s.mu.Unlock()
	if over {
		s.release()
		s.out = jsonrpc.AppendError(s.out[:0], nil, jsonrpc.CodeLimitExceeded,
			fmt.Sprintf("limit exceeded: over %d bytes held for replies on this connection", MaxHeldBytes), "")
		return verdict{reply: s.out}
	}
	return verdict{forward: fwd[len(s.out):]}
}

// firstAnswered returns the index of the first forwarded call the node
// will answer, or -1.
func (s *session) firstAnswered(calls []jsonrpc.Call) int {
	for _, i := range s.keep {
		if c := &calls[i]; answeredID(c) && c.HasMethod && !c.IsResponse {
			return i
		}
	}
	return -1
}

// appendKept appends the batch of the forwarded calls, with their gateway
// ids, to dst.
func (s *session) appendKept(dst, msg []byte, calls []jsonrpc.Call) []byte {
	dst = append(dst, '[')
	e := 0
	for k, i := range s.keep {
		if k > 0 {
			dst = append(dst, ',')
		}
		c := &calls[i]
		var edits []jsonrpc.IDEdit
		for e < len(s.edits) && s.edits[e].At < c.End {
			if s.edits[e].At >= c.Start {
				ed := s.edits[e]
				ed.At, ed.End = ed.At-c.Start, ed.End-c.Start
				edits = append(edits, ed)
			}
			e++
		}
		dst = jsonrpc.ReplaceIDs(dst, msg[c.Start:c.End], edits)
	}
	return append(dst, ']')
}

func joinComma(parts [][]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p) + 1
	}
	b := make([]byte, 0, n)
	for i, p := range parts {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, p...)
	}
	return b
}
