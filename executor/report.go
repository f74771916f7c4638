package executor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Reporter settings.
const (
	reportQueueSize    = 1024
	reportPostTimeout  = 10 * time.Second
	reportDrainTimeout = 5 * time.Second
	reportMaxBody      = 64 << 10
)

// Reporter sends the seed delivery-error metrics to a configured metrics
// service: POST <metrics url>/metrics/ with basic auth and the body
// {"<metric name>": 1.0}. Report never blocks: names wait in a bounded queue
// that one background goroutine empties; when the queue is full the name is
// dropped and counted. A nil *Reporter is valid and does nothing, so callers
// need not check whether a metrics URL is configured.
type Reporter struct {
	endpoint     string
	user, pass   string
	useAuth      bool
	client       *http.Client
	log          hclog.Logger
	postTimeout  time.Duration
	drainTimeout time.Duration

	queue   chan string
	dropped atomic.Uint64
	closed  atomic.Bool

	stop      chan struct{} // closed by Close: drain, then return
	abort     context.CancelFunc
	ctx       context.Context // cancelled when draining takes too long
	done      chan struct{}   // closed when the goroutine has returned
	closeOnce sync.Once
}

// NewReporter starts a Reporter posting to metricsURL + "/metrics/". The
// credentials are username and password when username is not empty,
// otherwise the user info of metricsURL (which is never sent in the URL
// itself). It returns nil (a valid no-op Reporter) when metricsURL is empty
// or not an absolute http(s) URL; the latter is logged.
func NewReporter(metricsURL, username, password string, logger hclog.Logger) *Reporter {
	return newReporter(metricsURL, username, password, logger, reportQueueSize, reportPostTimeout, reportDrainTimeout)
}

func newReporter(metricsURL, username, password string, logger hclog.Logger, queueSize int, postTimeout, drainTimeout time.Duration) *Reporter {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	if strings.TrimSpace(metricsURL) == "" {
		return nil
	}
	endpoint, urlUser, urlPass, hasUser, err := metricsEndpoint(metricsURL)
	if err != nil {
		logger.Error("metrics reporting disabled: invalid metrics url", "error", err)
		return nil
	}
	r := &Reporter{
		endpoint:     endpoint,
		client:       newReportClient(),
		log:          logger,
		postTimeout:  postTimeout,
		drainTimeout: drainTimeout,
		queue:        make(chan string, queueSize),
		stop:         make(chan struct{}),
		done:         make(chan struct{}),
	}
	switch {
	case username != "":
		r.user, r.pass, r.useAuth = username, password, true
	case hasUser:
		r.user, r.pass, r.useAuth = urlUser, urlPass, true
	}
	r.ctx, r.abort = context.WithCancel(context.Background())
	go r.run()
	return r
}

// metricsEndpoint is the POST URL for metricsURL, without user info, and the
// user info it carried.
func metricsEndpoint(metricsURL string) (endpoint, user, pass string, hasUser bool, err error) {
	u, err := url.Parse(strings.TrimSpace(metricsURL))
	if err != nil {
		// The raw URL may carry a password: report only the reason.
		if uerr, ok := err.(*url.Error); ok {
			err = uerr.Err
		}
		return "", "", "", false, err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", "", "", false, &url.Error{Op: "parse", URL: u.Redacted(), Err: errNotHTTPURL}
	}
	if u.User != nil {
		user, hasUser = u.User.Username(), true
		pass, _ = u.User.Password()
		u.User = nil
	}
	u.Path = strings.TrimRight(u.Path, "/") + "/metrics/"
	u.RawPath = ""
	return u.String(), user, pass, hasUser, nil
}

var errNotHTTPURL = errors.New("not an absolute http(s) URL")

func newReportClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			ForceAttemptHTTP2:   true,
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     idleConnTimeout,
			TLSHandshakeTimeout: tlsHandshakeTimeout,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Report queues one count of the metric name. It never blocks; when the
// queue is full, or after Close, the name is dropped and counted.
func (r *Reporter) Report(name string) {
	if r == nil || name == "" {
		return
	}
	if r.closed.Load() {
		r.dropped.Add(1)
		return
	}
	select {
	case r.queue <- name:
	default:
		r.dropped.Add(1)
	}
}

// Dropped is the number of names never posted because the queue was full,
// Report came after Close, or Close gave up draining. (A post the metrics
// service rejects or that fails is logged, not counted.)
func (r *Reporter) Dropped() uint64 {
	if r == nil {
		return 0
	}
	return r.dropped.Load()
}

// Close stops accepting names, posts what is queued for up to 5 s, then
// abandons the rest (counted as dropped) and stops the goroutine. It waits
// for the goroutine and is idempotent.
func (r *Reporter) Close() {
	if r == nil {
		return
	}
	r.closeOnce.Do(func() {
		r.closed.Store(true)
		close(r.stop)
		t := time.NewTimer(r.drainTimeout)
		defer t.Stop()
		select {
		case <-r.done:
		case <-t.C:
			r.abort()
			<-r.done
		}
		r.abort()
		r.client.CloseIdleConnections()
	})
}

func (r *Reporter) run() {
	defer close(r.done)
	for {
		// Close wins over a ready queue so the drain bound holds.
		select {
		case <-r.stop:
			r.drain()
			return
		default:
		}
		select {
		case name := <-r.queue:
			r.post(name)
		case <-r.stop:
			r.drain()
			return
		}
	}
}

// drain posts what is queued until the queue is empty or Close gives up.
func (r *Reporter) drain() {
	for {
		if r.ctx.Err() != nil {
			r.dropped.Add(uint64(len(r.queue)))
			return
		}
		select {
		case name := <-r.queue:
			r.post(name)
		default:
			return
		}
	}
}

// post sends one metric. Failures are logged, not retried.
func (r *Reporter) post(name string) {
	ctx, cancel := context.WithTimeout(r.ctx, r.postTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.endpoint, bytes.NewReader(metricBody(name)))
	if err != nil {
		r.log.Warn("metric not reported", "metric", name, "error", err)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	if r.useAuth {
		req.SetBasicAuth(r.user, r.pass)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		if r.ctx.Err() != nil { // abandoned by Close
			r.dropped.Add(1)
		}
		r.log.Warn("metric not reported", "metric", name, "error", err)
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, reportMaxBody))
	_ = resp.Body.Close()
	if resp.StatusCode >= 400 {
		r.log.Warn("metric not reported", "metric", name, "status", resp.StatusCode)
	}
}

// metricBody is {"<name>": 1.0}, written as the original (Python json)
// wrote it, so the value stays a float for receivers that care.
func metricBody(name string) []byte {
	key, _ := json.Marshal(name) // a string always encodes
	b := make([]byte, 0, len(key)+8)
	b = append(b, '{')
	b = append(b, key...)
	b = append(b, ": 1.0}"...)
	return b
}
