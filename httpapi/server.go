package httpapi

import (
	"crypto/sha256"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"
	"github.com/hashicorp/go-hclog"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/bcrypt"

	"github.com/seedscheduler/schedulerd/cluster"
	"github.com/seedscheduler/schedulerd/fsm"
)

// Headers of our own.
const (
	// headerServedBy names the node that executed the request.
	headerServedBy = "X-Scheduler-Served-By"
	// headerRaftIndex carries the raft index of a write, so the node that
	// forwarded it can wait until it has applied it too.
	headerRaftIndex = "X-Scheduler-Raft-Index"
	// headerForwardedBy marks a request forwarded by another node; such a
	// request is never forwarded again.
	headerForwardedBy = "X-Scheduler-Forwarded-By"
	// headerNotLeader marks a 503 from a node that refused a forwarded
	// request without applying anything, so the sender may retry it.
	headerNotLeader = "X-Scheduler-Not-Leader"
)

// Config wires a Server.
type Config struct {
	Node    *cluster.Node
	Logger  hclog.Logger
	Version string
	// BootstrapToken, when set, is required on bootstrap-expect
	// announcements (the cluster has no users yet to check tokens against).
	BootstrapToken string
	// ForwardTimeout bounds how long a follower keeps retrying to reach a
	// leader; 5 s by default.
	ForwardTimeout time.Duration
	// BatchesInFlight is how many batches of forwarded writes a follower
	// has on their way to the leader at once; 1 by default.
	BatchesInFlight int
}

// Server serves the API of one node.
type Server struct {
	node    *cluster.Node
	log     hclog.Logger
	version string
	bootTok string
	fwdWait time.Duration
	client  *http.Client
	batches *batcher
	handler http.Handler
	met     *metrics
	// floor is the highest raft index of a forwarded write this node has
	// answered: its local reads wait until it has applied that much
	// (read-your-writes on this node, see settle).
	floor atomic.Uint64
}

