// Package cluster owns raft for a schedulerd node: the TCP transport, the
// raft-boltdb log, file snapshots, bootstrap, join and removal, leader
// tracking, and the leader loop that starts and stops leader-only services.
// Other packages see one type, Node, and the sentinel errors below.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	bolt "go.etcd.io/bbolt"

	"github.com/seedscheduler/schedulerd/fsm"
)

// Sentinel errors. httpapi maps them to status codes in one place.
var (
	// ErrNotLeader: this node cannot accept the write; nothing was applied.
	ErrNotLeader = errors.New("not the cluster leader")
	// ErrLeaderNotFound: no leader is known (an election is in progress).
	ErrLeaderNotFound = errors.New("no cluster leader")
	// ErrLeadershipLost: the write was appended but leadership was lost
	// before it committed; it may or may not be applied.
	ErrLeadershipLost = errors.New("leadership lost while committing; the write may or may not have been applied")
	// ErrShutdown: the node is stopping; a write in flight may or may not
	// have been applied.
	ErrShutdown = errors.New("node is shutting down")
	// ErrTimeout: the write could not be queued in time; nothing was applied.
	ErrTimeout = errors.New("timed out queueing the write")
	// ErrHasState: bootstrap was asked of a node that already holds raft state.
	ErrHasState = errors.New("data dir already holds cluster state")
	// ErrUnknownNode: no member has that id.
	ErrUnknownNode = errors.New("no such cluster member")
)

// Config is what a node needs to open raft.
type Config struct {
	NodeID        string
	DataDir       string
	RaftBind      string // listen address of the raft transport
	RaftAdvertise string // address other nodes dial
	APIAdvertise  string // HTTP address other nodes forward to

	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	SnapshotThreshold  uint64
	SnapshotInterval   time.Duration

	Logger     hclog.Logger
	FSMOptions fsm.Options
	// WrapStream, when set, wraps the raft transport's connections; tests
	// use it to partition a node.
	WrapStream func(raft.StreamLayer) raft.StreamLayer
}

// LeaderService is leader-only work. RunLeader is called after the leader
// has caught up (barrier) and must return promptly once ctx is cancelled,
// which happens when leadership is lost or the node stops. It keeps no state
// across terms.
type LeaderService interface {
	Name() string
	RunLeader(ctx context.Context)
}

// Node is one member of the cluster.
type Node struct {
	cfg      Config
	log      hclog.Logger
	fsm      *fsm.FSM
	logStore *raftboltdb.BoltStore
	snaps    *raft.FileSnapshotStore
	trans    *raft.NetworkTransport
	raft     *raft.Raft
	hadState bool

	servicesMu sync.Mutex
	services   []LeaderService

	stop     context.CancelFunc
	closing  chan struct{}
	loopDone chan struct{}
	closeMu  sync.Mutex
	closed   bool

	expectMu sync.Mutex
	expected map[raft.ServerID]raft.Server // bootstrap-expect announcements
}

