package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/seedscheduler/schedulerd/fsm"
)

// failedTaskFixture creates a schedule through the API and n failed tasks
// for it through the log, as the executor would.
func failedTaskFixture(t *testing.T, a *testAPI, n int) (scheduleID string, tasks []fsm.FailedTask) {
	t.Helper()
	r := a.do(t, "POST", "/api/v1/schedule/", adminToken, "application/json", `{"endpoint": "http://sbm.example.org/api/v1/send", "cron_definition": "25 * * * *"}`)
	if r.status != 201 {
		t.Fatalf("create schedule: got %d %s, want 201", r.status, r.body)
	}
	var sc struct{ ID string }
	json.Unmarshal([]byte(r.body), &sc)
	base := time.Date(2019, 5, 10, 12, 34, 56, 123456000, time.UTC)
	for i := 1; i <= n; i++ {
		ft := fsm.FailedTask{
			ScheduleID:  sc.ID,
			TaskID:      fmt.Sprintf("00000000-0000-4000-8000-%012d", i),
			InitiatedAt: base.Add(time.Duration(i) * time.Minute),
			Reason:      fmt.Sprintf("POST http://sbm.example.org/api/v1/send: 500 Internal Server Error (attempt %d)", i),
		}
		resp, _, err := a.node.ApplyCommand(context.Background(), fsm.CmdAddFailedTask, ft)
		if err != nil {
			t.Fatalf("add failed task: %v", err)
		}
		id, ok := resp.(uint64)
		if !ok {
			t.Fatalf("add failed task answered %T %v, want the id", resp, resp)
		}
		ft.ID = id
		tasks = append(tasks, ft)
	}
	return sc.ID, tasks
}

func failedTaskJSON(base string, ft fsm.FailedTask) string {
	return fmt.Sprintf(`{"url":"%s/api/v1/failed-tasks/%d/","id":%d,"schedule":"%s/api/v1/schedule/%s/","task_id":%q,"initiated_at":%q,"reason":%q}`,
		base, ft.ID, ft.ID, base, ft.ScheduleID, ft.TaskID, formatTime(ft.InitiatedAt), ft.Reason)
}

func TestFailedTaskReads(t *testing.T) {
	a := mustAPI(t)
	user := a.newUserToken(t, "bob@example.org")
	_, tasks := failedTaskFixture(t, a, 3)
	u := a.srv.URL

	if got := failedTaskJSON(u, tasks[0]); !strings.Contains(got, `"initiated_at":"2019-05-10T12:35:56.123456Z"`) {
		t.Fatalf("fixture renders %s", got)
	}
	wantList := `{"count":3,"next":null,"previous":null,"results":[` + failedTaskJSON(u, tasks[2]) + "," +
		failedTaskJSON(u, tasks[1]) + "," + failedTaskJSON(u, tasks[0]) + `]}`
	cases := []struct {
		name, path, token string
		hdr               []string
		status            int
		want              string
	}{
		{"list", "/api/v1/failed-tasks/", user, nil, 200, wantList},
		{"list without slash", "/api/v1/failed-tasks", adminToken, nil, 200, wantList},
		{"detail", "/api/v1/failed-tasks/2/", user, nil, 200, failedTaskJSON(u, tasks[1])},
		{"detail behind the load balancer", "/api/v1/failed-tasks/1", user, []string{"X-Forwarded-Proto", "https", "X-Forwarded-Host", "lb.example.org"}, 200,
			failedTaskJSON("https://lb.example.org", tasks[0])},
		{"missing", "/api/v1/failed-tasks/4/", user, nil, 404, `{"detail":"Not found."}`},
		{"zero", "/api/v1/failed-tasks/0/", user, nil, 404, `{"detail":"Not found."}`},
		{"not an integer", "/api/v1/failed-tasks/abc/", user, nil, 404, `{"detail":"Not found."}`},
		{"a uuid", "/api/v1/failed-tasks/" + tasks[0].TaskID + "/", user, nil, 404, `{"detail":"Not found."}`},
		{"bad cursor", "/api/v1/failed-tasks/?cursor=garbage", user, nil, 404, `{"detail":"Invalid cursor"}`},
		{"anonymous list", "/api/v1/failed-tasks/", "", nil, 401, `{"detail":"Authentication credentials were not provided."}`},
		{"anonymous detail", "/api/v1/failed-tasks/1/", "", nil, 401, `{"detail":"Authentication credentials were not provided."}`},
		{"unknown token", "/api/v1/failed-tasks/", strings.Repeat("0", 40), nil, 401, `{"detail":"Invalid token."}`},
	}
	for _, c := range cases {
		r := a.do(t, "GET", c.path, c.token, "", "", c.hdr...)
		if r.status != c.status || r.body != c.want {
			t.Errorf("%s: got %d %s\nwant %d %s", c.name, r.status, r.body, c.status, c.want)
		}
	}
}

func TestFailedTaskListPaginates(t *testing.T) {
	a := mustAPI(t)
	_, tasks := failedTaskFixture(t, a, 5)
	type page struct {
		Count          int
		Next, Previous *string
		Results        []json.RawMessage
	}
	get := func(url string) (page, string) {
		t.Helper()
		r := a.do(t, "GET", strings.TrimPrefix(url, a.srv.URL), adminToken, "", "")
		if r.status != 200 {
			t.Fatalf("GET %s: got %d %s, want 200", url, r.status, r.body)
		}
		var p page
		if err := json.Unmarshal([]byte(r.body), &p); err != nil {
			t.Fatal(err)
		}
		return p, r.body
	}
	p, first := get("/api/v1/failed-tasks/?page_size=2")
	if p.Count != 5 || p.Previous != nil {
		t.Fatalf("first page %s: want count 5 and previous null", first)
	}
	var got []string
	for {
		for _, raw := range p.Results {
			got = append(got, string(raw))
		}
		if p.Next == nil {
			break
		}
		p, _ = get(*p.Next)
	}
	var want []string
	for i := len(tasks) - 1; i >= 0; i-- {
		want = append(want, failedTaskJSON(a.srv.URL, tasks[i]))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("walked\n%v\nwant\n%v", got, want)
	}
	var body string
	for p.Previous != nil {
		p, body = get(*p.Previous)
	}
	if body != first {
		t.Fatalf("back at the first page: got %s\nwant %s", body, first)
	}
}

