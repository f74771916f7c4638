package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"

	"github.com/seedscheduler/schedulerd/fsm"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

type testNode struct {
	cfg Config
	*Node
}

func testConfig(t *testing.T, id string) Config {
	addr := freeAddr(t)
	return Config{
		NodeID: id, DataDir: filepath.Join(t.TempDir(), id), RaftBind: addr, RaftAdvertise: addr,
		APIAdvertise:     "127.0.0.1:1", // no HTTP in these tests
		HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond,
		LeaderLeaseTimeout: 150 * time.Millisecond, CommitTimeout: 5 * time.Millisecond,
		Logger: hclog.New(&hclog.LoggerOptions{Name: id, Level: hclog.Off}),
	}
}

func mustOpenNode(t *testing.T, cfg Config) *testNode {
	t.Helper()
	n, err := Open(cfg)
	if err != nil {
		t.Fatalf("open node %s: %v", cfg.NodeID, err)
	}
	tn := &testNode{cfg: cfg, Node: n}
	t.Cleanup(func() { n.Close() })
	return tn
}

// mustCluster opens n nodes and bootstraps all of them with the same
// configuration, as -bootstrap-expect does.
func mustCluster(t *testing.T, size int) []*testNode {
	t.Helper()
	var nodes []*testNode
	var servers []raft.Server
	for i := 0; i < size; i++ {
		tn := mustOpenNode(t, testConfig(t, fmt.Sprintf("n%d", i+1)))
		nodes = append(nodes, tn)
		servers = append(servers, tn.self())
	}
	for _, tn := range nodes {
		if err := tn.Bootstrap(servers); err != nil {
			t.Fatalf("bootstrap %s: %v", tn.ID(), err)
		}
	}
	return nodes
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func mustLeader(t *testing.T, nodes []*testNode) *testNode {
	t.Helper()
	var leader *testNode
	waitFor(t, "a leader that announced itself", 10*time.Second, func() bool {
		for _, n := range nodes {
			if n.IsLeader() && n.leaderAnnounced() {
				leader = n
				return true
			}
		}
		return false
	})
	return leader
}

// leaderAnnounced: the leader's term entry is applied, so the leader loop ran.
func (n *Node) leaderAnnounced() bool {
	var lt fsm.LeaderTerm
	n.fsm.View(func(tx *bolt.Tx) error {
		lt, _ = fsm.CurrentLeaderTerm(tx)
		return nil
	})
	return lt.NodeID == n.cfg.NodeID
}

func createGroup(ctx context.Context, n *testNode, name string) error {
	_, _, err := n.ApplyCommand(ctx, fsm.CmdCreateGroup, fsm.CreateGroupCmd{Name: name})
	return err
}

func hasGroup(n *testNode, name string) bool {
	found := false
	n.FSM().View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("groups_by_name")).ForEach(func(k, _ []byte) error {
			if string(k) == name {
				found = true
			}
			return nil
		})
	})
	return found
}

func digest(t *testing.T, n *testNode) string {
	d, err := n.FSM().Digest()
	if err != nil {
		t.Fatalf("digest %s: %v", n.ID(), err)
	}
	return d
}

func waitSameState(t *testing.T, nodes []*testNode) {
	t.Helper()
	waitFor(t, "every node to hold the same state", 10*time.Second, func() bool {
		first := nodes[0].FSM().AppliedIndex()
		for _, n := range nodes[1:] {
			if n.FSM().AppliedIndex() != first {
				return false
			}
		}
		d := digest(t, nodes[0])
		for _, n := range nodes[1:] {
			if digest(t, n) != d {
				return false
			}
		}
		return true
	})
}

func TestClusterReplicatesFailsOverAndRejoins(t *testing.T) {
	nodes := mustCluster(t, 3)
	leader := mustLeader(t, nodes)
	ctx := context.Background()
	if err := createGroup(ctx, leader, "g1"); err != nil {
		t.Fatalf("write on leader: %v", err)
	}
	waitSameState(t, nodes)
	for _, n := range nodes {
		if !hasGroup(n, "g1") {
			t.Fatalf("%s does not have the write", n.ID())
		}
		if n != leader {
			if err := createGroup(ctx, n, "x"); !errors.Is(err, ErrNotLeader) {
				t.Fatalf("write on follower %s: %v, want ErrNotLeader", n.ID(), err)
			}
		}
	}

	// Stop the leader: the others elect a new one and writes go on.
	old := leader
	if err := old.Close(); err != nil {
		t.Fatalf("close leader: %v", err)
	}
	var rest []*testNode
	for _, n := range nodes {
		if n != old {
			rest = append(rest, n)
		}
	}
	start := time.Now()
	leader = mustLeader(t, rest)
	t.Logf("new leader %s after %v", leader.ID(), time.Since(start))
	if err := createGroup(ctx, leader, "g2"); err != nil {
		t.Fatalf("write after failover: %v", err)
	}

	// The old leader restarts on its data dir with no bootstrap and catches up.
	re := mustOpenNode(t, old.cfg)
	if !re.HadState() {
		t.Fatalf("restarted node reports no state")
	}
	if err := re.Bootstrap(nil); !errors.Is(err, ErrHasState) {
		t.Fatalf("bootstrap on a node with state: %v, want ErrHasState", err)
	}
	all := append(rest, re)
	waitSameState(t, all)
	if !hasGroup(re, "g2") {
		t.Fatalf("restarted node missed the write made while it was down")
	}
}

