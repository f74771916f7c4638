package httpapi

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/seedscheduler/schedulerd/cluster"
)

// Forwarded writes travel to the leader in batches: every request that a
// follower forwards while an earlier batch is on its way joins the next one,
// and the leader runs each through its ordinary handler chain (auth,
// validation, raft.Apply, rendering) concurrently, so the whole batch
// usually commits as one or two raft batches. One HTTP exchange between the
// nodes then carries tens of writes; see DESIGN.md for the measurements.

const (
	// forwardBatchPath is the leader's internal endpoint for batches. Only
	// members (the cluster key) may call it.
	forwardBatchPath = "/api/v1/cluster/forward/"
	// batchContentType marks a batch answer; anything else from the leader
	// (an older node without the route) means nothing was run.
	batchContentType = "application/x-scheduler-batch"
	// batchWireVersion is the first byte of every batch and answer.
	batchWireVersion = 1
	// maxBatchItems and maxBatchBytes bound one batch; a request whose body
	// is over maxBatchedBody goes alone over plain HTTP, so that a big body
	// never delays the small writes batched with it.
	maxBatchItems  = 256
	maxBatchBytes  = 4 << 20
	maxBatchedBody = 64 << 10
	// maxBatchWire bounds what the leader reads: a full batch plus headers.
	maxBatchWire = 2*maxBatchBytes + 1<<20
	// defaultBatchesInFlight is how many batches a follower has on their way
	// to the leader at once. More overlap the round trips but split the
	// queue into smaller batches; on two shared cores one in flight cost the
	// least CPU per write at the same throughput (DESIGN.md).
	defaultBatchesInFlight = 1
	// batchUnsupportedFor is how long a follower sends plain requests to a
	// leader that did not know the batch route (a rolling upgrade).
	batchUnsupportedFor = 30 * time.Second
	// forwardTimeout bounds one exchange with the leader.
	forwardTimeout = 30 * time.Second
)

// errBatchUnsupported: the leader answered the batch without running any of
// it (no such route, or it refused the member key); the requests go over
// plain HTTP instead.
var errBatchUnsupported = errors.New("the leader does not take batched writes")

// fwdItem is one forwarded request waiting in a batch.
type fwdItem struct {
	ctx    context.Context
	method string
	uri    string
	header http.Header
	body   []byte
	done   chan fwdResult // buffered: the sender never blocks on it
}

// fwdResult is the leader's answer to one item, or why there is none. sent
// tells whether the request may have reached a leader's handler: when it is
// false the request may be retried.
type fwdResult struct {
	status int
	header http.Header
	body   []byte
	err    error
	sent   bool
}

// batcher coalesces the forwarded requests of one node, per leader address.
type batcher struct {
	client   *http.Client
	key      func() string // this cluster's member key, "" before it exists
	inFlight int
	log      logger

	mu     sync.Mutex
	queues map[string]*batchQueue
}

// logger is the part of hclog the batcher uses.
type logger interface {
	Warn(msg string, args ...any)
}

type batchQueue struct {
	addr     string
	pending  []*fwdItem
	inFlight int
	// plainUntil: the leader at addr did not know the batch route.
	plainUntil time.Time
}

func newBatcher(client *http.Client, key func() string, inFlight int, log logger) *batcher {
	if inFlight <= 0 {
		inFlight = defaultBatchesInFlight
	}
	return &batcher{client: client, key: key, inFlight: inFlight, log: log, queues: map[string]*batchQueue{}}
}

