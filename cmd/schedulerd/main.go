// Command schedulerd runs one node of a Seed Scheduler cluster: the REST API
// on every node, raft replication, and (on the leader) the executor.
package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/seedscheduler/schedulerd/cluster"
	"github.com/seedscheduler/schedulerd/executor"
	"github.com/seedscheduler/schedulerd/fsm"
	"github.com/seedscheduler/schedulerd/httpapi"
)

// joinTimeout bounds how long -join keeps trying the listed members.
var joinTimeout = 30 * time.Second

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tuneGC(os.Getenv)
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// Exit codes.
const (
	exitOK    = 0
	exitFatal = 1
	exitUsage = 2
)

// run is the whole daemon; it returns when ctx is cancelled (a signal) or a
// fatal error stops the node. Tests run several of them in one process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if code, ok := runAdmin(ctx, args, getenv, stdout, stderr); ok {
		return code
	}
	cfg, err := ParseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "schedulerd: %v\n", err)
		return exitUsage
	}
	d := &daemon{cfg: cfg, stdout: stdout, fatal: make(chan error, 1)}
	d.log = hclog.New(&hclog.LoggerOptions{
		Name: "schedulerd", Level: hclog.LevelFromString(cfg.LogLevel), JSONFormat: cfg.LogJSON,
		Output: stderr, TimeFormat: time.RFC3339Nano,
	})
	if err := d.start(ctx); err != nil {
		d.log.Error("startup failed", "error", err)
		fmt.Fprintf(stderr, "schedulerd: %v\n", err)
		d.shutdown()
		return exitFatal
	}
	code := exitOK
	select {
	case <-ctx.Done():
		d.log.Info("shutting down")
	case err := <-d.fatal:
		d.log.Error("fatal error; shutting down", "error", err)
		fmt.Fprintf(stderr, "schedulerd: %v\n", err)
		code = exitFatal
	}
	d.shutdown()
	return code
}

type daemon struct {
	cfg    *Config
	log    hclog.Logger
	stdout io.Writer
	fatal  chan error

	tmpDir    string
	node      *cluster.Node
	deliverer *executor.Deliverer
	reporter  *executor.Reporter
	// retry is the delivery retry policy; zero means the contract's
	// (tests shorten it).
	retry executor.RetryPolicy
	// wrapStream wraps the raft transport (tests partition nodes with it).
	wrapStream func(raft.StreamLayer) raft.StreamLayer
	http       *http.Server
	served     chan struct{}
	cancel     context.CancelFunc
	bg         sync.WaitGroup
}

func (d *daemon) fail(err error) {
	select {
	case d.fatal <- err:
	default:
	}
}

// start wires the node in order: listeners first (so an address in use is
// reported before any state is touched), then raft, then the API, then
// cluster membership.
func (d *daemon) start(ctx context.Context) error {
	cfg := d.cfg
	if cfg.DataDir == "" { // -dev
		dir, err := os.MkdirTemp("", "schedulerd-dev-")
		if err != nil {
			return fmt.Errorf("create temporary data dir: %w", err)
		}
		d.tmpDir, cfg.DataDir = dir, dir
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on -http-addr %s: %w", cfg.HTTPAddr, err)
	}
	node, err := cluster.Open(cluster.Config{
		NodeID: cfg.NodeID, DataDir: cfg.DataDir, RaftBind: cfg.RaftAddr, RaftAdvertise: cfg.RaftAdvertise,
		APIAdvertise: cfg.HTTPAdvertise, HeartbeatTimeout: cfg.HeartbeatTimeout, ElectionTimeout: cfg.ElectionTimeout,
		LeaderLeaseTimeout: cfg.LeaderLeaseTimeout, CommitTimeout: cfg.CommitTimeout,
		SnapshotThreshold: cfg.SnapshotThreshold, SnapshotInterval: cfg.SnapshotInterval,
		Logger: d.log, FSMOptions: fsm.Options{OnFatal: func(err error) { d.fail(fmt.Errorf("state machine: %w", err)) }},
		WrapStream: d.wrapStream,
	})
	if err != nil {
		ln.Close()
		return err
	}
	d.node = node
	node.AddLeaderService(&firstAdmin{cfg: cfg, node: node, log: d.log.Named("bootstrap"), stdout: d.stdout})

	api := httpapi.New(httpapi.Config{Node: node, Logger: d.log, Version: version, BootstrapToken: cfg.AdminToken})
	d.deliverer = executor.NewDeliverer(executor.Config{Timeout: cfg.DeliveryTimeout, DenyPrivate: cfg.DenyPrivateTargets,
		UserAgent: "seed-scheduler/" + version, Logger: d.log.Named("delivery")})
	d.reporter = executor.NewReporter(cfg.MetricsURL, "", "", d.log.Named("metrics"))
	node.AddLeaderService(executor.New(executor.Options{
		Node: node, Deliverer: d.deliverer, Reporter: d.reporter, Metrics: executor.NewMetrics(api.Registry()),
		Logger: d.log, CatchUpWindow: cfg.CatchUpWindow, Retain: cfg.RunsRetention, Workers: cfg.DeliveryWorkers,
		WebhookToken: cfg.WebhookToken, Retry: d.retry,
	}))
	d.http = api.NewHTTPServer()
	d.served = make(chan struct{})
	go func() {
		defer close(d.served)
		if err := d.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.fail(fmt.Errorf("serve HTTP: %w", err))
		}
	}()
	d.log.Info("node started", "node_id", cfg.NodeID, "http_addr", ln.Addr().String(), "raft_addr", cfg.RaftAddr,
		"data_dir", cfg.DataDir)

	mctx, cancel := context.WithCancel(ctx)
	d.cancel = cancel
	return d.membership(mctx)
}