func TestWriteRacingElectionIsNeverLost(t *testing.T) {
	nodes := mustCluster(t, 3)
	leader := mustLeader(t, nodes)

	var acked sync.Map
	var seq atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("g%d", seq.Add(1))
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				err := createGroup(ctx, leader, name)
				cancel()
				if err == nil {
					acked.Store(name, true)
				}
			}
		}()
	}
	waitFor(t, "some writes to be acknowledged", 10*time.Second, func() bool { return seq.Load() > 300 })
	leader.Close()
	close(stop)
	wg.Wait()

	var rest []*testNode
	for _, n := range nodes {
		if n != leader {
			rest = append(rest, n)
		}
	}
	nl := mustLeader(t, rest)
	if err := createGroup(context.Background(), nl, "after"); err != nil {
		t.Fatalf("write after failover: %v", err)
	}
	waitSameState(t, rest)
	count := 0
	acked.Range(func(k, _ any) bool {
		count++
		for _, n := range rest {
			if !hasGroup(n, k.(string)) {
				t.Errorf("acknowledged write %s missing on %s", k, n.ID())
			}
		}
		return true
	})
	t.Logf("%d acknowledged writes all present", count)
}

func TestJoinAndRemove(t *testing.T) {
	nodes := mustCluster(t, 3)
	leader := mustLeader(t, nodes)
	ctx := context.Background()

	fourth := mustOpenNode(t, testConfig(t, "n4"))
	for i := 0; i < 2; i++ { // the second join is a no-op
		if err := leader.HandleJoin(ctx, JoinRequest{ID: "n4", RaftAddr: fourth.cfg.RaftAdvertise, APIAddr: "127.0.0.1:4"}); err != nil {
			t.Fatalf("join #%d: %v", i+1, err)
		}
	}
	st, err := leader.Status()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Members) != 4 {
		t.Fatalf("members after join = %+v, want 4", st.Members)
	}
	createGroup(ctx, leader, "after-join")
	waitSameState(t, append(nodes, fourth))

	if _, _, err := leader.ApplyCommand(ctx, fsm.CmdInit, fsm.InitCmd{ClusterID: "this", ClusterKey: "k", AdminEmail: "a@b", TokenDigest: []byte("d")}); err != nil {
		t.Fatal(err)
	}
	if err := leader.HandleJoin(ctx, JoinRequest{ID: "n4", RaftAddr: fourth.cfg.RaftAdvertise, APIAddr: "x", ClusterID: "other"}); !errors.Is(err, ErrClusterMismatch) {
		t.Fatalf("join from another cluster: %v, want ErrClusterMismatch", err)
	}

	if err := leader.Remove(ctx, "n4"); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if err := leader.Remove(ctx, "n4"); !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("second remove: %v, want ErrUnknownNode", err)
	}
	st, _ = leader.Status()
	if len(st.Members) != 3 {
		t.Fatalf("members after remove = %+v, want 3", st.Members)
	}
	for _, m := range st.Members {
		if m.Leader != (m.ID == leader.ID()) || (m.Leader && m.APIAddr != leader.cfg.APIAdvertise) {
			t.Errorf("member %+v: leader flag or leader API address wrong", m)
		}
	}
}

func TestDiskFullOnLeaderIsAnErrorNotASilentSuccess(t *testing.T) {
	var full atomic.Bool
	fatal := make(chan error, 1)
	cfg := testConfig(t, "solo")
	cfg.FSMOptions = fsm.Options{
		BeforeCommit: func() error {
			if full.Load() {
				return syscall.ENOSPC
			}
			return nil
		},
		OnFatal: func(err error) { fatal <- err },
	}
	n := mustOpenNode(t, cfg)
	if err := n.Bootstrap(nil); err != nil {
		t.Fatal(err)
	}
	mustLeader(t, []*testNode{n})
	ctx := context.Background()
	if err := createGroup(ctx, n, "before"); err != nil {
		t.Fatal(err)
	}
	full.Store(true)
	err := createGroup(ctx, n, "during")
	if !errors.Is(err, fsm.ErrFailed) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write on a full disk: %v, want ErrFailed wrapping ENOSPC", err)
	}
	select {
	case <-fatal:
	case <-time.After(5 * time.Second):
		t.Fatalf("OnFatal not called")
	}
	if err := n.Ready(ctx); err == nil {
		t.Fatalf("node reports ready after its state machine failed")
	}
	n.Close()

	// After a restart with space again, the committed entry is applied from
	// the log: nothing is lost and the state is intact.
	full.Store(false)
	cfg.FSMOptions = fsm.Options{}
	re := mustOpenNode(t, cfg)
	mustLeader(t, []*testNode{re})
	waitFor(t, "replay of the entry that failed to commit", 5*time.Second, func() bool { return hasGroup(re, "during") })
	if !hasGroup(re, "before") {
		t.Fatalf("earlier write lost")
	}
}

func TestStateFileBehindSnapshotIsRestored(t *testing.T) {
	cfg := testConfig(t, "solo")
	cfg.SnapshotThreshold = 1
	n := mustOpenNode(t, cfg)
	if err := n.Bootstrap(nil); err != nil {
		t.Fatal(err)
	}
	mustLeader(t, []*testNode{n})
	for i := 0; i < 5; i++ {
		createGroup(context.Background(), n, fmt.Sprint("g", i))
	}
	if err := n.raft.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	want := digest(t, n)
	n.Close()
	// Lose the state file: the node must rebuild it from the snapshot.
	if err := os.Remove(filepath.Join(cfg.DataDir, "fsm.db")); err != nil {
		t.Fatal(err)
	}
	re := mustOpenNode(t, cfg)
	if got := digest(t, re); got != want {
		t.Fatalf("state after restart without its file differs from the snapshot")
	}
}
