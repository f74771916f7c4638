package executor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Outcome kinds of a delivery attempt (Result.Kind).
const (
	KindOK              = "ok"
	KindHTTPError       = "http_error"
	KindConnectionError = "connection_error"
	KindTimeout         = "timeout"
	// KindCancelled: the caller's context ended (leadership lost). The
	// attempt's outcome is unknown; the executor does not record it.
	KindCancelled = "cancelled"
)

// Sentinels wrapped by Result.Err, one per failure kind, so the kind can be
// derived from the error alone with errors.Is.
var (
	// ErrHTTPStatus: the endpoint answered with a status >= 400.
	ErrHTTPStatus = errors.New("http error")
	// ErrConnection: no response (refused, reset, DNS, TLS, denied address...).
	ErrConnection = errors.New("connection error")
	// ErrTimeout: the attempt did not complete within Config.Timeout.
	ErrTimeout = errors.New("timeout")
	// ErrCancelled: the caller's context ended; also wraps ctx.Err().
	ErrCancelled = errors.New("delivery cancelled")
	// ErrDeniedAddress: Config.DenyPrivate refused the resolved address.
	// Wrapped inside an ErrConnection error.
	ErrDeniedAddress = errors.New("refusing to connect to a non-public address")
)

// Seed metric names (the contract's "Helpers" section).
const (
	metricPrefix          = "scheduler.deliver_task."
	MetricConnectionError = metricPrefix + "connection_error.sum"
	MetricTimeout         = metricPrefix + "timeout.sum"
)

// Defaults of Config.
const (
	DefaultTimeout         = 30 * time.Second
	DefaultMaxResponseBody = 64 << 10
	DefaultMaxConnsPerHost = 64
	DefaultUserAgent       = "seed-scheduler"
)

// Transport settings that are not configurable.
const (
	idleConnTimeout     = 90 * time.Second
	tlsHandshakeTimeout = 10 * time.Second
	tcpKeepAlive        = 30 * time.Second
)

// Delivery is one attempt to fire a slot.
type Delivery struct {
	ScheduleID string
	Slot       time.Time       // the scheduled second (UTC)
	Attempt    int             // 1-based
	Endpoint   string          // absolute http(s) URL
	AuthToken  *string         // Authorization: Token <x> only when non-nil and non-empty
	Payload    json.RawMessage // sent as the body verbatim; empty → {}
}

// IdempotencyKey is "<schedule id>:<slot unix seconds>": the same for every
// attempt and every node that ever sends the slot.
func (d Delivery) IdempotencyKey() string {
	return d.ScheduleID + ":" + strconv.FormatInt(d.Slot.Unix(), 10)
}

// Result is the outcome of one attempt.
type Result struct {
	Status  int           // final HTTP status, 0 when no response
	Err     error         // nil when OK; wraps ErrHTTPStatus, ErrConnection, ErrTimeout or ErrCancelled
	Latency time.Duration // from the start of the attempt to the end of reading the response
	Kind    string        // KindOK, KindHTTPError, KindConnectionError, KindTimeout, KindCancelled
}

// OK reports whether the attempt succeeded (a final status below 400).
func (r Result) OK() bool { return r.Kind == KindOK }

// MetricName is the seed metric counting this failure:
// scheduler.deliver_task.connection_error.sum, scheduler.deliver_task.timeout.sum
// or scheduler.deliver_task.http_error.<status>.sum (for any status >= 400,
// as the original did, not only the five listed by GET /api/metrics/).
// It is "" for a success and for a cancelled attempt.
func (r Result) MetricName() string {
	switch r.Kind {
	case KindConnectionError:
		return MetricConnectionError
	case KindTimeout:
		return MetricTimeout
	case KindHTTPError:
		return metricPrefix + "http_error." + strconv.Itoa(r.Status) + ".sum"
	}
	return ""
}

// Config configures a Deliverer. Zero values take the defaults.
type Config struct {
	Timeout         time.Duration // per attempt, covering the whole exchange; default 30s
	MaxResponseBody int64         // response bytes read (for connection reuse) and discarded; default 64 KiB
	// DenyPrivate refuses to connect to loopback, private (RFC 1918,
	// fc00::/7), link-local, unspecified (incl. 0.0.0.0/8), multicast and
	// broadcast addresses. The check runs at dial time on the resolved IP
	// (net.Dialer.Control), so DNS rebinding cannot bypass it.
	DenyPrivate     bool
	UserAgent       string // "seed-scheduler/<version>"; default "seed-scheduler"
	MaxConnsPerHost int    // default 64; also the idle connections kept per host
	Logger          hclog.Logger
}

// Deliverer sends slot deliveries and webhook notifications over one shared
// HTTP client. It is safe for concurrent use.
type Deliverer struct {
	client    *http.Client
	transport *http.Transport
	timeout   time.Duration
	maxBody   int64
	userAgent string
	log       hclog.Logger
}