// Open opens the stores and starts raft. It does not bootstrap or join.
func Open(cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	n := &Node{cfg: cfg, log: cfg.Logger.Named("cluster"), expected: map[raft.ServerID]raft.Server{}, closing: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			n.closeStores()
		}
	}()

	fopts := cfg.FSMOptions
	fopts.Logger = cfg.Logger.Named("fsm")
	f, err := fsm.Open(filepath.Join(cfg.DataDir, "fsm.db"), fopts)
	if err != nil {
		return nil, err
	}
	n.fsm = f

	n.logStore, err = raftboltdb.New(raftboltdb.Options{
		Path: filepath.Join(cfg.DataDir, "raft.db"),
		BoltOptions: &bolt.Options{
			Timeout:        time.Second,
			NoFreelistSync: true,
			FreelistType:   bolt.FreelistMapType,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("open raft log: %w", err)
	}
	n.snaps, err = raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 2, cfg.Logger.Named("snapshot"))
	if err != nil {
		return nil, fmt.Errorf("open snapshot store: %w", err)
	}
	if err := n.catchUpFromSnapshot(); err != nil {
		return nil, err
	}
	n.hadState, err = raft.HasExistingState(n.logStore, n.logStore, n.snaps)
	if err != nil {
		return nil, fmt.Errorf("read raft state: %w", err)
	}

	adv, err := net.ResolveTCPAddr("tcp", cfg.RaftAdvertise)
	if err != nil {
		return nil, fmt.Errorf("resolve raft advertise address %q: %w", cfg.RaftAdvertise, err)
	}
	n.trans, err = newTransport(cfg, adv)
	if err != nil {
		return nil, fmt.Errorf("listen for raft on %s: %w", cfg.RaftBind, err)
	}

	notify := make(chan bool, 16)
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = cfg.Logger.Named("raft")
	rc.NotifyCh = notify
	rc.BatchApplyCh = true
	// The state file is durable and current; raft only replays entries after
	// the latest snapshot, which the FSM skips up to its stored index.
	rc.NoSnapshotRestoreOnStart = true
	setIf(&rc.HeartbeatTimeout, cfg.HeartbeatTimeout)
	setIf(&rc.ElectionTimeout, cfg.ElectionTimeout)
	setIf(&rc.LeaderLeaseTimeout, cfg.LeaderLeaseTimeout)
	setIf(&rc.CommitTimeout, cfg.CommitTimeout)
	setIf(&rc.SnapshotInterval, cfg.SnapshotInterval)
	if cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = cfg.SnapshotThreshold
	}
	if err := raft.ValidateConfig(rc); err != nil {
		return nil, fmt.Errorf("raft config: %w", err)
	}
	// Replication reads back the entries just written, once per follower:
	// from memory rather than through a bolt read transaction per entry
	// (GetLog was 6 % of the CPU of an in-process cluster under writes).
	logs, err := raft.NewLogCache(logCacheEntries, n.logStore)
	if err != nil {
		return nil, fmt.Errorf("raft log cache: %w", err)
	}
	n.raft, err = raft.NewRaft(rc, n.fsm, logs, n.logStore, n.snaps, n.trans)
	if err != nil {
		return nil, fmt.Errorf("start raft: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.stop = cancel
	n.loopDone = make(chan struct{})
	go n.leaderLoop(ctx, notify)
	go n.registerLoop(ctx)
	ok = true
	n.log.Info("raft started", "node_id", cfg.NodeID, "raft_addr", cfg.RaftAdvertise,
		"existing_state", n.hadState, "applied_index", n.fsm.AppliedIndex())
	return n, nil
}

func setIf(dst *time.Duration, v time.Duration) {
	if v > 0 {
		*dst = v
	}
}

// catchUpFromSnapshot restores the newest snapshot when it is ahead of the
// state file (a state file lost or copied from elsewhere): raft is told not
// to restore on start and would otherwise never replay the compacted entries.
func (n *Node) catchUpFromSnapshot() error {
	metas, err := n.snaps.List()
	if err != nil {
		return fmt.Errorf("list snapshots: %w", err)
	}
	if len(metas) == 0 {
		return nil
	}
	newest := metas[0]
	restored, err := n.fsm.RestoreIfNewer(newest.Index, func() (io.ReadCloser, error) {
		_, rc, err := n.snaps.Open(newest.ID)
		return rc, err
	})
	if err != nil {
		return fmt.Errorf("restore state from snapshot %s: %w", newest.ID, err)
	}
	if restored {
		n.log.Warn("state file was behind the newest snapshot; restored it", "snapshot", newest.ID, "index", newest.Index)
	}
	return nil
}

// HadState reports whether the data dir held raft state when the node opened.
func (n *Node) HadState() bool { return n.hadState }

// ID is this node's raft id.
func (n *Node) ID() string { return n.cfg.NodeID }

// FSM exposes the local state for reads.
func (n *Node) FSM() *fsm.FSM { return n.fsm }

// AddLeaderService registers leader-only work; call before leadership can be
// gained (right after Open).
func (n *Node) AddLeaderService(s LeaderService) {
	n.servicesMu.Lock()
	n.services = append(n.services, s)
	n.servicesMu.Unlock()
}

// Bootstrap forms a one-node cluster, or a cluster of the given servers.
func (n *Node) Bootstrap(servers []raft.Server) error {
	if n.hadState {
		return ErrHasState
	}
	if len(servers) == 0 {
		servers = []raft.Server{n.self()}
	}
	err := n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
	if errors.Is(err, raft.ErrCantBootstrap) {
		return ErrHasState
	}
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	return nil
}

func (n *Node) self() raft.Server {
	return raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(n.cfg.NodeID), Address: raft.ServerAddress(n.cfg.RaftAdvertise)}
}

// IsLeader reports whether this node is the leader.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Leader returns the id and raft address of the leader known to this node.
func (n *Node) Leader() (id, raftAddr string) {
	addr, sid := n.raft.LeaderWithID()
	return string(sid), string(addr)
}

