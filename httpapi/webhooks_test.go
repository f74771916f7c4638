package httpapi

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
)

type webhookItem struct {
	ID      uint64 `json:"id"`
	Created string `json:"created"`
	Updated string `json:"updated"`
	Event   string `json:"event"`
	Target  string `json:"target"`
	User    uint64 `json:"user"`
}

func (h webhookItem) json() string {
	return fmt.Sprintf(`{"id":%d,"created":%q,"updated":%q,"event":%q,"target":%q,"user":%d}`,
		h.ID, h.Created, h.Updated, h.Event, h.Target, h.User)
}

func decodeWebhook(t *testing.T, body string) webhookItem {
	t.Helper()
	if got, want := objectKeys(t, body), []string{"id", "created", "updated", "event", "target", "user"}; !slices.Equal(got, want) {
		t.Fatalf("webhook keys: got %v, want %v (%s)", got, want, body)
	}
	var h webhookItem
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		t.Fatal(err)
	}
	return h
}

func (a *testAPI) createWebhook(t *testing.T, token, target string) webhookItem {
	t.Helper()
	r := a.do(t, "POST", "/api/v1/webhook/", token, "application/json", fmt.Sprintf(`{"event": "schedule.added", "target": %q}`, target))
	if r.status != 201 {
		t.Fatalf("create webhook: got %d %s, want 201", r.status, r.body)
	}
	return decodeWebhook(t, r.body)
}

func TestWebhookLifecycle(t *testing.T) {
	a := mustAPI(t)
	bob := a.newUserToken(t, "bob@example.org") // user 2

	r := a.do(t, "POST", "/api/v1/webhook/", bob, "application/json",
		`{"event": "schedule.added", "target": " http://hooks.example.org/seed ", "id": 99, "user": 1, "created": "2000-01-01T00:00:00Z"}`)
	if r.status != 201 {
		t.Fatalf("create: got %d %s, want 201", r.status, r.body)
	}
	h := decodeWebhook(t, r.body)
	want := webhookItem{ID: 1, Created: h.Created, Updated: h.Created, Event: "schedule.added", Target: "http://hooks.example.org/seed", User: 2}
	if r.body != want.json() {
		t.Fatalf("create: got %s\nwant %s", r.body, want.json())
	}
	if !strings.HasSuffix(h.Created, "Z") || strings.HasPrefix(h.Created, "2000") {
		t.Errorf("created %q: want the server's time in UTC", h.Created)
	}

	// Any user sees and changes any webhook.
	for _, path := range []string{"/api/v1/webhook/1/", "/api/v1/webhook/1"} {
		if r := a.do(t, "GET", path, adminToken, "", ""); r.status != 200 || r.body != want.json() {
			t.Errorf("GET %s: got %d %s\nwant 200 %s", path, r.status, r.body, want.json())
		}
	}

	r = a.do(t, "PUT", "/api/v1/webhook/1/", adminToken, "application/json", `{"event": "schedule.added", "target": "https://other.example.org/x"}`)
	put := decodeWebhook(t, r.body)
	want.Target, want.Updated = "https://other.example.org/x", put.Updated
	if r.status != 200 || r.body != want.json() {
		t.Errorf("PUT: got %d %s\nwant 200 %s", r.status, r.body, want.json())
	}
	if put.Updated < put.Created {
		t.Errorf("PUT: updated %s before created %s", put.Updated, put.Created)
	}

	r = a.do(t, "PATCH", "/api/v1/webhook/1/", bob, "application/json", `{"target": "http://third.example.org:8080/hook?x=1"}`)
	patch := decodeWebhook(t, r.body)
	want.Target, want.Updated = "http://third.example.org:8080/hook?x=1", patch.Updated
	if r.status != 200 || r.body != want.json() {
		t.Errorf("PATCH target: got %d %s\nwant 200 %s", r.status, r.body, want.json())
	}
	r = a.do(t, "PATCH", "/api/v1/webhook/1/", bob, "application/json", `{}`)
	empty := decodeWebhook(t, r.body)
	want.Updated = empty.Updated
	if r.status != 200 || r.body != want.json() {
		t.Errorf("empty PATCH: got %d %s\nwant 200 %s", r.status, r.body, want.json())
	}

	if r := a.do(t, "DELETE", "/api/v1/webhook/1/", bob, "", ""); r.status != 204 || r.body != "" {
		t.Errorf("DELETE: got %d %q, want 204 and no body", r.status, r.body)
	}
	for _, m := range []string{"GET", "DELETE", "PATCH", "PUT"} {
		if r := a.do(t, m, "/api/v1/webhook/1/", bob, "application/json", `{"event": "schedule.added", "target": "http://x.example.org/"}`); r.status != 404 || r.body != `{"detail":"Not found."}` {
			t.Errorf("%s after delete: got %d %s, want 404", m, r.status, r.body)
		}
	}
	if r := a.do(t, "GET", "/api/v1/webhook/", bob, "", ""); r.status != 200 || r.body != `{"count":0,"next":null,"previous":null,"results":[]}` {
		t.Errorf("empty list: got %d %s", r.status, r.body)
	}
}