// New builds the router of a node.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.ForwardTimeout <= 0 {
		cfg.ForwardTimeout = 5 * time.Second
	}
	s := &Server{
		node: cfg.Node, log: cfg.Logger.Named("http"), version: cfg.Version, bootTok: cfg.BootstrapToken,
		fwdWait: cfg.ForwardTimeout,
		client: &http.Client{
			Transport: &http.Transport{
				Proxy:               nil,
				DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
				MaxIdleConns:        256,
				MaxIdleConnsPerHost: 256,
				IdleConnTimeout:     90 * time.Second,
			},
			// Redirects are the leader's answer to the client, not ours to follow.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	s.batches = newBatcher(s.client, func() string { _, key := s.node.ClusterIdentity(); return key }, cfg.BatchesInFlight, s.log)
	s.met = newMetrics(s.node, s.version)
	rt := newRouter()
	s.routes(rt)
	s.handler = withTrailingSlash(rt)
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(headerServedBy, s.node.ID())
	s.handler.ServeHTTP(w, r)
}

// NewHTTPServer wraps the handler with the timeouts a public listener needs.
// The write timeout leaves room for a write forwarded during an election.
func (s *Server) NewHTTPServer() *http.Server {
	return &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          s.log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
}

func (s *Server) routes(rt *mux.Router) {
	a := fsmAuth{s.node.FSM()}
	handle := func(path string, res resource) { rt.Handle(path, s.met.instrument(path, res.handler(a, s.settle))) }

	handle("/healthz/", resource{auth: authNone, methods: map[string]http.HandlerFunc{"GET": s.healthz}})
	handle("/readyz/", resource{auth: authNone, methods: map[string]http.HandlerFunc{"GET": s.readyz}})

	handle("/api/token-auth/", resource{auth: authNone, methods: map[string]http.HandlerFunc{"POST": s.onLeader(s.tokenAuth)}})
	handle("/api/v1/user/token/", resource{auth: authAdmin, methods: map[string]http.HandlerFunc{"POST": s.onLeader(s.issueToken)}})
	handle("/api/v1/user/", resource{auth: authUser, methods: map[string]http.HandlerFunc{"GET": s.read(s.listUsers)}})
	handle("/api/v1/user/{id}/", resource{auth: authUser, methods: map[string]http.HandlerFunc{"GET": s.read(s.getUser)}})
	handle("/api/v1/group/", resource{auth: authUser, methods: map[string]http.HandlerFunc{"GET": s.read(s.listGroups)}})
	handle("/api/v1/group/{id}/", resource{auth: authUser, methods: map[string]http.HandlerFunc{"GET": s.read(s.getGroup)}})

	handle("/api/v1/schedule/", resource{auth: authUser, methods: map[string]http.HandlerFunc{
		"GET": s.read(s.listSchedules), "POST": s.onLeader(s.createSchedule)}})
	handle("/api/v1/schedule/{id}/", resource{auth: authUser, methods: map[string]http.HandlerFunc{
		"GET": s.read(s.getSchedule), "PUT": s.onLeader(s.updateSchedule(true)),
		"PATCH": s.onLeader(s.updateSchedule(false)), "DELETE": s.onLeader(s.deleteSchedule)}})

	handle("/api/v1/schedule/{id}/runs/", resource{auth: authUser, methods: map[string]http.HandlerFunc{"GET": s.read(s.listRuns)}})
	s.webhookRoutes(handle)
	s.failedTaskRoutes(handle)
	s.helperRoutes(handle)
	s.userAdminRoutes(handle)

	handle("/api/v1/cluster/", resource{auth: authAdmin, methods: map[string]http.HandlerFunc{"GET": s.read(s.clusterStatus)}})
	handle("/api/v1/cluster/digest/", resource{auth: authAdmin, methods: map[string]http.HandlerFunc{"GET": s.clusterDigest}})
	// Join authenticates itself: an admin token or the member key.
	handle(cluster.JoinPath, resource{auth: authNone, methods: map[string]http.HandlerFunc{"POST": s.memberOrAdmin(s.onLeader(s.join))}})
	// Batches of writes forwarded by members; the cluster key admits them.
	handle(forwardBatchPath, resource{auth: authNone, methods: map[string]http.HandlerFunc{"POST": s.forwardBatch}})
	handle(cluster.NotifyPath, resource{auth: authNone, methods: map[string]http.HandlerFunc{"POST": s.notify}})
	handle("/api/v1/cluster/{node}/", resource{auth: authAdmin, methods: map[string]http.HandlerFunc{"DELETE": s.onLeader(s.removeNode)}})
}

// fsmAuth authenticates against the replicated users and tokens.
type fsmAuth struct{ f *fsm.FSM }

func (a fsmAuth) TokenUser(key string) (Principal, bool, error) {
	d := sha256.Sum256([]byte(key))
	return a.lookup(func(tx *bolt.Tx) (fsm.User, error) { return fsm.UserByTokenDigest(tx, d[:]) })
}

func (a fsmAuth) PasswordUser(username, password string) (Principal, bool, error) {
	p, ok, hash, err := a.lookupWithHash(func(tx *bolt.Tx) (fsm.User, error) { return fsm.UserByUsername(tx, username) })
	if err != nil || !ok {
		return p, false, err
	}
	if hash == "" || bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil {
		return Principal{}, false, nil
	}
	return p, true, nil
}

func (a fsmAuth) lookup(get func(*bolt.Tx) (fsm.User, error)) (Principal, bool, error) {
	p, ok, _, err := a.lookupWithHash(get)
	return p, ok, err
}

func (a fsmAuth) lookupWithHash(get func(*bolt.Tx) (fsm.User, error)) (Principal, bool, string, error) {
	var u fsm.User
	err := a.f.View(func(tx *bolt.Tx) error {
		var err error
		u, err = get(tx)
		return err
	})
	if errors.Is(err, fsm.ErrNotFound) {
		return Principal{}, false, "", nil
	}
	if err != nil {
		return Principal{}, false, "", err
	}
	return Principal{UserID: u.ID, Username: u.Username, IsAdmin: u.IsAdmin}, true, u.PasswordHash, nil
}
