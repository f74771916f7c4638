package httpapi

import (
	"errors"
	"net/http"
	"runtime/debug"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/seedscheduler/schedulerd/cluster"
	"github.com/seedscheduler/schedulerd/fsm"
)

// availableMetrics is the contract's list, in its order.
var availableMetrics = []string{
	"schedules.created.sum",
	"scheduler.deliver_task.connection_error.sum",
	"scheduler.deliver_task.http_error.400.sum",
	"scheduler.deliver_task.http_error.401.sum",
	"scheduler.deliver_task.http_error.403.sum",
	"scheduler.deliver_task.http_error.404.sum",
	"scheduler.deliver_task.http_error.500.sum",
	"scheduler.deliver_task.timeout.sum",
}

// healthLibraries are the main dependencies whose versions GET /api/health/
// reports.
var healthLibraries = []string{
	"github.com/hashicorp/raft",
	"github.com/hashicorp/raft-boltdb/v2",
	"go.etcd.io/bbolt",
	"github.com/gorilla/mux",
	"github.com/hashicorp/go-hclog",
}

// helperRoutes registers the routes of this file.
func (s *Server) helperRoutes(handle func(path string, res resource)) {
	handle("/api/v1/", resource{auth: authUser, methods: map[string]http.HandlerFunc{"GET": s.read(s.apiRoot)}})
	// POST /api/metrics/ writes nothing, so any node answers it.
	handle("/api/metrics/", resource{auth: authUser, methods: map[string]http.HandlerFunc{
		"GET": s.read(s.metricsAvailable), "POST": s.scheduleMetrics}})
	handle("/api/health/", resource{auth: authUser, methods: map[string]http.HandlerFunc{"GET": s.read(s.health)}})
	// Node-local by nature: never forwarded, even with ?consistency=strong.
	handle("/metrics/", resource{auth: authNone, methods: map[string]http.HandlerFunc{"GET": s.prometheusMetrics}})
}

// apiRoot: GET /api/v1/ → the list URLs.
func (s *Server) apiRoot(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, newObject().
		set("user", absURL(r, "/api/v1/user/")).
		set("group", absURL(r, "/api/v1/group/")).
		set("schedule", absURL(r, "/api/v1/schedule/")).
		set("webhook", absURL(r, "/api/v1/webhook/")).
		set("failed-tasks", absURL(r, "/api/v1/failed-tasks/")))
}

// metricsAvailable: GET /api/metrics/.
func (s *Server) metricsAvailable(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, newObject().set("metrics_available", availableMetrics))
}

// scheduleMetrics: POST /api/metrics/ → 201. The original queued a task
// that pushed the scheduled metrics; delivery errors are reported as they
// happen here, so there is nothing to start. The body is ignored.
func (s *Server) scheduleMetrics(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusCreated, newObject().set("scheduled_metrics_initiated", true))
}

// health: GET /api/health/. 503 with "up": false when the replicated state
// cannot be read.
func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	dbErr := s.node.FSM().View(func(tx *bolt.Tx) error {
		if tx.Bucket(fsm.BSchedules) == nil {
			return errors.New("schedules table missing")
		}
		return nil
	})
	if dbErr != nil {
		s.log.Warn("health check: state not readable", "error", dbErr)
	}
	// The node's own fields are filled in even when Status fails.
	st, _ := s.node.Status()
	status, body := s.healthBody(st, dbErr)
	writeJSON(w, status, body)
}

func (s *Server) healthBody(st cluster.Status, dbErr error) (int, *orderedObject) {
	status, up, db := http.StatusOK, true, "Accessible"
	if dbErr != nil {
		status, up, db = http.StatusServiceUnavailable, false, "Not accessible"
	}
	result := newObject().
		set("database", db).
		set("version", s.version).
		set("libraries", libraryVersions()).
		set("cluster", newObject().
			set("node_id", st.NodeID).
			set("state", st.State).
			set("leader_id", st.LeaderID).
			set("applied_index", st.AppliedIndex))
	return status, newObject().set("up", up).set("result", result)
}

// libraryVersions reads the versions of healthLibraries from the build
// information of the process, once.
var libraryVersions = sync.OnceValue(func() *orderedObject {
	bi, _ := debug.ReadBuildInfo()
	return libraryVersionsFrom(bi)
})

// libraryVersionsFrom picks healthLibraries out of bi, honouring replace
// directives. A module missing from it is "unknown": test binaries, for
// instance, carry no dependency list.
func libraryVersionsFrom(bi *debug.BuildInfo) *orderedObject {
	found := map[string]string{}
	if bi != nil {
		for _, d := range bi.Deps {
			v := d.Version
			if d.Replace != nil && d.Replace.Version != "" {
				v = d.Replace.Version
			}
			found[d.Path] = v
		}
	}
	out := newObject()
	for _, name := range healthLibraries {
		v := found[name]
		if v == "" {
			v = "unknown"
		}
		out.set(name, v)
	}
	return out
}
