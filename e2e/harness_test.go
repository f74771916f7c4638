//go:build e2e

// Package e2e runs real schedulerd processes behind a real nginx, with a
// userspace proxy on every raft link, and checks the cluster's promises
// under faults. Run with `make e2e` (see README.md).
package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const adminToken = "e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0"

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildDir  string
)

// TestMain removes the binary built for the package's tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// schedulerdBinary builds cmd/schedulerd once per test binary.
func schedulerdBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "schedulerd-e2e-bin-")
		if buildErr != nil {
			return
		}
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Dir(filepath.Dir(file))
		binPath = filepath.Join(buildDir, "schedulerd")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/schedulerd")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// node is one schedulerd process slot: its addresses and data dir outlive
// the process, so it can be restarted on the same state.
type node struct {
	id, dir, httpAddr, raftAddr, logPath string
	proxy                                *linkProxy // the node advertises proxy.Addr() as its raft address

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	stopped bool // SIGSTOPped
	starts  int
}

type cluster struct {
	t     testing.TB
	bin   string
	nodes []*node
	join  string
	extra []string
	hc    *http.Client
}

// newCluster starts n nodes with the documented bootstrap flags and waits
// until every node is ready and one leads a cluster of all n. Every process
// is killed in t.Cleanup; when the test failed, each node's log tail is
// printed first.
func newCluster(t *testing.T, n int, extra ...string) *cluster {
	t.Helper()
	c := &cluster{t: t, bin: schedulerdBinary(t), extra: extra,
		hc: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	root := t.TempDir()
	var joins []string
	for i := 1; i <= n; i++ {
		nd := &node{id: fmt.Sprintf("n%d", i), dir: filepath.Join(root, fmt.Sprintf("n%d", i)),
			httpAddr: freeAddr(t), raftAddr: freeAddr(t), logPath: filepath.Join(root, fmt.Sprintf("n%d.log", i))}
		nd.proxy = newLinkProxy(t, nd.raftAddr)
		c.nodes = append(c.nodes, nd)
		joins = append(joins, nd.httpAddr)
	}
	c.join = strings.Join(joins, ",")
	t.Cleanup(func() {
		if t.Failed() {
			for _, nd := range c.nodes {
				t.Logf("---- last lines of %s's log (%s) ----\n%s", nd.id, nd.logPath, tail(nd.logPath, 60))
			}
		}
		for _, nd := range c.nodes {
			c.stopProcess(nd)
		}
	})
	for _, nd := range c.nodes {
		c.Start(nd)
	}
	c.WaitHealthy(60 * time.Second)
	return c
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Start runs the node's process (again) on its data dir, with the same flags.
func (c *cluster) Start(nd *node) {
	c.t.Helper()
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cmd != nil {
		c.t.Fatalf("%s already running", nd.id)
	}
	logf, err := os.OpenFile(nd.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	nd.starts++
	fmt.Fprintf(logf, "==== e2e: start #%d of %s at %s ====\n", nd.starts, nd.id, time.Now().Format(time.RFC3339Nano))
	args := append([]string{"-node-id", nd.id, "-data-dir", nd.dir, "-http-addr", nd.httpAddr,
		"-raft-addr", nd.raftAddr, "-raft-advertise", nd.proxy.Addr(),
		"-bootstrap-expect", fmt.Sprint(len(c.nodes)), "-join", c.join}, c.extra...)
	cmd := exec.Command(c.bin, args...)
	cmd.Env = append(os.Environ(), "SCHEDULERD_ADMIN_TOKEN="+adminToken)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		c.t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(exited) }()
	nd.cmd, nd.exited, nd.stopped = cmd, exited, false
}

// Kill SIGKILLs the node and waits for the process to be gone.
func (c *cluster) Kill(nd *node) {
	c.t.Helper()
	nd.mu.Lock()
	cmd, exited := nd.cmd, nd.exited
	nd.cmd, nd.stopped = nil, false
	nd.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		c.t.Fatalf("%s still running 10s after SIGKILL", nd.id)
	}
}

// KillAll SIGKILLs every node at once (all signals sent before waiting)
// and waits for every process to be gone.
func (c *cluster) KillAll() {
	c.t.Helper()
	var cmds []*exec.Cmd
	var exits []chan struct{}
	for _, nd := range c.nodes {
		nd.mu.Lock()
		if nd.cmd != nil {
			nd.cmd.Process.Signal(syscall.SIGKILL)
			cmds, exits = append(cmds, nd.cmd), append(exits, nd.exited)
		}
		nd.cmd, nd.stopped = nil, false
		nd.mu.Unlock()
	}
	for i, ex := range exits {
		select {
		case <-ex:
		case <-time.After(10 * time.Second):
			c.t.Fatalf("pid %d still running 10s after SIGKILL", cmds[i].Process.Pid)
		}
	}
}

// Stop (SIGSTOP) and Cont (SIGCONT) freeze and thaw the node.
func (c *cluster) Stop(nd *node) { c.signal(nd, syscall.SIGSTOP, true) }
func (c *cluster) Cont(nd *node) { c.signal(nd, syscall.SIGCONT, false) }

func (c *cluster) signal(nd *node, sig syscall.Signal, stopped bool) {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cmd != nil {
		nd.cmd.Process.Signal(sig)
		nd.stopped = stopped
	}
}

// stopProcess ends the node for good (cleanup): thaw, SIGTERM, SIGKILL
// after 5 s.
func (c *cluster) stopProcess(nd *node) {
	nd.mu.Lock()
	cmd, exited := nd.cmd, nd.exited
	nd.cmd = nil
	nd.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGCONT)
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		cmd.Process.Signal(syscall.SIGKILL)
		<-exited
	}
}

