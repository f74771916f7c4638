package cluster

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"

	"github.com/seedscheduler/schedulerd/fsm"
)

// Paths of the cluster routes that nodes call on each other.
const (
	JoinPath   = "/api/v1/cluster/join/"
	NotifyPath = "/api/v1/cluster/notify/"
	// KeyHeader carries the member key: a secret created with the cluster
	// and replicated to members only, so a member can re-register itself
	// without an operator's token.
	KeyHeader = "X-Scheduler-Cluster-Key"
)

// ErrClusterMismatch: the joining node's data belongs to another cluster.
var ErrClusterMismatch = errors.New("node belongs to another cluster")

// JoinRequest is the body of POST /api/v1/cluster/join/ and of the
// bootstrap-expect announcements.
type JoinRequest struct {
	ID        string `json:"id"`
	RaftAddr  string `json:"raft_addr"`
	APIAddr   string `json:"api_addr"`
	ClusterID string `json:"cluster_id,omitempty"`
}

// Validate checks the fields a join needs.
func (r JoinRequest) Validate() map[string]string {
	errs := map[string]string{}
	for field, v := range map[string]string{"id": r.ID, "raft_addr": r.RaftAddr, "api_addr": r.APIAddr} {
		if strings.TrimSpace(v) == "" {
			errs[field] = "This field is required."
		}
	}
	return errs
}

// HandleJoin adds or updates a member: raft configuration first, then the
// replicated metadata. Leader only; idempotent.
func (n *Node) HandleJoin(ctx context.Context, req JoinRequest) error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	if mine, _ := n.ClusterIdentity(); req.ClusterID != "" && mine != "" && req.ClusterID != mine {
		return fmt.Errorf("node %s holds data of cluster %s, this is cluster %s: %w", req.ID, req.ClusterID, mine, ErrClusterMismatch)
	}
	if err := n.Join(ctx, req.ID, req.RaftAddr); err != nil {
		return err
	}
	want := fsm.Node{ID: req.ID, RaftAddr: req.RaftAddr, APIAddr: req.APIAddr}
	if n.metadataIs(want) {
		return nil
	}
	_, _, err := n.ApplyCommand(ctx, fsm.CmdSetNode, want)
	return err
}

// CheckMemberKey reports whether key is this cluster's member key.
func (n *Node) CheckMemberKey(key string) bool {
	_, mine := n.ClusterIdentity()
	return mine != "" && key != "" && subtle.ConstantTimeCompare([]byte(mine), []byte(key)) == 1
}

func (n *Node) getNode(id string) (fsm.Node, bool, error) {
	var node fsm.Node
	var ok bool
	err := n.fsm.View(func(tx *bolt.Tx) error {
		var err error
		node, ok, err = fsm.GetNode(tx, id)
		return err
	})
	return node, ok, err
}

func (n *Node) joinRequest() JoinRequest {
	id, _ := n.ClusterIdentity()
	return JoinRequest{ID: n.cfg.NodeID, RaftAddr: n.cfg.RaftAdvertise, APIAddr: n.cfg.APIAdvertise, ClusterID: id}
}

// registerLoop keeps this node's replicated addresses current when it is a
// follower: after a restart with a new -http-advertise, or right after the
// cluster formed, the leader does not know our API address yet.
func (n *Node) registerLoop(ctx context.Context) {
	want := fsm.Node{ID: n.cfg.NodeID, RaftAddr: n.cfg.RaftAdvertise, APIAddr: n.cfg.APIAdvertise}
	delay := 100 * time.Millisecond
	for sleepCtx(ctx, delay) {
		if n.metadataIs(want) || n.IsLeader() {
			delay = 2 * time.Second
			continue
		}
		delay = min(2*delay, 2*time.Second)
		_, key := n.ClusterIdentity()
		leader, err := n.LeaderAPIAddr()
		if key == "" || err != nil {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = postJSON(rctx, baseURL(leader)+JoinPath, n.joinRequest(), http.Header{KeyHeader: {key}})
		cancel()
		if err != nil {
			n.log.Debug("registering with the leader failed; will retry", "leader", leader, "error", err)
		}
	}
}

// JoinVia asks any member reachable at one of addrs to add this node,
// authenticating with an admin token. It retries until ctx ends. A refusal
// because the data belongs to another cluster is returned at once.
func (n *Node) JoinVia(ctx context.Context, addrs []string, token string) error {
	req := n.joinRequest()
	var last error
	for {
		for _, a := range addrs {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := postJSON(rctx, baseURL(a)+JoinPath, req, http.Header{"Authorization": {"Token " + token}})
			cancel()
			if err == nil {
				n.log.Info("joined cluster", "via", a)
				return nil
			}
			var he *httpError
			if errors.As(err, &he) && (he.Status == http.StatusConflict || he.Status == http.StatusUnauthorized ||
				he.Status == http.StatusForbidden || he.Status == http.StatusBadRequest) {
				if he.Status == http.StatusConflict {
					return fmt.Errorf("join via %s: %s: %w", a, he.Detail, ErrClusterMismatch)
				}
				return fmt.Errorf("join via %s: %w", a, err)
			}
			last = fmt.Errorf("join via %s: %w", a, err)
			n.log.Debug("join attempt failed", "via", a, "error", err)
		}
		if !sleepCtx(ctx, 500*time.Millisecond) {
			return fmt.Errorf("could not join the cluster through %s: %w", strings.Join(addrs, ", "), last)
		}
	}
}

// Announce records a node that is waiting to form a cluster with
// -bootstrap-expect. Once this node holds raft state it is refused unless
// the node is already in the configuration.
func (n *Node) Announce(req JoinRequest) error {
	if n.hasRaftState() {
		// A member of the configuration we formed is welcome: raft will
		// contact it. Anyone else must join.
		if cf := n.raft.GetConfiguration(); cf.Error() == nil {
			for _, s := range cf.Configuration().Servers {
				if s.ID == raft.ServerID(req.ID) && s.Address == raft.ServerAddress(req.RaftAddr) {
					return nil
				}
			}
		}
		return ErrHasState
	}
	n.expectMu.Lock()
	n.expected[raft.ServerID(req.ID)] = raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(req.ID), Address: raft.ServerAddress(req.RaftAddr)}
	n.expectMu.Unlock()
	return nil
}