// LeaderAPIAddr returns the HTTP address of the leader.
func (n *Node) LeaderAPIAddr() (string, error) {
	id, _ := n.Leader()
	if id == "" {
		return "", ErrLeaderNotFound
	}
	var node fsm.Node
	var ok bool
	err := n.fsm.View(func(tx *bolt.Tx) error {
		var err error
		node, ok, err = fsm.GetNode(tx, id)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("read leader metadata: %w", err)
	}
	if !ok || node.APIAddr == "" {
		// The leader has not registered its address yet; it does so right
		// after winning the election.
		return "", fmt.Errorf("leader %s has no registered API address: %w", id, ErrLeaderNotFound)
	}
	return node.APIAddr, nil
}

// WaitForLeader blocks until a leader is known.
func (n *Node) WaitForLeader(ctx context.Context) (string, error) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if id, _ := n.Leader(); id != "" {
			return id, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("wait for leader: %w", ErrLeaderNotFound)
		case <-t.C:
		}
	}
}

// Apply commits a command and returns the FSM's response and the raft index.
// A business-rule error of the FSM is returned as the error.
func (n *Node) Apply(ctx context.Context, cmd []byte) (any, uint64, error) {
	timeout := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
		if timeout <= 0 {
			return nil, 0, ErrTimeout
		}
	}
	f := n.raft.Apply(cmd, timeout)
	if err := n.await(f); err != nil {
		return nil, 0, err
	}
	resp := f.Response()
	if err, ok := resp.(error); ok {
		return nil, f.Index(), err
	}
	return resp, f.Index(), nil
}

// ApplyCommand encodes and applies a command.
func (n *Node) ApplyCommand(ctx context.Context, t fsm.CommandType, payload any) (any, uint64, error) {
	cmd, err := fsm.Encode(t, payload)
	if err != nil {
		return nil, 0, err
	}
	return n.Apply(ctx, cmd)
}

// await waits for a raft future. raft leaves futures still queued at
// shutdown unanswered, so waiting also ends when the node closes; otherwise
// closing could wait forever on its own leader-only work.
func (n *Node) await(f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		if err != nil {
			return mapRaftError(err)
		}
		return nil
	case <-n.closing:
		return ErrShutdown
	}
}

func mapRaftError(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader):
		return ErrNotLeader
	case errors.Is(err, raft.ErrLeadershipLost):
		return ErrLeadershipLost
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrShutdown
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return ErrTimeout
	case errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return ErrNotLeader
	}
	return fmt.Errorf("raft: %w", err)
}

// CommitIndex is the raft commit index known to this node.
func (n *Node) CommitIndex() uint64 { return n.raft.CommitIndex() }

// AppliedIndex is the last raft index the local FSM has applied.
func (n *Node) AppliedIndex() uint64 { return n.fsm.AppliedIndex() }

// logCacheEntries: how many of the newest raft entries are kept in memory
// for replication (about one raft batch per follower in flight, many times
// over).
const logCacheEntries = 1024

// WaitForApplied blocks until the local FSM has applied idx.
func (n *Node) WaitForApplied(ctx context.Context, idx uint64) error {
	return n.fsm.WaitForIndex(ctx.Done(), idx)
}

// ReadBarrier makes the next local read linearizable: this node confirms it
// still leads and waits until its FSM holds everything committed so far.
func (n *Node) ReadBarrier(ctx context.Context) error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	commit := n.raft.CommitIndex()
	if err := n.await(n.raft.VerifyLeader()); err != nil {
		return err
	}
	return n.waitCaughtUp(ctx, commit)
}

// waitCaughtUp waits for the FSM to reach idx. The last committed entry may
// be one raft keeps to itself (the no-op of a new term, a barrier); every
// leader follows those with a command of its own, so the FSM gets there.
func (n *Node) waitCaughtUp(ctx context.Context, idx uint64) error {
	return n.fsm.WaitForIndex(ctx.Done(), idx)
}

// Ready reports whether this node can serve reads that reflect the cluster:
// it knows a leader and has applied the log up to the commit index it knows.
func (n *Node) Ready(ctx context.Context) error {
	if id, _ := n.Leader(); id == "" {
		return ErrLeaderNotFound
	}
	if err := n.fsm.Err(); err != nil {
		return err
	}
	return n.waitCaughtUp(ctx, n.raft.CommitIndex())
}

