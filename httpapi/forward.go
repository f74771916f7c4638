package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/seedscheduler/schedulerd/cluster"
)

// errForwardInDoubt: the leader received a forwarded write but no answer came
// back, so it may or may not have been applied. Never retried.
var errForwardInDoubt = errors.New("the leader did not answer; the write may or may not have been applied")

// hopHeaders are connection-scoped and never copied across a hop.
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// onLeader runs h on the leader. On a follower the request is forwarded to
// the leader and the leader's answer is relayed; while no leader is known
// the follower retries for up to the forward timeout, then answers 503. A
// retry happens only when the request certainly did not reach a leader's
// handler (connection refused, or the target said it is not the leader), so
// a write is never applied twice.
func (s *Server) onLeader(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := readBodyOnce(r)
		if err != nil {
			writeError(w, err)
			return
		}
		deadline := time.Now().Add(s.fwdWait)
		for attempt := 0; ; attempt++ {
			if s.node.IsLeader() {
				r.Body = io.NopCloser(bytes.NewReader(body))
				h(w, r)
				return
			}
			if r.Header.Get(headerForwardedBy) != "" {
				// Our sender thought we lead; let it find the real leader.
				writeError(w, cluster.ErrNotLeader)
				return
			}
			addr, err := s.node.LeaderAPIAddr()
			if err == nil {
				done, ferr := s.forward(w, r, addr, body)
				if done {
					return
				}
				err = ferr
			}
			if time.Now().After(deadline) || r.Context().Err() != nil {
				s.log.Debug("no leader to forward to", "path", r.URL.Path, "error", err)
				writeError(w, mapError(cluster.ErrLeaderNotFound))
				return
			}
			// Back off briefly: an election on a LAN takes a few hundred ms.
			t := time.NewTimer(min(time.Duration(attempt+1)*20*time.Millisecond, 200*time.Millisecond))
			select {
			case <-r.Context().Done():
				t.Stop()
			case <-t.C:
			}
		}
	}
}

// readBodyOnce reads the (at most 1 MiB) body so it can be replayed to the
// local handler or to a leader, possibly more than once.
func readBodyOnce(r *http.Request) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errBodyTooLarge()
		}
		return nil, &apiError{Status: http.StatusBadRequest, Detail: "Malformed request."}
	}
	if len(b) > maxBodyBytes {
		return nil, errBodyTooLarge()
	}
	return b, nil
}

// forward sends the request to the leader at addr. done reports whether a
// response was written; when it was not, the request certainly did not
// reach a leader's handler and may be retried. Requests go in a batch with
// the others this node is forwarding (batch.go), or alone over plain HTTP
// when the body is big or the leader does not take batches.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, addr string, body []byte) (done bool, err error) {
	header := forwardedHeader(r, s.node.ID())
	if s.batches.usable(addr, body) {
		res := s.batches.do(addr, &fwdItem{ctx: r.Context(), method: r.Method, uri: r.URL.RequestURI(), header: header, body: body})
		switch {
		case errors.Is(res.err, errBatchUnsupported):
			// Nothing was run: fall back to plain HTTP.
		case res.err != nil && !res.sent:
			return false, res.err
		case res.err != nil:
			writeError(w, res.err)
			return true, nil
		default:
			return s.relay(w, r, addr, res.status, res.header, res.body)
		}
	}

	ctx, cancel := context.WithTimeout(r.Context(), forwardTimeout)
	defer cancel()
	out, err := http.NewRequestWithContext(ctx, r.Method, "http://"+addr+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		writeError(w, fmt.Errorf("build forwarded request: %w", err))
		return true, nil
	}
	out.Header = header
	out.ContentLength = int64(len(body))
	resp, err := s.client.Do(out)
	if err != nil {
		if isDialError(err) {
			return false, fmt.Errorf("forward to leader at %s: %w", addr, err)
		}
		s.log.Warn("forwarded request got no answer", "leader", addr, "path", r.URL.Path, "error", err)
		writeError(w, fmt.Errorf("forward to %s: %w: %v", addr, errForwardInDoubt, err))
		return true, nil
	}
	defer resp.Body.Close()
	if isNotLeader(resp.StatusCode, resp.Header) {
		io.Copy(io.Discard, resp.Body)
		return false, fmt.Errorf("forward to %s: %w", addr, cluster.ErrNotLeader)
	}
	payload, err := io.ReadAll(resp.Body)
	if err != nil {
		writeError(w, fmt.Errorf("read forwarded answer from %s: %w: %v", addr, errForwardInDoubt, err))
		return true, nil
	}
	return s.relay(w, r, addr, resp.StatusCode, resp.Header, payload)
}