func TestWebhookValidation(t *testing.T) {
	a := mustAPI(t)
	a.createWebhook(t, adminToken, "http://hooks.example.org/1")
	long := "http://example.org/" + strings.Repeat("a", maxTargetLen-len("http://example.org/"))
	const required = `"This field is required."`
	cases := []struct {
		name, method, path, token, ctype, body string
		status                                 int
		want                                   string
	}{
		{"empty body", "POST", "/api/v1/webhook/", adminToken, "application/json", `{}`, 400,
			`{"event":[` + required + `],"target":[` + required + `]}`},
		{"no body at all", "POST", "/api/v1/webhook/", adminToken, "", "", 400,
			`{"event":[` + required + `],"target":[` + required + `]}`},
		{"unsupported event", "POST", "/api/v1/webhook/", adminToken, "application/json", `{"event": "schedule.deleted", "target": "http://x.example.org/"}`, 400,
			`{"event":["\"schedule.deleted\" is not a valid choice."]}`},
		{"blank event", "POST", "/api/v1/webhook/", adminToken, "application/json", `{"event": "", "target": "http://x.example.org/"}`, 400,
			`{"event":["\"\" is not a valid choice."]}`},
		{"event with spaces", "POST", "/api/v1/webhook/", adminToken, "application/json", `{"event": " schedule.added", "target": "http://x.example.org/"}`, 400,
			`{"event":["\" schedule.added\" is not a valid choice."]}`},
		{"numeric event", "POST", "/api/v1/webhook/", adminToken, "application/json", `{"event": 5, "target": "http://x.example.org/"}`, 400,
			`{"event":["\"5\" is not a valid choice."]}`},
		{"null event", "POST", "/api/v1/webhook/", adminToken, "application/json", `{"event": null, "target": "http://x.example.org/"}`, 400,
			`{"event":["This field may not be null."]}`},
		{"null target", "POST", "/api/v1/webhook/", adminToken, "application/json", `{"event": "schedule.added", "target": null}`, 400,
			`{"target":["This field may not be null."]}`},
		{"blank target", "POST", "/api/v1/webhook/", adminToken, "application/json", `{"event": "schedule.added", "target": "  "}`, 400,
			`{"target":["This field may not be blank."]}`},
		{"not a URL", "POST", "/api/v1/webhook/", adminToken, "application/json", `{"event": "schedule.added", "target": "hooks.example.org"}`, 400,
			`{"target":["Enter a valid URL."]}`},
		{"not http", "POST", "/api/v1/webhook/", adminToken, "application/json", `{"event": "schedule.added", "target": "ftp://hooks.example.org/"}`, 400,
			`{"target":["Enter a valid URL."]}`},
		{"target too long", "POST", "/api/v1/webhook/", adminToken, "application/json", `{"event": "schedule.added", "target": "` + long + `b"}`, 400,
			`{"target":["Ensure this field has no more than 255 characters."]}`},
		{"target of 255", "POST", "/api/v1/webhook/", adminToken, "application/json", `{"event": "schedule.added", "target": "` + long + `"}`, 201,
			`{"id":2,`},
		{"both wrong", "POST", "/api/v1/webhook/", adminToken, "application/json", `{"event": "x", "target": "y"}`, 400,
			`{"event":["\"x\" is not a valid choice."],"target":["Enter a valid URL."]}`},
		{"text body", "POST", "/api/v1/webhook/", adminToken, "text/plain", `event=schedule.added`, 415,
			`{"detail":"Unsupported media type \"text/plain\" in request."}`},
		{"form body", "POST", "/api/v1/webhook/", adminToken, "application/x-www-form-urlencoded", `event=schedule.added`, 415,
			`{"detail":"Unsupported media type \"application/x-www-form-urlencoded\" in request."}`},
		{"malformed JSON", "POST", "/api/v1/webhook/", adminToken, "application/json", `{"event"`, 400, `{"detail":"JSON parse error - `},
		{"JSON list", "POST", "/api/v1/webhook/", adminToken, "application/json", `[]`, 400,
			`{"non_field_errors":["Invalid data. Expected a dictionary, but got list."]}`},
		{"anonymous", "POST", "/api/v1/webhook/", "", "application/json", `{}`, 401, `{"detail":"Authentication credentials were not provided."}`},
		{"unknown token", "GET", "/api/v1/webhook/", strings.Repeat("0", 40), "", "", 401, `{"detail":"Invalid token."}`},
		{"anonymous detail", "GET", "/api/v1/webhook/1/", "", "", "", 401, `{"detail":"Authentication credentials were not provided."}`},
		{"PUT needs both fields", "PUT", "/api/v1/webhook/1/", adminToken, "application/json", `{"event": "schedule.added"}`, 400,
			`{"target":[` + required + `]}`},
		{"PUT needs both fields (2)", "PUT", "/api/v1/webhook/1/", adminToken, "application/json", `{"target": "http://x.example.org/"}`, 400,
			`{"event":[` + required + `]}`},
		{"PATCH validates what it carries", "PATCH", "/api/v1/webhook/1/", adminToken, "application/json", `{"event": "nope"}`, 400,
			`{"event":["\"nope\" is not a valid choice."]}`},
		{"PATCH text body", "PATCH", "/api/v1/webhook/1/", adminToken, "text/plain", `x`, 415,
			`{"detail":"Unsupported media type \"text/plain\" in request."}`},
		{"PATCH missing is 404 before the body", "PATCH", "/api/v1/webhook/99/", adminToken, "application/json", `{"event": "nope"}`, 404,
			`{"detail":"Not found."}`},
		{"PUT missing", "PUT", "/api/v1/webhook/99/", adminToken, "application/json", `{"event": "schedule.added", "target": "http://x.example.org/"}`, 404,
			`{"detail":"Not found."}`},
	}
	for _, c := range cases {
		r := a.do(t, c.method, c.path, c.token, c.ctype, c.body)
		// A want that is not a whole object is a prefix.
		exact := strings.HasSuffix(c.want, "}")
		if r.status != c.status || exact && r.body != c.want || !exact && !strings.HasPrefix(r.body, c.want) {
			t.Errorf("%s: got %d %s\nwant %d %s", c.name, r.status, r.body, c.status, c.want)
		}
		if r.status == 401 && r.header.Get("WWW-Authenticate") != `Basic realm="api"` {
			t.Errorf("%s: WWW-Authenticate %q", c.name, r.header.Get("WWW-Authenticate"))
		}
	}
}