// membership bootstraps or joins as the flags say. A node restarted on its
// data dir needs neither; a repeated -join is harmless.
func (d *daemon) membership(ctx context.Context) error {
	cfg, node := d.cfg, d.node
	switch {
	case cfg.Bootstrap && node.HadState():
		if cfg.Dev {
			return nil
		}
		return fmt.Errorf("-bootstrap: data dir %s already holds cluster state; restart without -bootstrap", cfg.DataDir)
	case cfg.Bootstrap:
		return node.Bootstrap(nil)
	case cfg.BootstrapExpect > 0:
		d.background(func() {
			if err := node.BootstrapExpect(ctx, cfg.BootstrapExpect, cfg.JoinURLs(), cfg.AdminToken); err != nil && ctx.Err() == nil {
				d.fail(fmt.Errorf("-bootstrap-expect: %w", err))
			}
		})
	case len(cfg.Join) > 0 && !node.HadState():
		if cfg.AdminToken == "" {
			return errors.New("-join: a new node needs the admin token (SCHEDULERD_ADMIN_TOKEN or -admin-token-file) to join")
		}
		jctx, cancel := context.WithTimeout(ctx, joinTimeout)
		defer cancel()
		if err := node.JoinVia(jctx, cfg.JoinURLs(), cfg.AdminToken); err != nil {
			return fmt.Errorf("-join: %w", err)
		}
	case len(cfg.Join) > 0:
		// Restart of a member: re-joining refreshes its addresses and
		// catches a data dir that belongs to another cluster.
		if cfg.AdminToken == "" {
			return nil
		}
		d.background(func() {
			jctx, cancel := context.WithTimeout(ctx, joinTimeout)
			defer cancel()
			err := node.JoinVia(jctx, cfg.JoinURLs(), cfg.AdminToken)
			if errors.Is(err, cluster.ErrClusterMismatch) {
				d.fail(fmt.Errorf("-join: %w", err))
			} else if err != nil && ctx.Err() == nil {
				d.log.Warn("re-join on restart failed; continuing with the stored membership", "error", err)
			}
		})
	}
	return nil
}

func (d *daemon) background(fn func()) {
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		fn()
	}()
}

// shutdown closes the front door first, then raft and the stores.
func (d *daemon) shutdown() {
	if d.cancel != nil {
		d.cancel()
	}
	if d.http != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := d.http.Shutdown(sctx); err != nil {
			d.log.Warn("http shutdown", "error", err)
			d.http.Close()
		}
		cancel()
		<-d.served
	}
	d.bg.Wait()
	if d.node != nil {
		if err := d.node.Close(); err != nil {
			d.log.Warn("close node", "error", err)
		}
	}
	if d.deliverer != nil {
		d.deliverer.Close()
	}
	d.reporter.Close()
	if d.tmpDir != "" {
		os.RemoveAll(d.tmpDir)
	}
	d.log.Info("stopped")
}

// firstAdmin initialises a new cluster on its first leader: the cluster
// identity and the first admin user. A token given by the operator is used;
// otherwise one is generated and printed once on stdout (never logged).
type firstAdmin struct {
	cfg    *Config
	node   *cluster.Node
	log    hclog.Logger
	stdout io.Writer
}

func (f *firstAdmin) Name() string { return "first-admin" }

func (f *firstAdmin) RunLeader(ctx context.Context) {
	for {
		if id, _ := f.node.ClusterIdentity(); id != "" {
			return
		}
		token, generated := f.cfg.AdminToken, false
		var digest []byte
		if token == "" {
			token, digest = httpapi.NewToken()
			generated = true
		} else {
			d := sha256.Sum256([]byte(token))
			digest = d[:]
		}
		cmd := fsm.InitCmd{ClusterID: uuid.NewString(), ClusterKey: randomHex(32), AdminEmail: f.cfg.AdminEmail,
			TokenDigest: digest, At: time.Now().UTC()}
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		resp, _, err := f.node.ApplyCommand(actx, fsm.CmdInit, cmd)
		cancel()
		if err == nil {
			if res, _ := resp.(fsm.InitResult); res.Initialized {
				f.log.Info("cluster initialised", "cluster_id", cmd.ClusterID, "admin", f.cfg.AdminEmail)
				if generated {
					fmt.Fprintf(f.stdout, "admin token for %s: %s\n", f.cfg.AdminEmail, token)
				}
			}
			return
		}
		f.log.Warn("initialising the cluster failed; retrying", "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("read random bytes: %v", err))
	}
	return hex.EncodeToString(b)
}
