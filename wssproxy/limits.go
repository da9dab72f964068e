package wssproxy

import (
	"context"
	"fmt"
	"time"

	"github.com/coder/websocket"
)

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
