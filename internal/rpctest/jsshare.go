package rpctest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"
)

// HeadClients is a running e2e/share.mjs: many @polkadot/api clients in
// one Node process, each subscribed to new heads through one URL. Tests
// drive it step by step and read what it reports.
type HeadClients struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	events chan HeadEvent
	stderr *bytes.Buffer
	mu     sync.Mutex // guards stderr while the process runs
	done   chan error
}

// HeadEvent is one line share.mjs printed.
type HeadEvent struct {
	Ready  int         `json:"ready"`
	Head   uint64      `json:"head"`
	Left   int         `json:"left"`
	Report *HeadReport `json:"report"`
	err    error       // the process ended instead
}

// HeadReport is share.mjs's summary: the clients, and any that saw heads
// out of order or with a gap.
type HeadReport struct {
	Clients   int      `json:"clients"`
	Connected int      `json:"connected"`
	APIs      int      `json:"apis"`
	MinHeads  int      `json:"minHeads"`
	MaxHead   uint64   `json:"maxHead"`
	Problems  []string `json:"problems"`
}

// StartHeadClients starts share.mjs with clients clients, apis of them
// full ApiPromise instances, against url. It ends with ctx.
func StartHeadClients(ctx context.Context, url string, clients, apis int) (*HeadClients, error) {
	dir, err := E2EDir()
	if err != nil {
		return nil, err
	}
	budget := 120 * time.Second
	if d, ok := ctx.Deadline(); ok {
		budget = time.Until(d)
	}
	cmd := exec.CommandContext(ctx, "node", "share.mjs", url)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CLIENTS="+strconv.Itoa(clients), "APIS="+strconv.Itoa(apis),
		"TIMEOUT_MS="+strconv.FormatInt(budget.Milliseconds(), 10))
	cmd.WaitDelay = 5 * time.Second
	h := &HeadClients{cmd: cmd, events: make(chan HeadEvent, 1024), stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	cmd.Stderr = lockedWriter{&h.mu, h.stderr}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if h.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("rpctest: share.mjs: %w", err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ev HeadEvent
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				continue
			}
			h.events <- ev
		}
		err := cmd.Wait()
		h.events <- HeadEvent{err: fmt.Errorf("rpctest: share.mjs ended: %v\n%s", err, h.Stderr())}
		close(h.events)
		h.done <- err
	}()
	return h, nil
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// Stderr returns the tail of what the script wrote on stderr.
func (h *HeadClients) Stderr() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return tail(h.stderr.String(), 4000)
}

// Next returns the next event that match accepts, skipping others.
func (h *HeadClients) Next(ctx context.Context, match func(HeadEvent) bool) (HeadEvent, error) {
	for {
		select {
		case ev, ok := <-h.events:
			if !ok {
				return HeadEvent{}, fmt.Errorf("rpctest: share.mjs has ended\n%s", h.Stderr())
			}
			if ev.err != nil {
				return ev, ev.err
			}
			if match(ev) {
				return ev, nil
			}
		case <-ctx.Done():
			return HeadEvent{}, fmt.Errorf("rpctest: share.mjs: %w\n%s", ctx.Err(), h.Stderr())
		}
	}
}

// Command sends share.mjs a command line: "leave M", "report" or "exit".
func (h *HeadClients) Command(cmd string) error {
	_, err := io.WriteString(h.stdin, cmd+"\n")
	return err
}

// Wait sends "exit" and waits for the script to end.
func (h *HeadClients) Wait(ctx context.Context) error {
	h.Command("exit")
	h.stdin.Close()
	for range h.events { // drain so the reader can finish
	}
	select {
	case err := <-h.done:
		if err != nil {
			return fmt.Errorf("rpctest: share.mjs: %w\n%s", err, h.Stderr())
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// StartsResult is the output of e2e/starts.mjs.
type StartsResult struct {
	Starts    int `json:"starts"`
	ElapsedMs int `json:"elapsedMs"`
}

// RunStarts runs e2e/starts.mjs against url: ApiPromise instances that
// connect, become ready and disconnect, STARTS of them, CONCURRENCY at a
// time (env holds KEY=VALUE settings). Without a deadline, ctx gets 60
// seconds.
func RunStarts(ctx context.Context, url string, env ...string) (*StartsResult, error) {
	var res StartsResult
	if err := runScript(ctx, "starts.mjs", url, env, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// FollowResult is the output of e2e/follow.mjs.
type FollowResult struct {
	Runtime          *string  `json:"runtime"`
	HeaderBytes      int      `json:"headerBytes"`
	BodyLength       int      `json:"bodyLength"`
	MetadataVersions string   `json:"metadataVersions"`
	NewBlocks        int      `json:"newBlocks"`
	BestBlockChanged int      `json:"bestBlockChanged"`
	Finalized        int      `json:"finalized"`
	Unpinned         int      `json:"unpinned"`
	Events           []string `json:"events"`
	ElapsedMs        int      `json:"elapsedMs"`
}

// RunFollow runs e2e/follow.mjs against url: polkadot-api's
// substrate-client follows the chain with chainHead_v1_follow, runs header,
// body and call operations, unpins, waits for BLOCKS new blocks (env)
// and unfollows. Without a deadline, ctx gets 60 seconds.
func RunFollow(ctx context.Context, url string, env ...string) (*FollowResult, error) {
	var res FollowResult
	if err := runScript(ctx, "follow.mjs", url, env, &res); err != nil {
		return nil, err
	}
	return &res, nil
}