func (nd *node) running() bool {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.cmd != nil && !nd.stopped
}

// resp is one HTTP answer; status -1 means no answer (err set).
type resp struct {
	status int
	header http.Header
	body   []byte
	err    error
}

func (r resp) String() string {
	if r.err != nil {
		return "error: " + r.err.Error()
	}
	return fmt.Sprintf("%d %s", r.status, strings.Join(strings.Fields(string(r.body)), " "))
}

func (r resp) decode(v any) error { return json.Unmarshal(r.body, v) }

func do(hc *http.Client, method, url string, body any) resp {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return resp{status: -1, err: err}
	}
	req.Header.Set("Authorization", "Token "+adminToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	r, err := hc.Do(req)
	if err != nil {
		return resp{status: -1, err: err}
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return resp{status: -1, err: err}
	}
	return resp{status: r.StatusCode, header: r.Header, body: b}
}

func (c *cluster) get(nd *node, path string) resp {
	return do(c.hc, "GET", "http://"+nd.httpAddr+path, nil)
}

type clusterInfo struct {
	NodeID       string `json:"node_id"`
	State        string `json:"state"`
	LeaderID     string `json:"leader_id"`
	Term         uint64 `json:"term"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	Nodes        []struct {
		ID      string `json:"id"`
		APIAddr string `json:"api_addr"`
	} `json:"nodes"`
}

func (c *cluster) info(nd *node) (clusterInfo, bool) {
	var ci clusterInfo
	if !nd.running() {
		return ci, false
	}
	r := c.get(nd, "/api/v1/cluster/")
	if r.status != 200 || r.decode(&ci) != nil {
		return ci, false
	}
	return ci, true
}

// Leader returns the running node that reports itself leader of a
// configuration of every node, if any.
func (c *cluster) Leader() (*node, bool) {
	for _, nd := range c.nodes {
		if ci, ok := c.info(nd); ok && ci.State == "Leader" && len(ci.Nodes) == len(c.nodes) {
			return nd, true
		}
	}
	return nil, false
}

func (c *cluster) ready(nd *node) bool {
	return nd.running() && c.get(nd, "/readyz").status == 200
}

// WaitHealthy waits until every node is running and ready and one leads.
func (c *cluster) WaitHealthy(timeout time.Duration) *node {
	c.t.Helper()
	var l *node
	waitFor(c.t, "a healthy cluster (every node ready, one leader)", timeout, func() bool {
		for _, nd := range c.nodes {
			if !c.ready(nd) {
				return false
			}
		}
		var ok bool
		l, ok = c.Leader()
		return ok
	})
	return l
}

type digest struct {
	NodeID       string `json:"node_id"`
	AppliedIndex uint64 `json:"applied_index"`
	Digest       string `json:"digest"`
}

func (c *cluster) digest(nd *node) (digest, bool) {
	var d digest
	if !nd.running() {
		return d, false
	}
	r := c.get(nd, "/api/v1/cluster/digest/")
	return d, r.status == 200 && r.decode(&d) == nil && d.Digest != ""
}

// waitFor polls cond every 20 ms until it holds or the deadline passes.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

// ---- nginx ----

type loadBalancer struct {
	addr, dir string
	cmd       *exec.Cmd
	exited    chan struct{}
}

// startNginx runs nginx (daemon off, one worker, every path under a temp
// dir) round-robin over the nodes' HTTP addresses. It skips the test when
// nginx is not installed or cannot start.
func startNginx(t *testing.T, c *cluster) *loadBalancer {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx"} {
			if _, serr := os.Stat(p); serr == nil {
				bin, err = p, nil
			}
		}
	}
	if err != nil {
		t.Skip("nginx not installed (make e2e installs it with apt-get install -y nginx; needs root): skipping the load-balancer test")
	}
	dir := t.TempDir()
	lb := &loadBalancer{addr: freeAddr(t), dir: dir}
	var servers strings.Builder
	for _, nd := range c.nodes {
		fmt.Fprintf(&servers, "    server %s max_fails=1 fail_timeout=2s;\n", nd.httpAddr)
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // workers need the temp dirs, which are private to us
	}
	conf := fmt.Sprintf(`%[1]s
worker_processes 1;
daemon off;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 1024; }
http {
  log_format e2e '$msec $request_method $uri $status up=$upstream_addr upstatus=$upstream_status rt=$request_time';
  access_log %[2]s/access.log e2e;
  client_body_temp_path %[2]s/client_body;
  proxy_temp_path %[2]s/proxy;
  fastcgi_temp_path %[2]s/fastcgi;
  uwsgi_temp_path %[2]s/uwsgi;
  scgi_temp_path %[2]s/scgi;
  upstream schedulerd {
%[3]s    keepalive 32;
  }
  server {
    listen %[4]s;
    location / {
      proxy_pass http://schedulerd;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host;
      # Retried on the next node only for idempotent methods (nginx's
      # default: no non_idempotent), which also marks the node failed.
      proxy_next_upstream error timeout http_503;
      proxy_connect_timeout 1s;
      proxy_read_timeout 30s;
    }
  }
}
`, user, dir, servers.String(), lb.addr)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-t", "-p", dir, "-c", confPath, "-e", filepath.Join(dir, "error.log")).CombinedOutput(); err != nil {
		t.Skipf("nginx cannot use the test configuration (%v): %s", err, out)
	}
	logf, err := os.Create(filepath.Join(dir, "nginx.out"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", confPath, "-e", filepath.Join(dir, "error.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so the worker goes with the master.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Skipf("nginx does not start: %v", err)
	}
	lb.cmd, lb.exited = cmd, make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(lb.exited) }()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- nginx error log ----\n%s", tail(filepath.Join(dir, "error.log"), 30))
		}
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-lb.exited:
		case <-time.After(5 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-lb.exited
		}
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // a worker left behind
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-lb.exited:
			t.Skipf("nginx exited at start: %s %s", tail(filepath.Join(dir, "nginx.out"), 10), tail(filepath.Join(dir, "error.log"), 10))
		default:
		}
		if r := do(c.hc, "GET", "http://"+lb.addr+"/readyz", nil); r.status == 200 {
			return lb
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx not answering on %s within 10s", lb.addr)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

func (lb *loadBalancer) url(path string) string { return "http://" + lb.addr + path }

// ---- delivery sink ----

type sinkDelivery struct {
	path, key, scheduledAt string
	attempt                string
	at                     time.Time
}

// sink records every delivery: path, Idempotency-Key, scheduled time,
// attempt and arrival time.
type sink struct {
	mu  sync.Mutex
	got []sinkDelivery
	srv *http.Server
	ln  net.Listener
}

func newSink(t testing.TB) *sink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{ln: ln}
	s.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		d := sinkDelivery{path: r.URL.Path, key: r.Header.Get("Idempotency-Key"),
			scheduledAt: r.Header.Get("X-Scheduler-Scheduled-At"), attempt: r.Header.Get("X-Scheduler-Attempt"), at: time.Now()}
		s.mu.Lock()
		s.got = append(s.got, d)
		s.mu.Unlock()
	})}
	go s.srv.Serve(ln)
	t.Cleanup(func() { s.srv.Close() })
	return s
}

func (s *sink) url(path string) string { return "http://" + s.ln.Addr().String() + path }

func (s *sink) deliveries() []sinkDelivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sinkDelivery(nil), s.got...)
}

// errorLogSummary counts nginx's error log lines by their message (the text
// after the connection number, up to the first comma).
func (lb *loadBalancer) errorLogSummary() string {
	n := map[string]int{}
	for _, line := range readLines(filepath.Join(lb.dir, "error.log")) {
		msg := line
		if _, after, ok := strings.Cut(line, ": *"); ok {
			if _, m, ok := strings.Cut(after, " "); ok {
				msg = m
			}
		}
		msg, _, _ = strings.Cut(msg, ",")
		n[msg]++
	}
	var out []string
	for m, k := range n {
		out = append(out, fmt.Sprintf("  %5d × %s", k, m))
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// upstreamFailures counts the access log's requests that some upstream
// answered with a 5xx or did not answer, by method, final status and the
// list of upstream statuses.
func (lb *loadBalancer) upstreamFailures() string {
	n := map[string]int{}
	for _, line := range readLines(filepath.Join(lb.dir, "access.log")) {
		f := strings.Fields(line)
		_, up, ok1 := strings.Cut(line, " upstatus=")
		up, _, ok2 := strings.Cut(up, " rt=")
		if len(f) < 4 || !ok1 || !ok2 {
			continue
		}
		if strings.Contains(up, "50") || strings.Contains(up, "-") || f[3] >= "500" {
			n[fmt.Sprintf("%s %s, upstream statuses %s", f[1], f[3], up)]++
		}
	}
	var out []string
	for m, k := range n {
		out = append(out, fmt.Sprintf("  %5d × %s", k, m))
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// deliveredSlotAfter: some delivery was for a slot at or after unix second s.
func (s *sink) deliveredSlotAfter(sec int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.got) - 1; i >= 0; i-- {
		if _, slot, ok := strings.Cut(s.got[i].key, ":"); ok {
			if n, err := strconv.ParseInt(slot, 10, 64); err == nil && n >= sec {
				return true
			}
		}
	}
	return false
}

// readLines is a helper for log scans.
func readLines(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}
