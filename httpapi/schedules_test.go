package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

var scheduleKeys = []string{"url", "id", "frequency", "cron_definition", "interval_definition", "endpoint", "payload",
	"auth_token", "next_send_at", "enabled", "created_at", "created_by", "updated_at", "updated_by", "triggered",
	"last_run_at", "next_run_at"}

// keysInOrder returns the top-level keys of a JSON object in document order.
func keysInOrder(t *testing.T, body string) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %s", body)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func (a *testAPI) mustCreateSchedule(t *testing.T, body string) map[string]any {
	t.Helper()
	r := a.do(t, "POST", "/api/v1/schedule/", adminToken, "application/json", body)
	if r.status != http.StatusCreated {
		t.Fatalf("create %s: %d %s", body, r.status, r.body)
	}
	var m map[string]any
	json.Unmarshal([]byte(r.body), &m)
	return m
}

var rfc3339Micro = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z$`)

func TestCreateScheduleShape(t *testing.T) {
	a := mustAPI(t)
	r := a.do(t, "POST", "/api/v1/schedule/", adminToken, "application/json",
		`{"endpoint": " http://sbm.example.org/api/v1/send ", "cron_definition": "25 * * * *", "payload": {"a": [1, 2]},
		  "auth_token": "blah", "id": "ignored", "triggered": 99, "unknown": 1}`,
		"X-Forwarded-Proto", "https", "X-Forwarded-Host", "lb.example.org")
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	if got := keysInOrder(t, r.body); strings.Join(got, ",") != strings.Join(scheduleKeys, ",") {
		t.Fatalf("keys = %v\nwant   %v", got, scheduleKeys)
	}
	var m map[string]any
	json.Unmarshal([]byte(r.body), &m)
	id := m["id"].(string)
	want := map[string]any{
		"url": "https://lb.example.org/api/v1/schedule/" + id + "/", "frequency": nil, "cron_definition": "25 * * * *",
		"interval_definition": nil, "endpoint": "http://sbm.example.org/api/v1/send", "auth_token": "blah",
		"next_send_at": nil, "enabled": true, "created_by": "https://lb.example.org/api/v1/user/1/",
		"updated_by": "https://lb.example.org/api/v1/user/1/", "triggered": float64(0), "last_run_at": nil,
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %#v, want %#v", k, m[k], v)
		}
	}
	if fmt.Sprint(m["payload"]) != "map[a:[1 2]]" {
		t.Errorf("payload = %v", m["payload"])
	}
	if r.header.Get("Location") != m["url"] {
		t.Errorf("Location = %q, want %q", r.header.Get("Location"), m["url"])
	}
	for _, k := range []string{"created_at", "updated_at", "next_run_at"} {
		if s, _ := m[k].(string); !rfc3339Micro.MatchString(s) {
			t.Errorf("%s = %q is not RFC 3339 UTC", k, s)
		}
	}
	next, _ := time.Parse(time.RFC3339, m["next_run_at"].(string))
	if next.Minute() != 25 || next.Second() != 0 || !next.After(time.Now()) {
		t.Errorf("next_run_at = %v, want the next :25 minute", next)
	}
	// A GET of the item is the same document.
	g := a.do(t, "GET", "/api/v1/schedule/"+id+"/", adminToken, "", "", "X-Forwarded-Proto", "https", "X-Forwarded-Host", "lb.example.org")
	if g.status != 200 || g.body != r.body {
		t.Fatalf("GET after create:\n%s\nwant\n%s", g.body, r.body)
	}
}

func TestScheduleValidation(t *testing.T) {
	a := mustAPI(t)
	long := strings.Repeat("a", 501)
	cases := []struct {
		name, body string
		field, msg string
	}{
		{"missing endpoint", `{}`, "endpoint", "This field is required."},
		{"blank endpoint", `{"endpoint": ""}`, "endpoint", "This field may not be blank."},
		{"null endpoint", `{"endpoint": null}`, "endpoint", "This field may not be null."},
		{"relative endpoint", `{"endpoint": "/send"}`, "endpoint", "Enter a valid URL."},
		{"ftp endpoint", `{"endpoint": "ftp://x.org/"}`, "endpoint", "Enter a valid URL."},
		{"long endpoint", `{"endpoint": "http://x.org/` + long + `"}`, "endpoint", "Ensure this field has no more than 500 characters."},
		{"cron fields", `{"endpoint": "http://x.org/", "cron_definition": "* * * *"}`, "cron_definition",
			"* * * * is not a valid crontab string: improper number of cron entries specified; got 4 need 5 to 7"},
		{"cron range", `{"endpoint": "http://x.org/", "cron_definition": "99 * * * *"}`, "cron_definition",
			"99 * * * * is not a valid crontab string: item value 99 out of range [0, 59]"},
		{"interval shape", `{"endpoint": "http://x.org/", "interval_definition": "minutes"}`, "interval_definition",
			"minutes is not a valid interval string: integer and period (from: days, hours, minutes, seconds) e.g. 1 minutes"},
		{"interval period", `{"endpoint": "http://x.org/", "interval_definition": "1 weeks"}`, "interval_definition",
			"1 weeks is not a valid period. Accepted: days, hours, minutes, seconds"},
		{"interval zero", `{"endpoint": "http://x.org/", "interval_definition": "0 minutes"}`, "interval_definition",
			"0 minutes is not a valid interval: the integer must be positive"},
		{"frequency zero", `{"endpoint": "http://x.org/", "frequency": 0}`, "frequency", "Ensure this value is greater than or equal to 1."},
		{"frequency text", `{"endpoint": "http://x.org/", "frequency": "many"}`, "frequency", "A valid integer is required."},
		{"enabled text", `{"endpoint": "http://x.org/", "enabled": "maybe"}`, "enabled", "Must be a valid boolean."},
		{"next_send_at", `{"endpoint": "http://x.org/", "next_send_at": "tomorrow"}`, "next_send_at",
			"Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."},
		{"payload null", `{"endpoint": "http://x.org/", "payload": null}`, "payload", "This field may not be null."},
		{"auth token long", `{"endpoint": "http://x.org/", "auth_token": "` + long + `"}`, "auth_token", "Ensure this field has no more than 500 characters."},
	}
	for _, c := range cases {
		r := a.do(t, "POST", "/api/v1/schedule/", adminToken, "application/json", c.body)
		var fe map[string][]string
		json.Unmarshal([]byte(r.body), &fe)
		if r.status != 400 || len(fe[c.field]) != 1 || fe[c.field][0] != c.msg {
			t.Errorf("%s: got %d %s, want 400 {%q: [%q]}", c.name, r.status, r.body, c.field, c.msg)
		}
	}
	// Accepted edge forms.
	ok := []string{
		`{"endpoint": "https://x.org/", "cron_definition": "", "interval_definition": null}`,
		`{"endpoint": "https://x.org/", "cron_definition": "0 0 1 1 * 2030", "interval_definition": "1 minute"}`,
		`{"endpoint": "https://x.org/", "cron_definition": "@daily", "frequency": "3", "enabled": "false"}`,
		`{"endpoint": "https://x.org/", "next_send_at": "2030-01-02T03:04:05+02:00", "payload": [1, "two"]}`,
	}
	for _, body := range ok {
		if r := a.do(t, "POST", "/api/v1/schedule/", adminToken, "application/json", body); r.status != 201 {
			t.Errorf("%s: %d %s", body, r.status, r.body)
		}
	}
}

func TestScheduleUpdateAndDelete(t *testing.T) {
	a := mustAPI(t)
	m := a.mustCreateSchedule(t, `{"endpoint": "http://x.org/a", "interval_definition": "1 minutes", "frequency": 5, "payload": {"k": 1}}`)
	path := "/api/v1/schedule/" + m["id"].(string) + "/"

	// PATCH is partial.
	r := a.do(t, "PATCH", path, adminToken, "application/json", `{"enabled": false, "cron_definition": "*/5 * * * *"}`)
	var got map[string]any
	json.Unmarshal([]byte(r.body), &got)
	if r.status != 200 || got["enabled"] != false || got["endpoint"] != "http://x.org/a" || got["cron_definition"] != "*/5 * * * *" ||
		got["interval_definition"] != "1 minutes" || got["frequency"] != float64(5) || got["next_run_at"] != nil {
		t.Fatalf("PATCH: %d %s", r.status, r.body)
	}
	// PUT needs the endpoint; omitted fields keep their values.
	if r := a.do(t, "PUT", path, adminToken, "application/json", `{"enabled": true}`); r.status != 400 ||
		r.body != `{"endpoint":["This field is required."]}` {
		t.Fatalf("PUT without endpoint: %d %s", r.status, r.body)
	}
	r = a.do(t, "PUT", path, adminToken, "application/json", `{"endpoint": "http://x.org/b", "frequency": null, "enabled": true}`)
	json.Unmarshal([]byte(r.body), &got)
	if r.status != 200 || got["endpoint"] != "http://x.org/b" || got["frequency"] != nil || got["cron_definition"] != "*/5 * * * *" ||
		fmt.Sprint(got["payload"]) != "map[k:1]" || got["next_run_at"] == nil {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	if got["created_at"] != m["created_at"] || got["updated_at"] == m["updated_at"] {
		t.Fatalf("created_at must stay and updated_at move: %v %v / %v %v", got["created_at"], m["created_at"], got["updated_at"], m["updated_at"])
	}

	if r := a.do(t, "DELETE", path, adminToken, "", ""); r.status != 204 || r.body != "" {
		t.Fatalf("DELETE: %d %q", r.status, r.body)
	}
	for _, method := range []string{"GET", "DELETE", "PATCH"} {
		if r := a.do(t, method, path, adminToken, "application/json", `{}`); r.status != 404 || r.body != `{"detail":"Not found."}` {
			t.Errorf("%s after delete: %d %s", method, r.status, r.body)
		}
	}
}

func TestScheduleRouteStatuses(t *testing.T) {
	a := mustAPI(t)
	userTok := a.newUserToken(t, "user@example.org")
	m := a.mustCreateSchedule(t, `{"endpoint": "http://x.org/"}`)
	item := "/api/v1/schedule/" + m["id"].(string) + "/"
	cases := []struct {
		name, method, path, token, ctype, body string
		status                                 int
		want                                   string
	}{
		{"no auth", "GET", "/api/v1/schedule/", "", "", "", 401, `{"detail":"Authentication credentials were not provided."}`},
		{"no auth before method", "PUT", "/api/v1/schedule/", "", "", "", 401, `{"detail":"Authentication credentials were not provided."}`},
		{"any user may read", "GET", item, userTok, "", "", 200, `{"url":`},
		{"any user may write", "POST", "/api/v1/schedule/", userTok, "application/json", `{"endpoint": "http://y.org/"}`, 201, `{"url":`},
		{"bad uuid", "GET", "/api/v1/schedule/not-a-uuid/", adminToken, "", "", 404, `{"detail":"Not found."}`},
		{"unknown uuid", "GET", "/api/v1/schedule/0f5b1c2d-0000-4000-8000-000000000000/", adminToken, "", "", 404, `{"detail":"Not found."}`},
		{"list PUT", "PUT", "/api/v1/schedule/", adminToken, "application/json", `{}`, 405, `{"detail":"Method \"PUT\" not allowed."}`},
		{"item POST", "POST", item, adminToken, "application/json", `{}`, 405, `{"detail":"Method \"POST\" not allowed."}`},
		{"text body", "POST", "/api/v1/schedule/", adminToken, "text/plain", `x`, 415, `{"detail":"Unsupported media type \"text/plain\" in request."}`},
		{"form body", "POST", "/api/v1/schedule/", adminToken, "application/x-www-form-urlencoded", `endpoint=x`, 415, `{"detail":"Unsupported media type`},
		{"list body", "POST", "/api/v1/schedule/", adminToken, "application/json", `[]`, 400, `{"non_field_errors":["Invalid data. Expected a dictionary, but got list."]}`},
		{"huge", "POST", "/api/v1/schedule/", adminToken, "application/json", `{"endpoint":"` + strings.Repeat("x", 1<<20) + `"}`, 413, `{"detail":`},
		{"bad cursor", "GET", "/api/v1/schedule/?cursor=AAAA", adminToken, "", "", 404, `{"detail":"Invalid cursor"}`},
		{"no slash", "GET", strings.TrimSuffix(item, "/"), adminToken, "", "", 200, `{"url":`},
	}
	for _, c := range cases {
		r := a.do(t, c.method, c.path, c.token, c.ctype, c.body)
		if r.status != c.status || !strings.HasPrefix(r.body, c.want) {
			t.Errorf("%s: got %d %.200s, want %d %s", c.name, r.status, r.body, c.status, c.want)
		}
	}
	if r := a.do(t, "POST", item, adminToken, "", ""); r.header.Get("Allow") != "DELETE, GET, HEAD, OPTIONS, PATCH, PUT" {
		t.Errorf("Allow on item = %q", r.header.Get("Allow"))
	}
	if r := a.do(t, "PUT", "/api/v1/schedule/", adminToken, "", ""); r.header.Get("Allow") != "GET, HEAD, OPTIONS, POST" {
		t.Errorf("Allow on list = %q", r.header.Get("Allow"))
	}
}

func TestScheduleListPaginationAndFilters(t *testing.T) {
	a := mustAPI(t)
	var ids []string
	for i := 0; i < 5; i++ {
		m := a.mustCreateSchedule(t, fmt.Sprintf(`{"endpoint": "http://e%d.org/", "enabled": %v}`, i%2, i != 3))
		ids = append([]string{m["id"].(string)}, ids...) // newest first
	}
	type page struct {
		Count    int
		Next     *string
		Previous *string
		Results  []struct {
			ID       string
			Endpoint string
			Enabled  bool
		}
	}
	get := func(url string) page {
		t.Helper()
		url = strings.TrimPrefix(url, "http://lb.example.org")
		r := a.do(t, "GET", url, adminToken, "", "", "X-Forwarded-Host", "lb.example.org")
		if r.status != 200 {
			t.Fatalf("GET %s: %d %s", url, r.status, r.body)
		}
		var p page
		json.Unmarshal([]byte(r.body), &p)
		return p
	}
	walk := func(start string) (seen []string, count int) {
		p := get(start)
		if p.Previous != nil {
			t.Fatalf("%s: first page has previous %s", start, *p.Previous)
		}
		count = p.Count
		for {
			for _, s := range p.Results {
				seen = append(seen, s.ID)
			}
			if p.Next == nil {
				break
			}
			if !strings.HasPrefix(*p.Next, "http://lb.example.org/api/v1/schedule/?") {
				t.Fatalf("next link %q not absolute from X-Forwarded-Host", *p.Next)
			}
			p = get(*p.Next)
		}
		// And back to the first page.
		for p.Previous != nil {
			p = get(*p.Previous)
		}
		if len(seen) > 0 && (len(p.Results) == 0 || p.Results[0].ID != seen[0]) {
			t.Fatalf("%s: back at the first page %+v, want it to start with %s", start, p.Results, seen[0])
		}
		return seen, count
	}
	seen, count := walk("/api/v1/schedule/?page_size=2")
	if strings.Join(seen, ",") != strings.Join(ids, ",") || count != 5 {
		t.Fatalf("all: %v (count %d), want %v", seen, count, ids)
	}
	seen, count = walk("/api/v1/schedule/?page_size=2&enabled=false")
	if len(seen) != 1 || seen[0] != ids[1] || count != 1 {
		t.Fatalf("enabled=false: %v (count %d), want [%s]", seen, count, ids[1])
	}
	seen, count = walk("/api/v1/schedule/?page_size=1&endpoint=http://e0.org/")
	if len(seen) != 3 || count != 3 {
		t.Fatalf("endpoint filter: %v (count %d), want 3", seen, count)
	}
	seen, count = walk("/api/v1/schedule/?page_size=1&endpoint=http://e1.org/&enabled=true")
	if len(seen) != 1 || count != 1 {
		t.Fatalf("endpoint+enabled filter: %v (count %d), want 1", seen, count)
	}
	if p := get("/api/v1/schedule/?endpoint=http://none.org/"); p.Count != 0 || len(p.Results) != 0 || p.Next != nil {
		t.Fatalf("empty filter: %+v", p)
	}
	if r := a.do(t, "GET", "/api/v1/schedule/?page_size=0", adminToken, "", ""); r.status != 400 {
		t.Fatalf("page_size=0: %d %s", r.status, r.body)
	}
}

// FuzzScheduleInput: any body either becomes a patch or field errors; never
// a panic, and every rejection names a field.
func FuzzScheduleInput(f *testing.F) {
	for _, s := range []string{
		`{"endpoint": "http://x.org/", "cron_definition": "*/5 * * * *"}`,
		`{"endpoint": 5, "frequency": "7", "enabled": "yes", "payload": null}`,
		`{"interval_definition": "3 days", "next_send_at": "2030-01-01T00:00:00Z", "auth_token": null}`,
		`{"cron_definition": "@weekly", "interval_definition": "-1 seconds", "frequency": 1.5}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var m map[string]json.RawMessage
		if json.Unmarshal([]byte(body), &m) != nil {
			return
		}
		at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		for _, requireEndpoint := range []bool{true, false} {
			p, fe := scheduleInput(m, requireEndpoint, at)
			for field, msgs := range fe {
				if field == "" || len(msgs) == 0 || msgs[0] == "" {
					t.Fatalf("empty field error %q: %v", field, msgs)
				}
			}
			if len(fe) == 0 && requireEndpoint && (p.Endpoint == nil || !validURL(*p.Endpoint)) {
				t.Fatalf("accepted without a valid endpoint: %s", body)
			}
		}
	})
}
