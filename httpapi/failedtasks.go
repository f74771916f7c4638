package httpapi

import (
	"net/http"
	"strconv"

	bolt "go.etcd.io/bbolt"

	"github.com/seedscheduler/schedulerd/fsm"
)

// failedTaskRoutes registers the routes of this file. Failed tasks are
// written by the executor, never through the API: the routes have no PUT,
// PATCH or DELETE, which the resource answers with 405 and an Allow header.
func (s *Server) failedTaskRoutes(handle func(path string, res resource)) {
	handle("/api/v1/failed-tasks/", resource{auth: authUser, methods: map[string]http.HandlerFunc{
		"GET": s.read(s.listFailedTasks), "POST": s.onLeader(s.requeueFailedTasks)}})
	handle("/api/v1/failed-tasks/{id}/", resource{auth: authUser, methods: map[string]http.HandlerFunc{
		"GET": s.read(s.getFailedTask)}})
}

func failedTaskPath(id uint64) string {
	return "/api/v1/failed-tasks/" + strconv.FormatUint(id, 10) + "/"
}

// renderFailedTask is the contract's item, keys in its order.
func renderFailedTask(r *http.Request, t fsm.FailedTask) *orderedObject {
	return newObject().
		set("url", absURL(r, failedTaskPath(t.ID))).
		set("id", t.ID).
		set("schedule", absURL(r, schedulePath(t.ScheduleID))).
		set("task_id", t.TaskID).
		set("initiated_at", formatTime(t.InitiatedAt)).
		set("reason", t.Reason)
}

func (s *Server) listFailedTasks(w http.ResponseWriter, r *http.Request) {
	s.listTable(w, r, fsm.BFailedTasks, func(_, v []byte) (any, error) {
		t, err := fsm.DecodeFailedTask(v)
		return renderFailedTask(r, t), err
	})
}

func (s *Server) getFailedTask(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(r, "id")
	if !ok {
		writeError(w, errNotFound())
		return
	}
	var t fsm.FailedTask
	err := s.node.FSM().View(func(tx *bolt.Tx) (err error) {
		t, err = fsm.GetFailedTask(tx, id)
		return err
	})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, renderFailedTask(r, t))
}

// requeueFailedTasks: POST /api/v1/failed-tasks/ → 201
// {"requeued_failed_tasks": true}. The body is ignored (not even parsed, as
// in the original view). The answer is sent once the request to re-deliver
// is committed; the executor on the leader carries it out and finishes it.
func (s *Server) requeueFailedTasks(w http.ResponseWriter, r *http.Request) {
	if _, err := s.apply(w, r, fsm.CmdRequeueFailedTasks, fsm.RequeueFailedTasksCmd{RequestedAt: now()}); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, newObject().set("requeued_failed_tasks", true))
}