// Join adds (or updates) a voter. It is idempotent: the same id and address
// is a no-op; a changed address replaces the old one; another member holding
// the address is removed first. Only the leader can do this.
func (n *Node) Join(ctx context.Context, id, raftAddr string) error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return mapRaftError(err)
	}
	for _, s := range cf.Configuration().Servers {
		sameID, sameAddr := s.ID == raft.ServerID(id), s.Address == raft.ServerAddress(raftAddr)
		if sameID && sameAddr && s.Suffrage == raft.Voter {
			return nil
		}
		if sameID || sameAddr {
			if err := n.await(n.raft.RemoveServer(s.ID, 0, timeoutOf(ctx))); err != nil {
				return fmt.Errorf("remove stale member %s at %s: %w", s.ID, s.Address, err)
			}
		}
	}
	if err := n.await(n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(raftAddr), 0, timeoutOf(ctx))); err != nil {
		return fmt.Errorf("add voter %s at %s: %w", id, raftAddr, err)
	}
	n.log.Info("member joined", "id", id, "raft_addr", raftAddr)
	return nil
}

// Remove takes a member out of the cluster and forgets its metadata.
func (n *Node) Remove(ctx context.Context, id string) error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return mapRaftError(err)
	}
	found := false
	for _, s := range cf.Configuration().Servers {
		if s.ID == raft.ServerID(id) {
			found = true
		}
	}
	if !found {
		return fmt.Errorf("%s: %w", id, ErrUnknownNode)
	}
	// Forget the metadata first: once the leader removes itself it can no
	// longer commit anything.
	if _, _, err := n.ApplyCommand(ctx, fsm.CmdRemoveNode, fsm.RemoveNodeCmd{ID: id}); err != nil {
		return fmt.Errorf("forget member %s: %w", id, err)
	}
	if err := n.await(n.raft.RemoveServer(raft.ServerID(id), 0, timeoutOf(ctx))); err != nil {
		return fmt.Errorf("remove member %s: %w", id, err)
	}
	n.log.Info("member removed", "id", id)
	return nil
}

func timeoutOf(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return time.Until(dl)
	}
	return 10 * time.Second
}

// Member is one server of the configuration, as the cluster-admin API shows it.
type Member struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	APIAddr  string `json:"api_addr"`
	Voter    bool   `json:"voter"`
	Leader   bool   `json:"leader"`
}

// Status is this node's view of the cluster.
type Status struct {
	NodeID       string   `json:"node_id"`
	State        string   `json:"state"`
	LeaderID     string   `json:"leader_id"`
	Term         uint64   `json:"term"`
	CommitIndex  uint64   `json:"commit_index"`
	AppliedIndex uint64   `json:"applied_index"`
	Members      []Member `json:"nodes"`
}

// Status reads the configuration and the replicated member metadata.
func (n *Node) Status() (Status, error) {
	leaderID, _ := n.Leader()
	term, _ := strconv.ParseUint(n.raft.Stats()["term"], 10, 64)
	st := Status{
		NodeID: n.cfg.NodeID, State: n.raft.State().String(), LeaderID: leaderID, Term: term,
		CommitIndex: n.raft.CommitIndex(), AppliedIndex: n.fsm.AppliedIndex(),
	}
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return st, mapRaftError(err)
	}
	meta := map[string]fsm.Node{}
	if err := n.fsm.View(func(tx *bolt.Tx) error {
		nodes, err := fsm.Nodes(tx)
		for _, m := range nodes {
			meta[m.ID] = m
		}
		return err
	}); err != nil {
		return st, err
	}
	for _, s := range cf.Configuration().Servers {
		id := string(s.ID)
		st.Members = append(st.Members, Member{
			ID: id, RaftAddr: string(s.Address), APIAddr: meta[id].APIAddr,
			Voter: s.Suffrage == raft.Voter, Leader: id == leaderID,
		})
	}
	return st, nil
}

// ClusterIdentity returns the cluster id and member key (empty before init).
func (n *Node) ClusterIdentity() (id, key string) {
	_ = n.fsm.View(func(tx *bolt.Tx) error {
		id, key = fsm.ClusterIdentity(tx)
		return nil
	})
	return id, key
}

// Close stops leader-only work, then raft, then the stores.
func (n *Node) Close() error {
	n.closeMu.Lock()
	defer n.closeMu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	close(n.closing)
	n.stop()
	var errs []error
	if err := n.raft.Shutdown().Error(); err != nil {
		errs = append(errs, fmt.Errorf("shut down raft: %w", err))
	}
	<-n.loopDone
	errs = append(errs, n.closeStores())
	return errors.Join(errs...)
}

func (n *Node) closeStores() error {
	var errs []error
	if n.trans != nil {
		errs = append(errs, n.trans.Close())
	}
	if n.logStore != nil {
		errs = append(errs, n.logStore.Close())
	}
	if n.fsm != nil {
		errs = append(errs, n.fsm.Close())
	}
	return errors.Join(errs...)
}