// NewDeliverer builds a Deliverer from cfg, filling in defaults.
func NewDeliverer(cfg Config) *Deliverer {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxResponseBody <= 0 {
		cfg.MaxResponseBody = DefaultMaxResponseBody
	}
	if cfg.MaxConnsPerHost <= 0 {
		cfg.MaxConnsPerHost = DefaultMaxConnsPerHost
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = DefaultUserAgent
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	dialer := &net.Dialer{KeepAlive: tcpKeepAlive} // bounded by the attempt's context
	if cfg.DenyPrivate {
		dialer.Control = denyPrivateControl
	}
	tr := &http.Transport{
		Proxy:               nil, // never an environment proxy by surprise
		DialContext:         dialer.DialContext,
		ForceAttemptHTTP2:   true,
		MaxConnsPerHost:     cfg.MaxConnsPerHost,
		MaxIdleConnsPerHost: cfg.MaxConnsPerHost,
		MaxIdleConns:        0, // no global bound; IdleConnTimeout reaps them
		IdleConnTimeout:     idleConnTimeout,
		TLSHandshakeTimeout: tlsHandshakeTimeout,
	}
	return &Deliverer{
		client: &http.Client{
			Transport: tr,
			// A 3xx is the final answer: redirects are not followed.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		transport: tr,
		timeout:   cfg.Timeout,
		maxBody:   cfg.MaxResponseBody,
		userAgent: cfg.UserAgent,
		log:       cfg.Logger,
	}
}

// Close closes idle connections. In-flight deliveries are not affected.
func (d *Deliverer) Close() { d.transport.CloseIdleConnections() }

// Deliver POSTs del.Payload to del.Endpoint with the contract's headers:
// Content-Type: application/json, Authorization: Token <token> (only for a
// non-empty token), User-Agent, Idempotency-Key: <schedule id>:<slot unix
// seconds>, X-Scheduler-Scheduled-At: <slot RFC 3339 UTC, seconds> and
// X-Scheduler-Attempt: <n>. Redirects are not followed (a 3xx is success).
// The per-attempt timeout covers connecting, sending and reading the
// response (up to MaxResponseBody). When ctx ends first the result is
// KindCancelled with Err wrapping ErrCancelled and ctx.Err().
func (d *Deliverer) Deliver(ctx context.Context, del Delivery) Result {
	body := []byte(del.Payload)
	if len(body) == 0 {
		body = []byte("{}")
	}
	h := make(http.Header, 6)
	h["Content-Type"] = []string{"application/json"}
	if del.AuthToken != nil && *del.AuthToken != "" {
		h["Authorization"] = []string{"Token " + *del.AuthToken}
	}
	h["Idempotency-Key"] = []string{del.IdempotencyKey()}
	h["X-Scheduler-Scheduled-At"] = []string{del.Slot.UTC().Truncate(time.Second).Format(time.RFC3339)}
	h["X-Scheduler-Attempt"] = []string{strconv.Itoa(del.Attempt)}
	res := d.post(ctx, del.Endpoint, body, h)
	d.log.Debug("delivery attempt", "schedule", del.ScheduleID, "slot", del.Slot.Unix(),
		"attempt", del.Attempt, "kind", res.Kind, "status", res.Status, "latency", res.Latency)
	return res
}

// DeliverWebhook POSTs a schedule.added style notification to target:
// Content-Type: application/json, Authorization: Token <token> when token is
// not "", User-Agent, and the body
//
//	{"hook":{"id":<hookID>,"event":<event>,"target":<target>},"data":<data>}
//
// with the keys in that order. data is already-encoded JSON (the schedule
// without auth_token) and is sent verbatim; empty data is sent as null.
func (d *Deliverer) DeliverWebhook(ctx context.Context, hookID uint64, event, target string, data json.RawMessage, token string) Result {
	body, err := webhookBody(hookID, event, target, data)
	if err != nil { // cannot happen for strings and integers; kept total
		return Result{Kind: KindConnectionError, Err: fmt.Errorf("%w: encoding webhook body: %w", ErrConnection, err)}
	}
	h := make(http.Header, 3)
	h["Content-Type"] = []string{"application/json"}
	if token != "" {
		h["Authorization"] = []string{"Token " + token}
	}
	res := d.post(ctx, target, body, h)
	d.log.Debug("webhook attempt", "hook", hookID, "event", event,
		"kind", res.Kind, "status", res.Status, "latency", res.Latency)
	return res
}

// webhookBody encodes the notification body with its keys in contract order.
func webhookBody(hookID uint64, event, target string, data json.RawMessage) ([]byte, error) {
	type hook struct {
		ID     uint64 `json:"id"`
		Event  string `json:"event"`
		Target string `json:"target"`
	}
	var buf bytes.Buffer
	buf.WriteString(`{"hook":`)
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(hook{hookID, event, target}); err != nil {
		return nil, err
	}
	buf.Truncate(buf.Len() - 1) // Encode's trailing newline
	buf.WriteString(`,"data":`)
	if len(data) == 0 {
		buf.WriteString("null")
	} else {
		buf.Write(data)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// post runs one attempt. It never panics: a panic below it is turned into a
// connection error so a delivery goroutine cannot take the leader down.
func (d *Deliverer) post(ctx context.Context, endpoint string, body []byte, h http.Header) (res Result) {
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			d.log.Error("panic during delivery", "endpoint", redact(endpoint), "panic", p, "stack", string(debug.Stack()))
			res = Result{Kind: KindConnectionError, Err: fmt.Errorf("%w: internal error: %v", ErrConnection, p)}
		}
		res.Latency = time.Since(start)
	}()
	if err := ctx.Err(); err != nil {
		return cancelled(err)
	}
	actx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()

	req, err := http.NewRequestWithContext(actx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return Result{Kind: KindConnectionError, Err: fmt.Errorf("%w: %w", ErrConnection, err)}
	}
	req.Header = h
	req.Header["User-Agent"] = []string{d.userAgent}

	// The Idempotency-Key header also makes the transport replay the request
	// on a fresh connection when a pooled one turns out to be dead.
	resp, err := d.client.Do(req)
	if err != nil {
		return d.classify(ctx, actx, err)
	}
	// Read (bounded) so the connection can be reused; a body longer than
	// the limit is cut and its connection closed. One byte past the limit is
	// asked for so that a body of exactly the limit reaches EOF (without EOF
	// the transport cannot reuse the connection). The status is the answer:
	// an error while reading the body does not change it.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, d.maxBody+1))
	_ = resp.Body.Close()
	if resp.StatusCode >= 400 {
		return Result{Status: resp.StatusCode, Kind: KindHTTPError,
			Err: fmt.Errorf("%w: POST %s: %s", ErrHTTPStatus, redact(endpoint), statusLine(resp.StatusCode))}
	}
	return Result{Status: resp.StatusCode, Kind: KindOK}
}

// classify turns a transport error into a Result. The caller's context is
// looked at first: its end means cancelled, whatever the transport said.
func (d *Deliverer) classify(parent, attempt context.Context, err error) Result {
	if perr := parent.Err(); perr != nil {
		return cancelled(perr)
	}
	var nerr net.Error
	if attempt.Err() != nil || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &nerr) && nerr.Timeout()) {
		return Result{Kind: KindTimeout, Err: fmt.Errorf("%w after %s: %w", ErrTimeout, d.timeout, err)}
	}
	return Result{Kind: KindConnectionError, Err: fmt.Errorf("%w: %w", ErrConnection, err)}
}