func TestWebhookNotFoundAndMethods(t *testing.T) {
	a := mustAPI(t)
	a.createWebhook(t, adminToken, "http://hooks.example.org/1")
	for _, path := range []string{"/api/v1/webhook/99/", "/api/v1/webhook/0/", "/api/v1/webhook/-1/", "/api/v1/webhook/abc/",
		"/api/v1/webhook/1.0/", "/api/v1/webhook/18446744073709551616/"} {
		for _, m := range []string{"GET", "PUT", "PATCH", "DELETE"} {
			r := a.do(t, m, path, adminToken, "application/json", `{"event": "schedule.added", "target": "http://x.example.org/"}`)
			if r.status != 404 || r.body != `{"detail":"Not found."}` {
				t.Errorf("%s %s: got %d %s, want 404 {\"detail\":\"Not found.\"}", m, path, r.status, r.body)
			}
		}
	}
	cases := []struct{ method, path, allow string }{
		{"PUT", "/api/v1/webhook/", "GET, HEAD, OPTIONS, POST"},
		{"PATCH", "/api/v1/webhook/", "GET, HEAD, OPTIONS, POST"},
		{"DELETE", "/api/v1/webhook/", "GET, HEAD, OPTIONS, POST"},
		{"POST", "/api/v1/webhook/1/", "DELETE, GET, HEAD, OPTIONS, PATCH, PUT"},
	}
	for _, c := range cases {
		r := a.do(t, c.method, c.path, adminToken, "application/json", `{}`)
		want := `{"detail":"Method \"` + c.method + `\" not allowed."}`
		if r.status != 405 || r.body != want || r.header.Get("Allow") != c.allow {
			t.Errorf("%s %s: got %d Allow=%q %s, want 405 Allow=%q %s", c.method, c.path, r.status, r.header.Get("Allow"), r.body, c.allow, want)
		}
		// Authentication comes before the method.
		if r := a.do(t, c.method, c.path, "", "application/json", `{}`); r.status != 401 {
			t.Errorf("anonymous %s %s: got %d %s, want 401", c.method, c.path, r.status, r.body)
		}
	}
}