func (n *Node) hasRaftState() bool {
	if n.hadState {
		return true
	}
	return n.raft.LastIndex() > 0
}

// BootstrapExpect announces this node to every peer and, once expect nodes
// (this one included) are known, bootstraps raft with all of them. Every
// node that sees the same set bootstraps the same configuration, so no node
// is special. It returns when the cluster has a leader or this node has
// joined one.
func (n *Node) BootstrapExpect(ctx context.Context, expect int, peers []string, token string) error {
	if err := n.Announce(n.joinRequest()); err != nil {
		return nil // restarting member: raft already knows its cluster
	}
	hdr := http.Header{}
	if token != "" {
		hdr.Set("Authorization", "Token "+token)
	}
	bootstrapped := false
	for {
		if id, _ := n.Leader(); id != "" {
			return nil
		}
		if !bootstrapped && !n.hasRaftState() {
			for _, p := range peers {
				rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				err := postJSON(rctx, baseURL(p)+NotifyPath, n.joinRequest(), hdr)
				cancel()
				var he *httpError
				if errors.As(err, &he) && (he.Status == http.StatusUnauthorized || he.Status == http.StatusForbidden) {
					return fmt.Errorf("announce to %s: %w", p, err)
				}
				if errors.As(err, &he) && he.Status == http.StatusConflict {
					// The cluster formed without us (we are a late or
					// replacement node): join it like any new member.
					n.log.Info("cluster already formed; joining it", "via", p)
					return n.JoinVia(ctx, peers, token)
				}
			}
			n.expectMu.Lock()
			servers := make([]raft.Server, 0, len(n.expected))
			for _, s := range n.expected {
				servers = append(servers, s)
			}
			n.expectMu.Unlock()
			if len(servers) >= expect {
				sort.Slice(servers, func(i, j int) bool { return servers[i].ID < servers[j].ID })
				n.log.Info("expected nodes present; bootstrapping", "nodes", len(servers))
				if err := n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil &&
					!errors.Is(err, raft.ErrCantBootstrap) {
					return fmt.Errorf("bootstrap: %w", err)
				}
				bootstrapped = true
			}
		}
		if !sleepCtx(ctx, 200*time.Millisecond) {
			return fmt.Errorf("waiting for %d nodes to form a cluster: %w", expect, ctx.Err())
		}
	}
}

// httpError is a non-2xx answer from another node.
type httpError struct {
	Status int
	Detail string
}

func (e *httpError) Error() string { return fmt.Sprintf("status %d: %s", e.Status, e.Detail) }

var peerClient = &http.Client{Timeout: 10 * time.Second}

func postJSON(ctx context.Context, url string, body any, hdr http.Header) error {
	buf, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(buf))
	if err != nil {
		return err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := peerClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 300 {
		var d struct {
			Detail string `json:"detail"`
		}
		if json.Unmarshal(raw, &d) != nil || d.Detail == "" {
			d.Detail = strings.TrimSpace(string(raw))
		}
		return &httpError{Status: resp.StatusCode, Detail: d.Detail}
	}
	return nil
}

// baseURL turns a host:port or URL into a base URL without a trailing slash.
func baseURL(addr string) string {
	if strings.HasPrefix(addr, "http://") || strings.HasPrefix(addr, "https://") {
		return strings.TrimRight(addr, "/")
	}
	return "http://" + addr
}