// isNotLeader: the answer of a node that refused the request without
// running it because it does not lead.
func isNotLeader(status int, h http.Header) bool {
	return status == http.StatusServiceUnavailable && h.Get(headerNotLeader) != ""
}

// forwardedHeader is the header of r as the leader gets it: hop-by-hop
// headers dropped, the forwarding node named, and the client's address,
// host and scheme recorded so that links in the answer point where the
// client looked.
func forwardedHeader(r *http.Request, nodeID string) http.Header {
	h := r.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	for _, hh := range hopHeaders {
		h.Del(hh)
	}
	h.Set(headerForwardedBy, nodeID)
	if h.Get("X-Forwarded-Host") == "" {
		h.Set("X-Forwarded-Host", r.Host)
	}
	if h.Get("X-Forwarded-Proto") == "" {
		proto := "http"
		if r.TLS != nil {
			proto = "https"
		}
		h.Set("X-Forwarded-Proto", proto)
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		if prior := h.Get("X-Forwarded-For"); prior != "" {
			host = prior + ", " + host
		}
		h.Set("X-Forwarded-For", host)
	}
	return h
}

// relay writes the leader's answer to the client. It does not wait for
// this node to apply the write (the node learns the commit with the
// leader's next append, up to the commit timeout later): it raises the
// floor instead, which the node's next local read, or a refused
// authentication, waits for (settle). A not-leader refusal is not relayed:
// the caller retries it.
func (s *Server) relay(w http.ResponseWriter, r *http.Request, addr string, status int, header http.Header, payload []byte) (bool, error) {
	if isNotLeader(status, header) {
		return false, fmt.Errorf("forward to %s: %w", addr, cluster.ErrNotLeader)
	}
	if idx, perr := strconv.ParseUint(header.Get(headerRaftIndex), 10, 64); perr == nil && idx > 0 {
		for {
			cur := s.floor.Load()
			if idx <= cur || s.floor.CompareAndSwap(cur, idx) {
				break
			}
		}
	}
	h := w.Header()
	for k, vs := range header {
		h[k] = vs
	}
	for _, hh := range hopHeaders {
		h.Del(hh)
	}
	h.Del("Content-Length")
	w.WriteHeader(status)
	w.Write(payload)
	return true, nil
}

// settleWait bounds how long a local read waits for the floor: a node cut
// off from the leader serves what it has (as any stale follower does; its
// /readyz says 503) rather than hanging every read.
const settleWait = 2 * time.Second

// settle waits until this node has applied every write it answered
// (relay), so that whoever wrote through this node reads it here, and a
// token or permission just granted through it is known here. It is a no-op
// on a node that is caught up, and on the leader, which applies a write
// before answering it.
func (s *Server) settle(r *http.Request) {
	floor := s.floor.Load()
	if floor == 0 || s.node.AppliedIndex() >= floor {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), settleWait)
	defer cancel()
	if err := s.node.WaitForApplied(ctx, floor); err != nil && r.Context().Err() == nil {
		s.log.Warn("serving a read before this node applied a write it answered", "index", floor, "error", err)
	}
}

// isDialError: the connection was never established, so nothing was sent.
func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return strings.Contains(err.Error(), "connection refused")
}

// read serves h from the local state, unless the client asked for
// ?consistency=strong: then the leader serves it after confirming its
// leadership and catching up with the commit index (linearizable).
func (s *Server) read(h http.HandlerFunc) http.HandlerFunc {
	strong := s.onLeader(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), s.fwdWait)
		defer cancel()
		if err := s.node.ReadBarrier(ctx); err != nil {
			writeError(w, err)
			return
		}
		h(w, r)
	})
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("consistency") == "strong" {
			strong(w, r)
			return
		}
		h(w, r)
	}
}

// applied records the raft index of a write on the response, for forwarding
// nodes.
func applied(w http.ResponseWriter, index uint64) {
	if index > 0 {
		w.Header().Set(headerRaftIndex, strconv.FormatUint(index, 10))
	}
}
