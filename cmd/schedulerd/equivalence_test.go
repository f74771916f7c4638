package main

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

var (
	uuidRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	timeRE = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`)
	hostRE = regexp.MustCompile(`http://127\.0\.0\.1:\d+`)
	curRE  = regexp.MustCompile(`cursor=[A-Za-z0-9_-]+`)
)

// normalize hides what legitimately differs between two runs: ids, times,
// the node's address and opaque cursors.
func normalize(s string) string {
	s = uuidRE.ReplaceAllString(s, "<id>")
	s = timeRE.ReplaceAllString(s, "<time>")
	s = hostRE.ReplaceAllString(s, "<host>")
	return curRE.ReplaceAllString(s, "cursor=<c>")
}

// apiSequence runs the same client session against one node and returns
// every answer, normalized. Each run uses its own endpoint so the two runs'
// schedules do not mix in filtered lists.
func apiSequence(t *testing.T, p *proc, tag string) []string {
	var out []string
	record := func(r reply) reply {
		out = append(out, fmt.Sprintf("%d %s", r.status, normalize(string(r.body))))
		return r
	}
	ep := "http://hooks.example.org/" + tag
	created := record(call(t, "POST", p.url("/api/v1/schedule/"), testToken, map[string]any{
		"endpoint": ep, "cron_definition": "0 0 1 1 * 2099", "payload": map[string]int{"n": 1}, "frequency": 3}))
	var item map[string]any
	json.Unmarshal(created.body, &item)
	id, _ := item["id"].(string)
	path := "/api/v1/schedule/" + id + "/"
	record(call(t, "GET", p.url(path), testToken, nil))
	record(call(t, "PATCH", p.url(path), testToken, map[string]any{"enabled": false, "interval_definition": "2 hours"}))
	record(call(t, "PUT", p.url(path), testToken, map[string]any{"cron_definition": "bad"}))
	record(call(t, "PUT", p.url(path), testToken, map[string]any{"endpoint": ep, "cron_definition": nil}))
	record(call(t, "POST", p.url("/api/v1/schedule/"), testToken, map[string]any{"endpoint": ep, "interval_definition": "0 days"}))
	record(call(t, "POST", p.url("/api/v1/schedule/"), testToken, map[string]any{"endpoint": ep}))
	record(call(t, "GET", p.url("/api/v1/schedule/?page_size=1&endpoint="+ep), testToken, nil))
	record(call(t, "GET", p.url("/api/v1/schedule/?enabled=false&endpoint="+ep), testToken, nil))
	record(call(t, "DELETE", p.url(path), testToken, nil))
	record(call(t, "GET", p.url(path), testToken, nil))
	record(call(t, "DELETE", p.url(path), testToken, nil))
	record(call(t, "GET", p.url("/api/v1/schedule/?endpoint="+ep), testToken, nil))
	record(call(t, "POST", p.url("/api/v1/user/token/"), testToken, map[string]any{"email": "not an email"}))
	record(call(t, "GET", p.url("/api/v1/user/1/"), testToken, nil))
	record(call(t, "GET", p.url("/api/v1/user/?cursor=nonsense"), testToken, nil))
	return out
}

func TestFollowerAndLeaderAnswerAlike(t *testing.T) {
	_, ps := startCluster(t)
	leader, followers := leaderOf(t, ps)
	onLeader := apiSequence(t, leader, "same")
	onFollower := apiSequence(t, followers[0], "same-2")
	// The endpoints differ only by the tag; normalize it too.
	for i := range onFollower {
		onFollower[i] = strings.ReplaceAll(onFollower[i], "same-2", "same")
	}
	if len(onLeader) != len(onFollower) || !strings.HasPrefix(onLeader[0], "201 ") || !strings.HasPrefix(onLeader[9], "204 ") {
		t.Fatalf("sequence did not run as expected:\n%s", strings.Join(onLeader, "\n"))
	}
	for i := range onLeader {
		if onLeader[i] != onFollower[i] {
			t.Errorf("answer %d differs:\nleader:   %s\nfollower: %s", i, onLeader[i], onFollower[i])
		}
	}
}
