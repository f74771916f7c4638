package httpapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/seedscheduler/schedulerd/cluster"
	"github.com/seedscheduler/schedulerd/fsm"
)

// retryAfterSeconds is what a client should wait after a 503: an election
// on a LAN finishes well within it.
const retryAfterSeconds = "1"

// mapError is the one place where errors of the lower layers become status
// codes. Anything unrecognised is a 500 that names the failure.
func mapError(err error) *apiError {
	unavailable := func(detail string) *apiError {
		return &apiError{Status: http.StatusServiceUnavailable, Detail: detail,
			Header: http.Header{"Retry-After": {retryAfterSeconds}}}
	}
	switch {
	case err == nil:
		return &apiError{Status: http.StatusInternalServerError, Detail: "internal error: <nil>"}
	case errors.Is(err, cluster.ErrNotLeader):
		// Nothing was applied: a node that forwarded this may retry it.
		ae := unavailable("no cluster leader")
		ae.Header.Set(headerNotLeader, "1")
		return ae
	case errors.Is(err, cluster.ErrLeaderNotFound):
		return unavailable("no cluster leader")
	case errors.Is(err, cluster.ErrLeadershipLost), errors.Is(err, cluster.ErrShutdown),
		errors.Is(err, cluster.ErrTimeout), errors.Is(err, errForwardInDoubt):
		return unavailable(err.Error())
	case errors.Is(err, fsm.ErrWaitAborted), errors.Is(err, context.DeadlineExceeded):
		return unavailable(err.Error())
	case errors.Is(err, fsm.ErrFailed):
		return &apiError{Status: http.StatusInternalServerError, Detail: err.Error()}
	case errors.Is(err, fsm.ErrNotFound), errors.Is(err, cluster.ErrUnknownNode):
		return errNotFound()
	case errors.Is(err, fsm.ErrConflict), errors.Is(err, cluster.ErrClusterMismatch), errors.Is(err, cluster.ErrHasState):
		return &apiError{Status: http.StatusConflict, Detail: err.Error()}
	}
	return &apiError{Status: http.StatusInternalServerError, Detail: "internal error: " + err.Error()}
}
