package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// In-process nodes: each runs the real daemon (flags, raft over loopback
// TCP, bbolt in t.TempDir(), the HTTP API) in a goroutine.

const testToken = "0123456789abcdef0123456789abcdef01234567"

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type proc struct {
	t        *testing.T
	id       string
	args     []string
	env      map[string]string
	httpAddr string
	cancel   context.CancelFunc
	done     chan int
	stdout   *syncBuffer
	stderr   *syncBuffer
	exited   bool
	code     int
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

// nodeSpec is one node's identity and addresses, fixed across restarts.
type nodeSpec struct {
	id, dir, httpAddr, raftAddr string
}

func newSpec(t testing.TB, id string) nodeSpec {
	return nodeSpec{id: id, dir: filepath.Join(t.TempDir(), id), httpAddr: freeAddr(t), raftAddr: freeAddr(t)}
}

func (s nodeSpec) args(extra ...string) []string {
	return append([]string{"-node-id", s.id, "-data-dir", s.dir, "-http-addr", s.httpAddr, "-raft-addr", s.raftAddr,
		"-log-level", "warn", "-raft-heartbeat-timeout", "300ms", "-raft-election-timeout", "300ms",
		"-raft-leader-lease-timeout", "150ms"}, extra...)
}

func startProc(t *testing.T, id, httpAddr string, args []string, env map[string]string) *proc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &proc{t: t, id: id, args: args, env: env, httpAddr: httpAddr, cancel: cancel, done: make(chan int, 1),
		stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	getenv := func(k string) string { return env[k] }
	go func() { p.done <- run(ctx, args, getenv, p.stdout, p.stderr) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("--- log of %s ---\n%s", id, p.stderr.String())
		}
	})
	return p
}

func startNode(t *testing.T, s nodeSpec, env map[string]string, extra ...string) *proc {
	return startProc(t, s.id, s.httpAddr, s.args(extra...), env)
}

// stop cancels the node as SIGTERM would and returns its exit code.
func (p *proc) stop() int {
	if !p.exited {
		p.cancel()
		select {
		case p.code = <-p.done:
		case <-time.After(30 * time.Second):
			p.t.Errorf("node %s did not stop within 30s", p.id)
		}
		p.exited = true
	}
	return p.code
}

// wait returns the exit code of a node that stops by itself.
func (p *proc) wait(timeout time.Duration) (int, bool) {
	select {
	case p.code = <-p.done:
		p.exited = true
		return p.code, true
	case <-time.After(timeout):
		return 0, false
	}
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return m
}

var client = &http.Client{Timeout: 30 * time.Second}