func cancelled(cause error) Result {
	return Result{Kind: KindCancelled, Err: fmt.Errorf("%w: %w", ErrCancelled, cause)}
}

func statusLine(code int) string {
	if t := http.StatusText(code); t != "" {
		return strconv.Itoa(code) + " " + t
	}
	return strconv.Itoa(code)
}

// redact hides a password in the URL's user info for messages and logs.
func redact(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		return endpoint
	}
	return u.Redacted()
}

// denyPrivateControl is the net.Dialer.Control of Config.DenyPrivate: it sees
// the resolved address of every connection just before connect(2).
func denyPrivateControl(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot parse dial address %q", ErrDeniedAddress, address)
	}
	if class := nonPublicClass(ap.Addr()); class != "" {
		return fmt.Errorf("%w: %s is %s", ErrDeniedAddress, ap.Addr().Unmap(), class)
	}
	return nil
}

var (
	thisNetwork4 = netip.MustParsePrefix("0.0.0.0/8")
	broadcast4   = netip.MustParseAddr("255.255.255.255")
)

// nonPublicClass names why ip is refused under DenyPrivate, or "" when it
// is allowed. IPv4-mapped IPv6 addresses are judged as IPv4.
func nonPublicClass(ip netip.Addr) string {
	ip = ip.WithZone("").Unmap()
	switch {
	case !ip.IsValid():
		return "invalid"
	case ip.IsUnspecified() || (ip.Is4() && thisNetwork4.Contains(ip)):
		return "unspecified"
	case ip.IsLoopback():
		return "loopback"
	case ip.IsPrivate():
		return "private"
	case ip.IsLinkLocalUnicast():
		return "link-local"
	case ip.IsMulticast(): // includes link- and interface-local multicast
		return "multicast"
	case ip == broadcast4:
		return "broadcast"
	}
	return ""
}