func TestFailedTaskRequeue(t *testing.T) {
	a := mustAPI(t)
	user := a.newUserToken(t, "bob@example.org")
	failedTaskFixture(t, a, 2)
	pending := func() []fsm.RequeueRequest {
		t.Helper()
		var out []fsm.RequeueRequest
		if err := a.node.FSM().View(func(tx *bolt.Tx) (err error) {
			out, err = fsm.PendingRequeues(tx)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if n := len(pending()); n != 0 {
		t.Fatalf("%d pending requeues before any request", n)
	}

	before := time.Now().UTC().Add(-time.Second)
	cases := []struct {
		name, token, ctype, body string
		status                   int
		want                     string
		requeues                 int
	}{
		{"JSON body", user, "application/json", `{}`, 201, `{"requeued_failed_tasks":true}`, 1},
		{"no body", adminToken, "", "", 201, `{"requeued_failed_tasks":true}`, 2},
		{"any body is ignored", user, "text/plain", `requeue please`, 201, `{"requeued_failed_tasks":true}`, 3},
		{"malformed JSON is ignored too", user, "application/json", `{`, 201, `{"requeued_failed_tasks":true}`, 4},
		{"anonymous", "", "application/json", `{}`, 401, `{"detail":"Authentication credentials were not provided."}`, 4},
	}
	for _, c := range cases {
		r := a.do(t, "POST", "/api/v1/failed-tasks/", c.token, c.ctype, c.body)
		if r.status != c.status || r.body != c.want {
			t.Errorf("%s: got %d %s, want %d %s", c.name, r.status, r.body, c.status, c.want)
		}
		if n := len(pending()); n != c.requeues {
			t.Errorf("%s: %d pending requeues, want %d", c.name, n, c.requeues)
		}
		if r.status == 201 && r.header.Get(headerRaftIndex) == "" {
			t.Errorf("%s: no %s header on a write", c.name, headerRaftIndex)
		}
	}
	reqs := pending()
	if len(reqs) == 0 {
		t.Fatal("no pending requeue")
	}
	req := reqs[0]
	if req.MaxTaskID != 2 || req.RequestedAt.Before(before) || req.RequestedAt.After(time.Now().Add(time.Second)) || req.RequestedAt.Location() != time.UTC {
		t.Errorf("requeue request %+v: want MaxTaskID 2 and RequestedAt now in UTC", req)
	}
	// The failed tasks stay listed until the executor re-delivers them.
	if r := a.do(t, "GET", "/api/v1/failed-tasks/", user, "", ""); r.status != 200 || !strings.HasPrefix(r.body, `{"count":2,`) {
		t.Errorf("list after requeue: got %d %.100s", r.status, r.body)
	}
}

func TestFailedTaskMethods(t *testing.T) {
	a := mustAPI(t)
	failedTaskFixture(t, a, 1)
	cases := []struct{ method, path, allow string }{
		{"PUT", "/api/v1/failed-tasks/", "GET, HEAD, OPTIONS, POST"},
		{"PATCH", "/api/v1/failed-tasks/", "GET, HEAD, OPTIONS, POST"},
		{"DELETE", "/api/v1/failed-tasks/", "GET, HEAD, OPTIONS, POST"},
		{"PUT", "/api/v1/failed-tasks/1/", "GET, HEAD, OPTIONS"},
		{"PATCH", "/api/v1/failed-tasks/1/", "GET, HEAD, OPTIONS"},
		{"DELETE", "/api/v1/failed-tasks/1/", "GET, HEAD, OPTIONS"},
		{"POST", "/api/v1/failed-tasks/1/", "GET, HEAD, OPTIONS"},
	}
	for _, c := range cases {
		r := a.do(t, c.method, c.path, adminToken, "application/json", `{}`)
		want := `{"detail":"Method \"` + c.method + `\" not allowed."}`
		if r.status != 405 || r.body != want || r.header.Get("Allow") != c.allow {
			t.Errorf("%s %s: got %d Allow=%q %s, want 405 Allow=%q %s", c.method, c.path, r.status, r.header.Get("Allow"), r.body, c.allow, want)
		}
		if r := a.do(t, c.method, c.path, "", "application/json", `{}`); r.status != 401 {
			t.Errorf("anonymous %s %s: got %d %s, want 401 (authentication before the method)", c.method, c.path, r.status, r.body)
		}
	}
	// Deleting the schedule removes its failed tasks.
	var sid string
	a.node.FSM().View(func(tx *bolt.Tx) error {
		ft, err := fsm.GetFailedTask(tx, 1)
		sid = ft.ScheduleID
		return err
	})
	if r := a.do(t, "DELETE", "/api/v1/schedule/"+sid+"/", adminToken, "", ""); r.status != 204 {
		t.Fatalf("delete schedule: %d %s", r.status, r.body)
	}
	if r := a.do(t, "GET", "/api/v1/failed-tasks/1/", adminToken, "", ""); r.status != 404 {
		t.Errorf("failed task of a deleted schedule: got %d %s, want 404", r.status, r.body)
	}
}