func call(t *testing.T, method, url, token string, body any) reply {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Token "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return reply{status: -1, body: []byte(err.Error())}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

func (p *proc) url(path string) string { return "http://" + p.httpAddr + path }

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitReady(t *testing.T, ps ...*proc) {
	t.Helper()
	for _, p := range ps {
		waitFor(t, p.id+" to be ready", 45*time.Second, func() bool {
			return call(t, "GET", p.url("/readyz"), "", nil).status == http.StatusOK
		})
	}
}

func clusterStatus(t *testing.T, p *proc) map[string]any {
	t.Helper()
	r := call(t, "GET", p.url("/api/v1/cluster/"), testToken, nil)
	if r.status != http.StatusOK {
		t.Fatalf("cluster status from %s: %d %s", p.id, r.status, r.body)
	}
	return r.json(t)
}

func leaderOf(t *testing.T, ps []*proc) (leader *proc, followers []*proc) {
	t.Helper()
	waitFor(t, "a leader with every member registered", 45*time.Second, func() bool {
		leader, followers = nil, nil
		for _, p := range ps {
			r := call(t, "GET", p.url("/api/v1/cluster/"), testToken, nil)
			if r.status != http.StatusOK {
				return false
			}
			st := r.json(t)
			for _, n := range st["nodes"].([]any) {
				if n.(map[string]any)["api_addr"] == "" {
					return false
				}
			}
			if st["state"] == "Leader" {
				leader = p
			} else {
				followers = append(followers, p)
			}
		}
		return leader != nil
	})
	return leader, followers
}

// startCluster starts three nodes with -bootstrap-expect 3 and the same -join list.
func startCluster(t *testing.T) ([]nodeSpec, []*proc) {
	t.Helper()
	specs := []nodeSpec{newSpec(t, "n1"), newSpec(t, "n2"), newSpec(t, "n3")}
	join := strings.Join([]string{specs[0].httpAddr, specs[1].httpAddr, specs[2].httpAddr}, ",")
	env := map[string]string{"SCHEDULERD_ADMIN_TOKEN": testToken}
	var ps []*proc
	for _, s := range specs {
		ps = append(ps, startNode(t, s, env, "-bootstrap-expect", "3", "-join", join))
	}
	waitReady(t, ps...)
	return specs, ps
}

func issueToken(t *testing.T, p *proc, email string) reply {
	t.Helper()
	return call(t, "POST", p.url("/api/v1/user/token/"), testToken, map[string]string{"email": email})
}

func usernames(t *testing.T, p *proc, consistency string) []string {
	t.Helper()
	r := call(t, "GET", p.url("/api/v1/user/"+consistency), testToken, nil)
	if r.status != http.StatusOK {
		t.Fatalf("list users on %s: %d %s", p.id, r.status, r.body)
	}
	var out []string
	for _, u := range r.json(t)["results"].([]any) {
		out = append(out, u.(map[string]any)["username"].(string))
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestClusterFormsForwardsFailsOverAndRejoins(t *testing.T) {
	specs, ps := startCluster(t)
	leader, followers := leaderOf(t, ps)

	// A write through a follower: forwarded, served by the leader, and
	// readable on that follower as soon as the answer arrives.
	f := followers[0]
	r := issueToken(t, f, "alice@example.org")
	if r.status != http.StatusCreated {
		t.Fatalf("write through follower: %d %s", r.status, r.body)
	}
	if got := r.header.Get("X-Scheduler-Served-By"); got != leader.id {
		t.Fatalf("X-Scheduler-Served-By = %q, want the leader %q", got, leader.id)
	}
	if !contains(usernames(t, f, ""), "alice@example.org") {
		t.Fatalf("follower %s does not show its own write right after answering", f.id)
	}
	// The token issued through the follower works on every node.
	tok := r.json(t)["token"].(string)
	for _, p := range ps {
		waitFor(t, "the new token on "+p.id, 5*time.Second, func() bool {
			return call(t, "GET", p.url("/api/v1/user/"), tok, nil).status == http.StatusOK
		})
	}
	// A strong read from a follower is served by the leader.
	if r := call(t, "GET", f.url("/api/v1/user/?consistency=strong"), testToken, nil); r.status != 200 || r.header.Get("X-Scheduler-Served-By") != leader.id {
		t.Fatalf("strong read via follower: %d served by %q", r.status, r.header.Get("X-Scheduler-Served-By"))
	}

	// Stop the leader: the survivors elect a new one and writes through
	// either of them go on.
	leader.stop()
	start := time.Now()
	r = issueToken(t, followers[1], "bob@example.org")
	if r.status != http.StatusCreated {
		t.Fatalf("write after the leader stopped: %d %s", r.status, r.body)
	}
	t.Logf("write accepted %v after stopping the leader", time.Since(start))
	for _, p := range followers {
		if !contains(usernames(t, p, "?consistency=strong"), "bob@example.org") {
			t.Fatalf("%s missing the write made after failover", p.id)
		}
	}

	// The old leader restarts on its data dir with no bootstrap flag and
	// catches up.
	var spec nodeSpec
	for _, s := range specs {
		if s.id == leader.id {
			spec = s
		}
	}
	re := startNode(t, spec, map[string]string{"SCHEDULERD_ADMIN_TOKEN": testToken})
	waitReady(t, re)
	waitFor(t, "the restarted node to catch up", 10*time.Second, func() bool {
		return contains(usernames(t, re, ""), "bob@example.org")
	})
}

func TestJoinAndRemoveThroughTheAdminAPI(t *testing.T) {
	_, ps := startCluster(t)
	_, followers := leaderOf(t, ps)

	// A fourth node joins through any member, with the admin token.
	s4 := newSpec(t, "n4")
	p4 := startNode(t, s4, map[string]string{"SCHEDULERD_ADMIN_TOKEN": testToken}, "-join", followers[0].httpAddr)
	waitReady(t, p4)
	all := append(ps, p4)
	leaderOf(t, all)
	st := clusterStatus(t, followers[1])
	if n := len(st["nodes"].([]any)); n != 4 {
		t.Fatalf("members after join = %d, want 4: %v", n, st)
	}
	// Joining again with the same id and address is a no-op.
	r := call(t, "POST", followers[1].url("/api/v1/cluster/join/"), testToken,
		map[string]string{"id": "n4", "raft_addr": s4.raftAddr, "api_addr": s4.httpAddr})
	if r.status != http.StatusOK {
		t.Fatalf("repeated join: %d %s", r.status, r.body)
	}
	// A non-admin cannot change membership.
	userTok := issueToken(t, followers[0], "carol@example.org").json(t)["token"].(string)
	if r := call(t, "DELETE", followers[0].url("/api/v1/cluster/n4/"), userTok, nil); r.status != http.StatusForbidden {
		t.Fatalf("remove by a non-admin: %d %s", r.status, r.body)
	}

	// Remove it through a follower; it disappears from every member's view.
	p4.stop()
	if r := call(t, "DELETE", followers[0].url("/api/v1/cluster/n4/"), testToken, nil); r.status != http.StatusNoContent {
		t.Fatalf("remove: %d %s", r.status, r.body)
	}
	if r := call(t, "DELETE", followers[0].url("/api/v1/cluster/n4/"), testToken, nil); r.status != http.StatusNotFound {
		t.Fatalf("second remove: %d %s, want 404", r.status, r.body)
	}
	for _, p := range ps {
		waitFor(t, "n4 gone from "+p.id, 5*time.Second, func() bool {
			return len(clusterStatus(t, p)["nodes"].([]any)) == 3
		})
	}
}

func TestNoLeaderAnswers503WithRetryAfter(t *testing.T) {
	_, ps := startCluster(t)
	leader, followers := leaderOf(t, ps)
	leader.stop()
	followers[1].stop()
	r := issueToken(t, followers[0], "dave@example.org")
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Fatalf("write without quorum: %d %s (Retry-After %q), want 503 with Retry-After", r.status, r.body, r.header.Get("Retry-After"))
	}
	// The survivor may have won an election before its last peer stopped;
	// then the write was appended but can never commit, and the answer says
	// its outcome is unknown. Either way: a 503, never a success.
	if d := r.json(t)["detail"]; d != "no cluster leader" && !strings.Contains(fmt.Sprint(d), "may or may not have been applied") {
		t.Fatalf("detail = %v", d)
	}
	if r := call(t, "GET", followers[0].url("/readyz"), "", nil); r.status != http.StatusServiceUnavailable {
		t.Fatalf("readyz without a leader: %d", r.status)
	}
}

func TestBadStarts(t *testing.T) {
	// A single-node cluster whose data dir we will reuse elsewhere.
	other := newSpec(t, "x1")
	env := map[string]string{"SCHEDULERD_ADMIN_TOKEN": testToken}
	p := startNode(t, other, env, "-bootstrap")
	waitReady(t, p)
	waitFor(t, "the other cluster to be initialised", 10*time.Second, func() bool {
		return call(t, "GET", p.url("/api/v1/cluster/"), testToken, nil).status == http.StatusOK
	})
	p.stop()

	t.Run("bootstrap on a data dir with state", func(t *testing.T) {
		p := startNode(t, other, env, "-bootstrap")
		code, ok := p.wait(20 * time.Second)
		if !ok || code != exitFatal || !strings.Contains(p.stderr.String(), "already holds cluster state") {
			t.Fatalf("exit %d (stopped: %v), stderr:\n%s", code, ok, p.stderr.String())
		}
	})

	t.Run("unreachable join", func(t *testing.T) {
		joinTimeout = 2 * time.Second
		defer func() { joinTimeout = 30 * time.Second }()
		s := newSpec(t, "lonely")
		p := startNode(t, s, env, "-join", freeAddr(t))
		code, ok := p.wait(20 * time.Second)
		if !ok || code != exitFatal || !strings.Contains(p.stderr.String(), "could not join the cluster") {
			t.Fatalf("exit %d (stopped: %v), stderr:\n%s", code, ok, p.stderr.String())
		}
	})

	t.Run("data dir of another cluster", func(t *testing.T) {
		_, ps := startCluster(t)
		leaderOf(t, ps)
		p := startNode(t, other, env, "-join", ps[0].httpAddr)
		code, ok := p.wait(20 * time.Second)
		if !ok || code != exitFatal || !strings.Contains(p.stderr.String(), "another cluster") {
			t.Fatalf("exit %d (stopped: %v), stderr:\n%s", code, ok, p.stderr.String())
		}
		// The cluster it tried to join is untouched.
		if n := len(clusterStatus(t, ps[0])["nodes"].([]any)); n != 3 {
			t.Fatalf("members = %d, want 3", n)
		}
	})
}

func TestFlagContradictionsExit2(t *testing.T) {
	cases := []struct {
		args []string
		flag string
	}{
		{[]string{"-node-id", "a", "-data-dir", "d", "-bootstrap", "-bootstrap-expect", "3", "-join", "h:1,h:2"}, "-bootstrap-expect"},
		{[]string{"-node-id", "a", "-data-dir", "d", "-http-addr", "127.0.0.1:7000", "-raft-addr", "127.0.0.1:7000"}, "-raft-addr"},
		{[]string{"-node-id", "a", "-data-dir", "d", "-http-addr", "0.0.0.0:7000"}, "-http-advertise"},
		{[]string{"-data-dir", "d"}, "-node-id"},
	}
	for _, c := range cases {
		var stderr syncBuffer
		code := run(context.Background(), c.args, func(string) string { return "" }, io.Discard, &stderr)
		if code != exitUsage || !strings.Contains(stderr.String(), c.flag) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 naming %s", c.args, code, stderr.String(), c.flag)
		}
	}
}

func TestDevNodePrintsAdminTokenOnce(t *testing.T) {
	s := newSpec(t, "dev")
	p := startProc(t, "dev", s.httpAddr, []string{"-dev", "-http-addr", s.httpAddr, "-raft-addr", s.raftAddr, "-log-level", "warn"}, nil)
	waitReady(t, p)
	var tok string
	waitFor(t, "the admin token on stdout", 10*time.Second, func() bool {
		out := p.stdout.String()
		if i := strings.LastIndex(out, ": "); i > 0 && strings.HasSuffix(out, "\n") {
			tok = strings.TrimSpace(out[i+2:])
		}
		return tok != ""
	})
	if len(tok) != 40 {
		t.Fatalf("token %q is not 40 hex characters", tok)
	}
	if strings.Contains(p.stderr.String(), tok) {
		t.Fatalf("the admin token appears in the log")
	}
	if r := call(t, "GET", p.url("/api/v1/cluster/"), tok, nil); r.status != http.StatusOK {
		t.Fatalf("admin call with the printed token: %d %s", r.status, r.body)
	}
	if n := strings.Count(p.stdout.String(), tok); n != 1 {
		t.Fatalf("token printed %d times", n)
	}
}