// usable reports whether a request with this body may be batched to addr.
func (b *batcher) usable(addr string, body []byte) bool {
	if len(body) > maxBatchedBody {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.queues[addr]
	return q == nil || time.Now().After(q.plainUntil)
}

// do queues it for the leader at addr and waits for its answer.
func (b *batcher) do(addr string, it *fwdItem) fwdResult {
	it.done = make(chan fwdResult, 1)
	b.mu.Lock()
	q := b.queues[addr]
	if q == nil {
		q = &batchQueue{addr: addr}
		b.queues[addr] = q
	}
	q.pending = append(q.pending, it)
	if q.inFlight < b.inFlight {
		// No timer: a batch leaves as soon as a slot is free, so a lone
		// write waits for nothing and a busy follower sends big batches.
		q.inFlight++
		batch := q.take()
		b.mu.Unlock()
		go b.run(q, batch)
	} else {
		b.mu.Unlock()
	}
	select {
	case res := <-it.done:
		return res
	case <-it.ctx.Done():
		// The client is gone; if the item was sent its answer is dropped.
		return fwdResult{err: fmt.Errorf("wait for the leader's answer: %w: %v", errForwardInDoubt, it.ctx.Err()), sent: true}
	}
}

// take removes the next batch from the queue; b.mu is held. Items whose
// client already left are answered at once instead of sent.
func (q *batchQueue) take() []*fwdItem {
	var batch []*fwdItem
	size, n := 0, 0
	for n < len(q.pending) && len(batch) < maxBatchItems {
		it := q.pending[n]
		if it.ctx.Err() != nil {
			it.done <- fwdResult{err: it.ctx.Err()}
			n++
			continue
		}
		if len(batch) > 0 && size+len(it.body) > maxBatchBytes {
			break
		}
		size += len(it.body)
		batch = append(batch, it)
		n++
	}
	rest := copy(q.pending, q.pending[n:])
	clear(q.pending[rest:])
	q.pending = q.pending[:rest]
	return batch
}

// run sends batch, then whatever queued meanwhile, until the queue is empty.
func (b *batcher) run(q *batchQueue, batch []*fwdItem) {
	for {
		if len(batch) > 0 {
			b.send(q, batch)
		}
		b.mu.Lock()
		if len(q.pending) == 0 {
			q.inFlight--
			b.mu.Unlock()
			return
		}
		batch = q.take()
		b.mu.Unlock()
	}
}

func answerAll(batch []*fwdItem, res fwdResult) {
	for _, it := range batch {
		it.done <- res
	}
}

// send makes one exchange with the leader and answers every item of batch.
func (b *batcher) send(q *batchQueue, batch []*fwdItem) {
	key := b.key()
	if key == "" {
		answerAll(batch, fwdResult{err: errBatchUnsupported})
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), forwardTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+q.addr+forwardBatchPath, bytes.NewReader(encodeBatch(batch)))
	if err != nil {
		answerAll(batch, fwdResult{err: fmt.Errorf("build batch for %s: %w", q.addr, err)})
		return
	}
	req.Header.Set("Content-Type", batchContentType)
	req.Header.Set(cluster.KeyHeader, key)
	resp, err := b.client.Do(req)
	if err != nil {
		if isDialError(err) {
			answerAll(batch, fwdResult{err: fmt.Errorf("forward to leader at %s: %w", q.addr, err)})
			return
		}
		b.log.Warn("forwarded batch got no answer", "leader", q.addr, "requests", len(batch), "error", err)
		answerAll(batch, fwdResult{err: fmt.Errorf("forward to %s: %w: %v", q.addr, errForwardInDoubt, err), sent: true})
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != batchContentType {
		// The batch handler runs nothing unless it answers 200, and a node
		// without the route answers 404: either way nothing was applied.
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get(headerNotLeader) != "" {
			answerAll(batch, fwdResult{err: fmt.Errorf("forward to %s: %w", q.addr, cluster.ErrNotLeader)})
			return
		}
		b.log.Warn("leader refused a forwarded batch; forwarding one by one", "leader", q.addr, "status", resp.StatusCode)
		b.mu.Lock()
		q.plainUntil = time.Now().Add(batchUnsupportedFor)
		b.mu.Unlock()
		answerAll(batch, fwdResult{err: errBatchUnsupported})
		return
	}
	payload, err := io.ReadAll(resp.Body)
	if err == nil {
		err = decodeAnswers(payload, batch)
	}
	if err != nil {
		// Every item may have been applied.
		answerAll(batch, fwdResult{err: fmt.Errorf("read forwarded answers from %s: %w: %v", q.addr, errForwardInDoubt, err), sent: true})
	}
}

// forwardBatch: POST /api/v1/cluster/forward/ on the leader. It answers
// anything but 200 only before it has run any request of the batch.
func (s *Server) forwardBatch(w http.ResponseWriter, r *http.Request) {
	if !s.node.CheckMemberKey(r.Header.Get(cluster.KeyHeader)) {
		writeError(w, errForbidden())
		return
	}
	if !s.node.IsLeader() {
		writeError(w, cluster.ErrNotLeader)
		return
	}
	wire, err := io.ReadAll(io.LimitReader(r.Body, maxBatchWire+1))
	if err != nil {
		writeError(w, &apiError{Status: http.StatusBadRequest, Detail: "Malformed request."})
		return
	}
	reqs, err := decodeBatch(r, wire)
	if err != nil {
		writeError(w, &apiError{Status: http.StatusBadRequest, Detail: "malformed forwarded batch: " + err.Error()})
		return
	}
	recs := make([]itemRecorder, len(reqs))
	var wg sync.WaitGroup
	for i, req := range reqs {
		recs[i].header = http.Header{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.ServeHTTP(&recs[i], req)
		}()
	}
	wg.Wait()
	out := encodeAnswers(recs)
	w.Header().Set("Content-Type", batchContentType)
	w.WriteHeader(http.StatusOK)
	w.Write(out)
}

// itemRecorder is the ResponseWriter of one request of a batch. Like
// net/http it fixes the headers when the status is written.
type itemRecorder struct {
	header http.Header
	sent   http.Header
	status int
	body   bytes.Buffer
}

func (rr *itemRecorder) Header() http.Header { return rr.header }

func (rr *itemRecorder) WriteHeader(code int) {
	if rr.status != 0 {
		return
	}
	rr.status = code
	rr.sent = rr.header.Clone()
}

func (rr *itemRecorder) Write(p []byte) (int, error) {
	if rr.status == 0 {
		rr.WriteHeader(http.StatusOK)
	}
	return rr.body.Write(p)
}

// The wire format, in both directions: a version byte, a count, then per
// item length-prefixed fields (uvarint lengths). A request is method, URI,
// header lines and body; an answer is status, header lines and body. It is
// internal to the cluster: members of one version talk to each other, and a
// node that does not know it answers 404, which makes the sender fall back.

func encodeBatch(batch []*fwdItem) []byte {
	n := 16
	for _, it := range batch {
		n += len(it.method) + len(it.uri) + len(it.body) + 64
		for k, vs := range it.header {
			for _, v := range vs {
				n += len(k) + len(v) + 4
			}
		}
	}
	w := wireWriter{b: make([]byte, 0, n)}
	w.b = append(w.b, batchWireVersion)
	w.uvarint(uint64(len(batch)))
	for _, it := range batch {
		w.str(it.method)
		w.str(it.uri)
		w.header(it.header)
		w.bytes(it.body)
	}
	return w.b
}

// decodeBatch rebuilds the requests as the leader's handlers expect them:
// Host and RemoteAddr are those of the batch (the forwarding node), as they
// were when each request came over its own connection.
func decodeBatch(r *http.Request, wire []byte) ([]*http.Request, error) {
	if len(wire) > maxBatchWire {
		return nil, errors.New("too large")
	}
	rd := wireReader{b: wire}
	if v := rd.byte(); v != batchWireVersion {
		return nil, fmt.Errorf("wire version %d", v)
	}
	n := rd.uvarint()
	if n > maxBatchItems {
		return nil, fmt.Errorf("%d requests", n)
	}
	reqs := make([]*http.Request, 0, n)
	for range n {
		method, uri, header, body := rd.str(), rd.str(), rd.header(), rd.bytes()
		if rd.err != nil {
			return nil, rd.err
		}
		if len(uri) == 0 || uri[0] != '/' {
			return nil, fmt.Errorf("request URI %q", uri)
		}
		req, err := http.NewRequestWithContext(r.Context(), method, "http://"+r.Host+uri, bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("request %s %q: %w", method, uri, err)
		}
		if req.URL.Path == forwardBatchPath || req.URL.Path+"/" == forwardBatchPath {
			return nil, errors.New("nested batch")
		}
		req.Header = header
		req.RequestURI = uri
		req.RemoteAddr = r.RemoteAddr
		req.TLS = r.TLS
		reqs = append(reqs, req)
	}
	if rd.err == nil && len(rd.b) > 0 {
		return nil, errors.New("trailing bytes")
	}
	return reqs, rd.err
}

func encodeAnswers(recs []itemRecorder) []byte {
	n := 16
	for i := range recs {
		n += recs[i].body.Len() + 256
	}
	w := wireWriter{b: make([]byte, 0, n)}
	w.b = append(w.b, batchWireVersion)
	w.uvarint(uint64(len(recs)))
	for i := range recs {
		rr := &recs[i]
		if rr.status == 0 { // the handler wrote nothing
			rr.WriteHeader(http.StatusOK)
		}
		w.uvarint(uint64(rr.status))
		w.header(rr.sent)
		w.bytes(rr.body.Bytes())
	}
	return w.b
}

// decodeAnswers hands each item its answer; on an error none was handed.
func decodeAnswers(wire []byte, batch []*fwdItem) error {
	rd := wireReader{b: wire}
	if v := rd.byte(); v != batchWireVersion {
		return fmt.Errorf("wire version %d", v)
	}
	if n := rd.uvarint(); n != uint64(len(batch)) {
		return fmt.Errorf("%d answers to %d requests", n, len(batch))
	}
	res := make([]fwdResult, len(batch))
	for i := range batch {
		status := rd.uvarint()
		res[i] = fwdResult{status: int(status), header: rd.header(), body: rd.bytes(), sent: true}
		if rd.err == nil && (status < 100 || status > 999) {
			rd.err = fmt.Errorf("status %d", status)
		}
	}
	if rd.err == nil && len(rd.b) > 0 {
		rd.err = errors.New("trailing bytes")
	}
	if rd.err != nil {
		return rd.err
	}
	for i, it := range batch {
		it.done <- res[i]
	}
	return nil
}

type wireWriter struct{ b []byte }

func (w *wireWriter) uvarint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }

func (w *wireWriter) str(s string) {
	w.uvarint(uint64(len(s)))
	w.b = append(w.b, s...)
}

func (w *wireWriter) bytes(p []byte) {
	w.uvarint(uint64(len(p)))
	w.b = append(w.b, p...)
}

func (w *wireWriter) header(h http.Header) {
	n := 0
	for _, vs := range h {
		n += len(vs)
	}
	w.uvarint(uint64(n))
	for k, vs := range h {
		for _, v := range vs {
			w.str(k)
			w.str(v)
		}
	}
}

// wireReader reads what wireWriter wrote; the first error sticks and every
// later read returns zero values.
type wireReader struct {
	b   []byte
	err error
}

var errShortWire = errors.New("truncated")

func (r *wireReader) byte() byte {
	if r.err != nil || len(r.b) == 0 {
		r.fail(errShortWire)
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *wireReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail(errShortWire)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *wireReader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) {
		r.fail(errShortWire)
		return nil
	}
	p := r.b[:n:n]
	r.b = r.b[n:]
	return p
}

func (r *wireReader) str() string { return string(r.bytes()) }

func (r *wireReader) header() http.Header {
	n := r.uvarint()
	// Each line takes at least two bytes, which bounds the map on bad input.
	if r.err != nil || n > uint64(len(r.b))/2 {
		r.fail(errShortWire)
		return nil
	}
	h := make(http.Header, n)
	for range n {
		k, v := r.str(), r.str()
		if r.err != nil {
			return nil
		}
		h[k] = append(h[k], v)
	}
	return h
}

func (r *wireReader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}