func TestWebhookListPaginates(t *testing.T) {
	a := mustAPI(t)
	var all []webhookItem
	for i := 1; i <= 5; i++ {
		all = append(all, a.createWebhook(t, adminToken, fmt.Sprintf("http://hooks.example.org/%d", i)))
	}
	type page struct {
		Count    int
		Next     *string
		Previous *string
		Results  []json.RawMessage
	}
	get := func(url string) (page, string) {
		t.Helper()
		url = strings.TrimPrefix(url, "http://lb.example.org")
		r := a.do(t, "GET", url, adminToken, "", "", "X-Forwarded-Host", "lb.example.org")
		if r.status != 200 {
			t.Fatalf("GET %s: got %d %s, want 200", url, r.status, r.body)
		}
		if got, want := objectKeys(t, r.body), []string{"count", "next", "previous", "results"}; !slices.Equal(got, want) {
			t.Fatalf("page keys: got %v, want %v", got, want)
		}
		var p page
		if err := json.Unmarshal([]byte(r.body), &p); err != nil {
			t.Fatal(err)
		}
		return p, r.body
	}
	p, first := get("/api/v1/webhook/?page_size=2")
	if p.Count != 5 || p.Previous != nil || p.Next == nil {
		t.Fatalf("first page: %s, want count 5, previous null, a next link", first)
	}
	var ids []uint64
	pages := 1
	for {
		for _, raw := range p.Results {
			h := decodeWebhook(t, string(raw))
			if want := all[h.ID-1].json(); string(raw) != want {
				t.Errorf("item %d: got %s, want %s", h.ID, raw, want)
			}
			ids = append(ids, h.ID)
		}
		if p.Next == nil {
			break
		}
		if !strings.HasPrefix(*p.Next, "http://lb.example.org/api/v1/webhook/?") || !strings.Contains(*p.Next, "page_size=2") {
			t.Fatalf("next %q: want the request URL with a cursor", *p.Next)
		}
		p, _ = get(*p.Next)
		pages++
	}
	if !slices.Equal(ids, []uint64{5, 4, 3, 2, 1}) || pages != 3 {
		t.Fatalf("walked %d pages, ids %v; want 3 pages, ids [5 4 3 2 1]", pages, ids)
	}
	if p.Previous == nil {
		t.Fatal("last page has no previous link")
	}
	var body string
	for p.Previous != nil {
		p, body = get(*p.Previous)
	}
	if body != first {
		t.Fatalf("back at the first page: got %s\nwant %s", body, first)
	}
	for _, q := range []string{"cursor=garbage", "cursor=" + encodeCursor(cursor{Position: []byte{1}})[:5]} {
		if r := a.do(t, "GET", "/api/v1/webhook/?"+q, adminToken, "", ""); r.status != 404 || r.body != `{"detail":"Invalid cursor"}` {
			t.Errorf("%s: got %d %s, want 404 {\"detail\":\"Invalid cursor\"}", q, r.status, r.body)
		}
	}
	if r := a.do(t, "GET", "/api/v1/webhook/?page_size=0", adminToken, "", ""); r.status != 400 ||
		r.body != `{"page_size":["Ensure this value is between 1 and 1000."]}` {
		t.Errorf("page_size=0: got %d %s", r.status, r.body)
	}
	if r := a.do(t, "GET", "/api/v1/webhook/?consistency=strong", adminToken, "", ""); r.status != 200 || !strings.HasPrefix(r.body, `{"count":5,"next":null,"previous":null,`) {
		t.Errorf("strong read: got %d %.200s", r.status, r.body)
	}
}
