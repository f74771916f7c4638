package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/seedscheduler/schedulerd/cluster"
	"github.com/seedscheduler/schedulerd/fsm"
)

const adminToken = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1"

// testAPI is a one-node cluster with the API in front of it.
type testAPI struct {
	node *cluster.Node
	srv  *httptest.Server
}

func mustAPI(t *testing.T) *testAPI {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	raftAddr := l.Addr().String()
	l.Close()
	node, err := cluster.Open(cluster.Config{
		NodeID: "t1", DataDir: filepath.Join(t.TempDir(), "t1"), RaftBind: raftAddr, RaftAdvertise: raftAddr,
		APIAdvertise: "127.0.0.1:1", HeartbeatTimeout: 100 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond,
		LeaderLeaseTimeout: 50 * time.Millisecond, CommitTimeout: 5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close() })
	if err := node.Bootstrap(nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !node.IsLeader() {
		if time.Now().After(deadline) {
			t.Fatal("no leader")
		}
		time.Sleep(5 * time.Millisecond)
	}
	d := sha256.Sum256([]byte(adminToken))
	ctx := context.Background()
	if _, _, err := node.ApplyCommand(ctx, fsm.CmdInit, fsm.InitCmd{ClusterID: "c", ClusterKey: "k",
		AdminEmail: "admin@localhost", TokenDigest: d[:], At: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(Config{Node: node}))
	t.Cleanup(srv.Close)
	return &testAPI{node: node, srv: srv}
}

type resp struct {
	status int
	header http.Header
	body   string
}

func (a *testAPI) do(t *testing.T, method, path, token, contentType, body string, hdr ...string) resp {
	t.Helper()
	req, err := http.NewRequest(method, a.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Token "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return resp{r.StatusCode, r.Header, string(b)}
}

func (a *testAPI) newUserToken(t *testing.T, email string) string {
	t.Helper()
	r := a.do(t, "POST", "/api/v1/user/token/", adminToken, "application/json", fmt.Sprintf(`{"email": %q}`, email))
	if r.status != 201 {
		t.Fatalf("issue token for %s: %d %s", email, r.status, r.body)
	}
	var out struct{ Token string }
	json.Unmarshal([]byte(r.body), &out)
	if len(out.Token) != 40 {
		t.Fatalf("token %q is not 40 characters", out.Token)
	}
	return out.Token
}

func TestIssueTokenRoute(t *testing.T) {
	a := mustAPI(t)
	userTok := a.newUserToken(t, "bob@example.org")
	cases := []struct {
		name, token, ctype, body string
		status                   int
		want                     string
	}{
		{"missing email", adminToken, "application/json", `{}`, 400, `{"email":["This field is required."]}`},
		{"null email", adminToken, "application/json", `{"email": null}`, 400, `{"email":["This field is required."]}`},
		{"invalid email", adminToken, "application/json", `{"email": "nope"}`, 400, `{"email":["Enter a valid email address."]}`},
		{"form body", adminToken, "application/x-www-form-urlencoded", `email=carol%40example.org`, 201, `{"token":`},
		{"text body", adminToken, "text/plain", `email`, 415, `{"detail":"Unsupported media type \"text/plain\" in request."}`},
		{"malformed json", adminToken, "application/json", `{"email"`, 400, `{"detail":"JSON parse error - `},
		{"no credentials", "", "application/json", `{"email": "x@example.org"}`, 401, `{"detail":"Authentication credentials were not provided."}`},
		{"unknown token", strings.Repeat("0", 40), "application/json", `{}`, 401, `{"detail":"Invalid token."}`},
		{"not admin", userTok, "application/json", `{"email": "x@example.org"}`, 403, `{"detail":"You do not have permission to perform this action."}`},
		{"too large", adminToken, "application/json", `{"email": "` + strings.Repeat("a", 1<<20) + `"}`, 413, `{"detail":`},
	}
	for _, c := range cases {
		r := a.do(t, "POST", "/api/v1/user/token", c.token, c.ctype, c.body)
		if r.status != c.status || !strings.HasPrefix(r.body, c.want) {
			t.Errorf("%s: got %d %s, want %d %s", c.name, r.status, r.body, c.status, c.want)
		}
	}
	// A second token for the same user: both stay valid.
	second := a.newUserToken(t, "bob@example.org")
	for _, tok := range []string{userTok, second} {
		if r := a.do(t, "GET", "/api/v1/user/", tok, "", ""); r.status != 200 {
			t.Errorf("token %s..: %d", tok[:6], r.status)
		}
	}
	if r := a.do(t, "GET", "/api/v1/user/token/", adminToken, "", ""); r.status != 405 || r.header.Get("Allow") != "OPTIONS, POST" {
		t.Errorf("GET on token route: %d Allow=%q", r.status, r.header.Get("Allow"))
	}
}

func TestUserListPaginatesBothWays(t *testing.T) {
	a := mustAPI(t)
	for i := 1; i <= 4; i++ {
		a.newUserToken(t, fmt.Sprintf("u%d@example.org", i))
	}
	type page struct {
		Count    int
		Next     *string
		Previous *string
		Results  []struct{ URL, Username string }
	}
	get := func(url string) page {
		t.Helper()
		url = strings.TrimPrefix(url, "http://lb.example.org")
		r := a.do(t, "GET", url, adminToken, "", "", "X-Forwarded-Host", "lb.example.org")
		if r.status != 200 {
			t.Fatalf("GET %s: %d %s", url, r.status, r.body)
		}
		var p page
		if err := json.Unmarshal([]byte(r.body), &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Five users (the admin and four), newest first, two per page.
	var seen []string
	p := get("/api/v1/user/?page_size=2")
	if p.Previous != nil || p.Count != 5 {
		t.Fatalf("first page: previous=%v count=%d", p.Previous, p.Count)
	}
	pages := 1
	for {
		for _, u := range p.Results {
			seen = append(seen, u.Username)
			if !strings.HasPrefix(u.URL, "http://lb.example.org/api/v1/user/") {
				t.Fatalf("item url %q not built from X-Forwarded-Host", u.URL)
			}
		}
		if p.Next == nil {
			break
		}
		if !strings.Contains(*p.Next, "page_size=2") {
			t.Fatalf("next %q lost page_size", *p.Next)
		}
		p = get(*p.Next)
		pages++
	}
	want := "u4@example.org u3@example.org u2@example.org u1@example.org admin@localhost"
	if strings.Join(seen, " ") != want || pages != 3 {
		t.Fatalf("walked %d pages: %v, want %s", pages, seen, want)
	}
	for p.Previous != nil {
		p = get(*p.Previous)
	}
	if len(p.Results) != 2 || p.Results[0].Username != "u4@example.org" {
		t.Fatalf("back at the first page: %+v", p.Results)
	}
	if r := a.do(t, "GET", "/api/v1/user/?cursor=garbage", adminToken, "", ""); r.status != 404 || r.body != `{"detail":"Invalid cursor"}` {
		t.Fatalf("bad cursor: %d %s", r.status, r.body)
	}
}

func TestUserDetail(t *testing.T) {
	a := mustAPI(t)
	r := a.do(t, "GET", "/api/v1/user/1/", adminToken, "", "")
	want := `{"url":"` + a.srv.URL + `/api/v1/user/1/","username":"admin@localhost","email":"admin@localhost","groups":[]}`
	if r.status != 200 || r.body != want {
		t.Fatalf("got %d %s, want %s", r.status, r.body, want)
	}
	for _, path := range []string{"/api/v1/user/99/", "/api/v1/user/abc/", "/api/v1/user/-1/", "/api/v1/nothing/"} {
		if r := a.do(t, "GET", path, adminToken, "", ""); r.status != 404 || r.body != `{"detail":"Not found."}` {
			t.Errorf("%s: %d %s", path, r.status, r.body)
		}
	}
}

func TestTokenAuthWithPassword(t *testing.T) {
	a := mustAPI(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.node.ApplyCommand(context.Background(), fsm.CmdCreateUser, fsm.CreateUserCmd{Username: "dora", Email: "dora@example.org", PasswordHash: string(hash)}); err != nil {
		t.Fatal(err)
	}
	r := a.do(t, "POST", "/api/token-auth/", "", "application/json", `{"username": "dora", "password": "wrong"}`)
	if r.status != 400 || r.body != `{"non_field_errors":["Unable to log in with provided credentials."]}` {
		t.Fatalf("bad password: %d %s", r.status, r.body)
	}
	r = a.do(t, "POST", "/api/token-auth/", "", "application/x-www-form-urlencoded", `username=dora&password=s3cret`)
	if r.status != 200 || !strings.HasPrefix(r.body, `{"token":"`) {
		t.Fatalf("good password: %d %s", r.status, r.body)
	}
	// Basic auth works on protected routes too.
	req, _ := http.NewRequest("GET", a.srv.URL+"/api/v1/user/", nil)
	req.SetBasicAuth("dora", "s3cret")
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("basic auth: %v %v", err, res.StatusCode)
	}
	res.Body.Close()
}

func TestProbesAndClusterStatus(t *testing.T) {
	a := mustAPI(t)
	if r := a.do(t, "GET", "/healthz", "", "", ""); r.status != 200 {
		t.Fatalf("healthz: %d", r.status)
	}
	deadline := time.Now().Add(5 * time.Second)
	for a.do(t, "GET", "/readyz", "", "", "").status != 200 {
		if time.Now().After(deadline) {
			t.Fatal("never ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
	r := a.do(t, "GET", "/api/v1/cluster/", adminToken, "", "")
	var st struct {
		LeaderID string `json:"leader_id"`
		Nodes    []struct {
			ID     string
			Leader bool
			Voter  bool
		}
	}
	json.Unmarshal([]byte(r.body), &st)
	if r.status != 200 || st.LeaderID != "t1" || len(st.Nodes) != 1 || !st.Nodes[0].Leader || !st.Nodes[0].Voter {
		t.Fatalf("cluster status: %d %s", r.status, r.body)
	}
	if r := a.do(t, "GET", "/api/v1/cluster/?consistency=strong", adminToken, "", ""); r.status != 200 {
		t.Fatalf("strong read on the leader: %d %s", r.status, r.body)
	}
	r = a.do(t, "GET", "/api/v1/cluster/digest/", adminToken, "", "")
	var dg struct {
		AppliedIndex uint64 `json:"applied_index"`
		Digest       string
	}
	json.Unmarshal([]byte(r.body), &dg)
	if want, idx, _ := a.node.FSM().DigestAt(); r.status != 200 || dg.Digest != want || dg.AppliedIndex != idx || len(want) != 64 {
		t.Fatalf("digest: %d %s, want %s at %d", r.status, r.body, want, idx)
	}
	if r := a.do(t, "GET", "/api/v1/cluster/digest/", a.newUserToken(t, "u@example.org"), "", ""); r.status != 403 {
		t.Fatalf("digest as a non-admin: %d", r.status)
	}
	if r := a.do(t, "DELETE", "/api/v1/cluster/nobody/", adminToken, "", ""); r.status != 404 {
		t.Fatalf("remove unknown: %d %s", r.status, r.body)
	}
	if r := a.do(t, "POST", "/api/v1/cluster/join/", "", "application/json", `{}`); r.status != 401 {
		t.Fatalf("anonymous join: %d %s", r.status, r.body)
	}
	if r := a.do(t, "POST", "/api/v1/cluster/join/", "", "application/json", `{}`, "X-Scheduler-Cluster-Key", "k"); r.status != 400 ||
		!strings.Contains(r.body, `"id":["This field is required."]`) {
		t.Fatalf("join with member key and no body: %d %s", r.status, r.body)
	}
}

func TestErrorMapping(t *testing.T) {
	cases := []struct {
		err    error
		status int
		detail string
		retry  bool
	}{
		{cluster.ErrNotLeader, 503, "no cluster leader", true},
		{cluster.ErrLeaderNotFound, 503, "no cluster leader", true},
		{fmt.Errorf("apply: %w", cluster.ErrLeadershipLost), 503, "apply: " + cluster.ErrLeadershipLost.Error(), true},
		{fmt.Errorf("commit: %w: %w", fsm.ErrFailed, syscall.ENOSPC), 500, "commit: state machine failed: no space left on device", false},
		{fmt.Errorf("user 9: %w", fsm.ErrNotFound), 404, "Not found.", false},
		{fmt.Errorf("user x: %w", fsm.ErrConflict), 409, "user x: already exists", false},
		{errors.New("boom"), 500, "internal error: boom", false},
	}
	for _, c := range cases {
		w := httptest.NewRecorder()
		writeError(w, c.err)
		var body struct{ Detail string }
		json.Unmarshal(w.Body.Bytes(), &body)
		if w.Code != c.status || body.Detail != c.detail || (w.Header().Get("Retry-After") != "") != c.retry {
			t.Errorf("%v: got %d %q Retry-After=%q, want %d %q retry=%v", c.err, w.Code, body.Detail,
				w.Header().Get("Retry-After"), c.status, c.detail, c.retry)
		}
	}
}
