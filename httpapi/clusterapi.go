package httpapi

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/seedscheduler/schedulerd/cluster"
)

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, newObject().set("status", "ok").set("node_id", s.node.ID()))
}

// readyz is the load balancer's probe: ready once this node knows a leader
// and has applied the log up to the commit index it knows.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	if err := s.node.Ready(ctx); err != nil {
		writeDetail(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
		return
	}
	leader, _ := s.node.Leader()
	writeJSON(w, http.StatusOK, newObject().set("status", "ready").set("node_id", s.node.ID()).
		set("leader_id", leader).set("applied_index", s.node.FSM().AppliedIndex()))
}

// clusterStatus: GET /api/v1/cluster/.
func (s *Server) clusterStatus(w http.ResponseWriter, r *http.Request) {
	st, err := s.node.Status()
	if err != nil {
		writeError(w, err)
		return
	}
	nodes := make([]any, 0, len(st.Members))
	for _, m := range st.Members {
		nodes = append(nodes, newObject().set("id", m.ID).set("raft_addr", m.RaftAddr).set("api_addr", m.APIAddr).
			set("voter", m.Voter).set("leader", m.Leader))
	}
	id, _ := s.node.ClusterIdentity()
	writeJSON(w, http.StatusOK, newObject().set("cluster_id", id).set("node_id", st.NodeID).set("state", st.State).
		set("leader_id", st.LeaderID).set("term", st.Term).set("commit_index", st.CommitIndex).
		set("applied_index", st.AppliedIndex).set("nodes", nodes))
}

// memberOrAdmin admits a request carrying this cluster's member key (a node
// re-registering itself) or an admin's credentials (an operator or a new
// node started with the admin token).
func (s *Server) memberOrAdmin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if key := r.Header.Get(cluster.KeyHeader); key != "" && s.node.CheckMemberKey(key) {
			h(w, r)
			return
		}
		p, err := authenticate(r, fsmAuth{s.node.FSM()})
		switch {
		case err != nil:
			writeError(w, err)
		case p == nil:
			writeError(w, errNotAuthenticated())
		case !p.IsAdmin:
			writeError(w, errForbidden())
		default:
			h(w, r)
		}
	}
}

func decodeJoin(w http.ResponseWriter, r *http.Request) (cluster.JoinRequest, bool) {
	var req cluster.JoinRequest
	body, err := decodeBody(r, false)
	if err != nil {
		writeError(w, err)
		return req, false
	}
	fe := fieldErrors{}
	req.ID = requiredString(fe, body, "id")
	req.RaftAddr = requiredString(fe, body, "raft_addr")
	req.APIAddr = requiredString(fe, body, "api_addr")
	if raw, ok := body["cluster_id"]; ok && string(raw) != "null" {
		if json.Unmarshal(raw, &req.ClusterID) != nil {
			fe.add("cluster_id", "Not a valid string.")
		}
	}
	if len(fe) > 0 {
		writeError(w, &apiError{Status: http.StatusBadRequest, Fields: fe})
		return req, false
	}
	return req, true
}

// join: POST /api/v1/cluster/join/ {"id", "raft_addr", "api_addr"}.
func (s *Server) join(w http.ResponseWriter, r *http.Request) {
	req, ok := decodeJoin(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), writeTimeout)
	defer cancel()
	if err := s.node.HandleJoin(ctx, req); err != nil {
		writeError(w, err)
		return
	}
	s.log.Info("member joined or updated", "id", req.ID, "raft_addr", req.RaftAddr, "api_addr", req.APIAddr)
	writeJSON(w, http.StatusOK, newObject().set("id", req.ID).set("raft_addr", req.RaftAddr).set("api_addr", req.APIAddr))
}

// notify: a node started with -bootstrap-expect announces itself. Accepted
// only until the cluster forms.
func (s *Server) notify(w http.ResponseWriter, r *http.Request) {
	if s.bootTok != "" {
		p, err := authenticate(r, bootstrapAuth(s.bootTok))
		if err != nil {
			writeError(w, err)
			return
		}
		if p == nil {
			writeError(w, errNotAuthenticated())
			return
		}
	}
	req, ok := decodeJoin(w, r)
	if !ok {
		return
	}
	if err := s.node.Announce(req); err != nil {
		if errors.Is(err, cluster.ErrHasState) {
			writeDetail(w, http.StatusConflict, "cluster already formed; join it instead")
			return
		}
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, newObject().set("id", s.node.ID()))
}

// bootstrapAuth accepts only the operator's configured admin token.
type bootstrapAuth string

func (b bootstrapAuth) TokenUser(key string) (Principal, bool, error) {
	if subtle.ConstantTimeCompare([]byte(key), []byte(b)) == 1 {
		return Principal{Username: "bootstrap", IsAdmin: true}, true, nil
	}
	return Principal{}, false, nil
}

func (b bootstrapAuth) PasswordUser(string, string) (Principal, bool, error) {
	return Principal{}, false, nil
}

// removeNode: DELETE /api/v1/cluster/{node}/.
func (s *Server) removeNode(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["node"]
	ctx, cancel := context.WithTimeout(r.Context(), writeTimeout)
	defer cancel()
	if err := s.node.Remove(ctx, id); err != nil {
		writeError(w, err)
		return
	}
	s.log.Info("member removed", "id", id)
	w.WriteHeader(http.StatusNoContent)
}

// clusterDigest: GET /api/v1/cluster/digest/ — a hash of this node's whole
// replicated state and the index it reflects. Nodes at the same index must
// report the same digest; tests and operators compare them.
func (s *Server) clusterDigest(w http.ResponseWriter, r *http.Request) {
	d, idx, err := s.node.FSM().DigestAt()
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, newObject().set("node_id", s.node.ID()).set("applied_index", idx).set("digest", d))
}
