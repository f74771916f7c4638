package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/bcrypt"

	"github.com/seedscheduler/schedulerd/fsm"
)

type uaCase struct {
	name, token, ctype, body string
	status                   int
	want                     string // exact body, or a prefix when it ends with "…"
}

func (a *testAPI) uaCheck(t *testing.T, method, path string, cases []uaCase) {
	t.Helper()
	for _, c := range cases {
		r := a.do(t, method, path, c.token, c.ctype, c.body)
		ok := r.body == c.want
		if p, found := strings.CutSuffix(c.want, "…"); found {
			ok = strings.HasPrefix(r.body, p)
		}
		if r.status != c.status || !ok {
			t.Errorf("%s %s %s: got %d %s, want %d %s", method, path, c.name, r.status, r.body, c.status, c.want)
		}
	}
}

// uaAuthCases are the authentication and permission failures every admin
// route must give before looking at the body.
func uaAuthCases(userTok string) []uaCase {
	return []uaCase{
		{"no credentials", "", "application/json", `{}`, 401, `{"detail":"Authentication credentials were not provided."}`},
		{"unknown token", strings.Repeat("0", 40), "application/json", `{}`, 401, `{"detail":"Invalid token."}`},
		{"not admin", userTok, "application/json", `{}`, 403, `{"detail":"You do not have permission to perform this action."}`},
	}
}

func TestAdminCreateUser(t *testing.T) {
	a := mustAPI(t)
	userTok := a.newUserToken(t, "bob@example.org") // user 2
	base := a.srv.URL

	r := a.do(t, "POST", "/api/v1/admin/users/", adminToken, "application/json", `{"email": " ops@example.org ", "is_admin": true}`)
	want := `{"url":"` + base + `/api/v1/user/3/","username":"ops@example.org","email":"ops@example.org","groups":[],"is_admin":true}`
	if r.status != 201 || r.body != want || r.header.Get("Location") != base+"/api/v1/user/3/" {
		t.Fatalf("create admin: %d %s (Location %q), want %s", r.status, r.body, r.header.Get("Location"), want)
	}
	// The new admin can use admin routes once it has a token.
	opsTok := a.newUserToken(t, "ops@example.org")
	if r := a.do(t, "POST", "/api/v1/admin/groups/", opsTok, "application/json", `{"name": "ops"}`); r.status != 201 {
		t.Fatalf("new admin creating a group: %d %s", r.status, r.body)
	}

	const password = " correct horse battery staple "
	r = a.do(t, "POST", "/api/v1/admin/users", adminToken, "application/json",
		`{"email": "dora@example.org", "username": "dora", "password": "`+password+`"}`)
	want = `{"url":"` + base + `/api/v1/user/4/","username":"dora","email":"dora@example.org","groups":[],"is_admin":false}`
	if r.status != 201 || r.body != want {
		t.Fatalf("create with password: %d %s, want %s", r.status, r.body, want)
	}
	// Only a bcrypt hash of the default cost is replicated.
	var stored fsm.User
	if err := a.node.FSM().View(func(tx *bolt.Tx) (err error) {
		stored, err = fsm.UserByUsername(tx, "dora")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if cost, err := bcrypt.Cost([]byte(stored.PasswordHash)); err != nil || cost != bcrypt.DefaultCost || strings.Contains(stored.PasswordHash, "horse") {
		t.Fatalf("stored password hash %q: cost %d, %v", stored.PasswordHash, cost, err)
	}
	// The password logs in, both for a token and as Basic credentials; a
	// trimmed version of it does not.
	r = a.do(t, "POST", "/api/token-auth/", "", "application/json", `{"username": "dora", "password": "`+password+`"}`)
	var tok struct{ Token string }
	json.Unmarshal([]byte(r.body), &tok)
	if r.status != 200 || len(tok.Token) != 40 {
		t.Fatalf("token-auth: %d %s", r.status, r.body)
	}
	if r := a.do(t, "GET", "/api/v1/user/4/", tok.Token, "", ""); r.status != 200 {
		t.Fatalf("token from token-auth: %d %s", r.status, r.body)
	}
	if r := a.do(t, "POST", "/api/token-auth/", "", "application/json", `{"username": "dora", "password": "`+strings.TrimSpace(password)+`"}`); r.status != 400 {
		t.Fatalf("trimmed password accepted: %d %s", r.status, r.body)
	}
	for pw, status := range map[string]int{password: 200, "wrong": 401} {
		req, _ := http.NewRequest("GET", base+"/api/v1/user/", nil)
		req.SetBasicAuth("dora", pw)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != status {
			t.Errorf("basic auth with %q: %d, want %d", pw, res.StatusCode, status)
		}
	}
	// A non-admin user created here cannot administer.
	if r := a.do(t, "POST", "/api/v1/admin/groups/", tok.Token, "application/json", `{"name": "x"}`); r.status != 403 {
		t.Fatalf("non-admin creating a group: %d %s", r.status, r.body)
	}

	a.uaCheck(t, "POST", "/api/v1/admin/users/", append(uaAuthCases(userTok), []uaCase{
		{"missing email", adminToken, "application/json", `{}`, 400, `{"email":["This field is required."]}`},
		{"null email", adminToken, "application/json", `{"email": null}`, 400, `{"email":["This field may not be null."]}`},
		{"blank email", adminToken, "application/json", `{"email": "  "}`, 400, `{"email":["This field may not be blank."]}`},
		{"invalid email", adminToken, "application/json", `{"email": "nope"}`, 400, `{"email":["Enter a valid email address."]}`},
		{"email not a string", adminToken, "application/json", `{"email": 5}`, 400, `{"email":["Not a valid string."]}`},
		{"blank username", adminToken, "application/json", `{"email": "e@example.org", "username": ""}`, 400, `{"username":["This field may not be blank."]}`},
		{"bad username", adminToken, "application/json", `{"email": "e@example.org", "username": "a b"}`, 400,
			`{"username":["Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters."]}`},
		{"long username", adminToken, "application/json", `{"email": "e@example.org", "username": "` + strings.Repeat("u", 151) + `"}`, 400,
			`{"username":["Ensure this field has no more than 150 characters."]}`},
		{"long default username", adminToken, "application/json", `{"email": "` + strings.Repeat("e", 150) + `@example.org"}`, 400,
			`{"username":["Ensure this field has no more than 150 characters."]}`},
		{"is_admin string", adminToken, "application/json", `{"email": "e@example.org", "is_admin": "yes"}`, 400, `{"is_admin":["Must be a valid boolean."]}`},
		{"is_admin null", adminToken, "application/json", `{"email": "e@example.org", "is_admin": null}`, 400, `{"is_admin":["Must be a valid boolean."]}`},
		{"password number", adminToken, "application/json", `{"email": "e@example.org", "password": 1234}`, 400, `{"password":["Not a valid string."]}`},
		{"blank password", adminToken, "application/json", `{"email": "e@example.org", "password": ""}`, 400, `{"password":["This field may not be blank."]}`},
		{"long password", adminToken, "application/json", `{"email": "e@example.org", "password": "` + strings.Repeat("p", 73) + `"}`, 400,
			`{"password":["Ensure this field has no more than 72 bytes."]}`},
		{"form body", adminToken, "application/x-www-form-urlencoded", `email=e%40example.org`, 415,
			`{"detail":"Unsupported media type \"application/x-www-form-urlencoded\" in request."}`},
		{"list body", adminToken, "application/json", `[]`, 400, `{"non_field_errors":["Invalid data. Expected a dictionary, but got list."]}`},
		{"existing username", adminToken, "application/json", `{"email": "admin@localhost"}`, 409,
			`{"username":["A user with that username already exists."]}`},
		{"existing explicit username", adminToken, "application/json", `{"email": "other@example.org", "username": "dora", "password": "x"}`, 409,
			`{"username":["A user with that username already exists."]}`},
	}...))
	// None of the refused requests created a user.
	if r := a.do(t, "GET", "/api/v1/user/", adminToken, "", ""); !strings.HasPrefix(r.body, `{"count":4,`) {
		t.Fatalf("users after the refused requests: %s", r.body)
	}
	if r := a.do(t, "GET", "/api/v1/admin/users/", adminToken, "", ""); r.status != 405 || r.header.Get("Allow") != "OPTIONS, POST" {
		t.Fatalf("GET: %d Allow=%q", r.status, r.header.Get("Allow"))
	}
}

func TestAdminRevokeToken(t *testing.T) {
	a := mustAPI(t)
	first := a.newUserToken(t, "bob@example.org")
	second := a.newUserToken(t, "bob@example.org")

	a.uaCheck(t, "POST", "/api/v1/admin/tokens/revoke/", append(uaAuthCases(first), []uaCase{
		{"missing token", adminToken, "application/json", `{}`, 400, `{"token":["This field is required."]}`},
		{"blank token", adminToken, "application/json", `{"token": ""}`, 400, `{"token":["This field may not be blank."]}`},
		{"unknown token", adminToken, "application/json", `{"token": "` + strings.Repeat("f", 40) + `"}`, 404, `{"detail":"Not found."}`},
	}...))

	r := a.do(t, "POST", "/api/v1/admin/tokens/revoke", adminToken, "application/json", `{"token": "`+first+`"}`)
	if r.status != 204 || r.body != "" {
		t.Fatalf("revoke: %d %q", r.status, r.body)
	}
	if r := a.do(t, "GET", "/api/v1/user/", first, "", ""); r.status != 401 || r.body != `{"detail":"Invalid token."}` {
		t.Fatalf("revoked token: %d %s", r.status, r.body)
	}
	// The user's other token is untouched.
	if r := a.do(t, "GET", "/api/v1/user/", second, "", ""); r.status != 200 {
		t.Fatalf("other token of the same user: %d %s", r.status, r.body)
	}
	r = a.do(t, "POST", "/api/v1/admin/tokens/revoke/", adminToken, "application/json", `{"token": "`+first+`"}`)
	if r.status != 404 || r.body != `{"detail":"Not found."}` {
		t.Fatalf("second revoke: %d %s", r.status, r.body)
	}
	if strings.Contains(r.body, first) {
		t.Fatal("the token is echoed back")
	}
}

func TestAdminGroups(t *testing.T) {
	a := mustAPI(t)
	userTok := a.newUserToken(t, "bob@example.org") // user 2
	base := a.srv.URL

	r := a.do(t, "POST", "/api/v1/admin/groups/", adminToken, "application/json", `{"name": " operators "}`)
	want := `{"url":"` + base + `/api/v1/group/1/","name":"operators"}`
	if r.status != 201 || r.body != want || r.header.Get("Location") != base+"/api/v1/group/1/" {
		t.Fatalf("create group: %d %s (Location %q), want %s", r.status, r.body, r.header.Get("Location"), want)
	}
	if r := a.do(t, "GET", "/api/v1/group/1/", userTok, "", ""); r.status != 200 || r.body != want {
		t.Fatalf("read back: %d %s", r.status, r.body)
	}
	a.uaCheck(t, "POST", "/api/v1/admin/groups/", append(uaAuthCases(userTok), []uaCase{
		{"missing name", adminToken, "application/json", `{}`, 400, `{"name":["This field is required."]}`},
		{"blank name", adminToken, "application/json", `{"name": " "}`, 400, `{"name":["This field may not be blank."]}`},
		{"long name", adminToken, "application/json", `{"name": "` + strings.Repeat("g", 151) + `"}`, 400,
			`{"name":["Ensure this field has no more than 150 characters."]}`},
		{"existing name", adminToken, "application/json", `{"name": "operators"}`, 409, `{"name":["group with this name already exists."]}`},
	}...))

	add := "/api/v1/admin/groups/1/users/"
	for i := 0; i < 2; i++ { // the second add is a no-op
		if r := a.do(t, "POST", add, adminToken, "application/json", `{"user_id": 2}`); r.status != 204 || r.body != "" {
			t.Fatalf("add user (round %d): %d %q", i, r.status, r.body)
		}
	}
	if r := a.do(t, "GET", "/api/v1/user/2/", adminToken, "", ""); !strings.Contains(r.body, `"groups":["`+base+`/api/v1/group/1/"]`) {
		t.Fatalf("user after add: %s", r.body)
	}
	a.uaCheck(t, "POST", add, append(uaAuthCases(userTok), []uaCase{
		{"missing user_id", adminToken, "application/json", `{}`, 400, `{"user_id":["This field is required."]}`},
		{"null user_id", adminToken, "application/json", `{"user_id": null}`, 400, `{"user_id":["This field may not be null."]}`},
		{"string user_id", adminToken, "application/json", `{"user_id": "2"}`, 400, `{"user_id":["A valid integer is required."]}`},
		{"fractional user_id", adminToken, "application/json", `{"user_id": 2.5}`, 400, `{"user_id":["A valid integer is required."]}`},
		{"zero user_id", adminToken, "application/json", `{"user_id": 0}`, 400, `{"user_id":["Ensure this value is greater than or equal to 1."]}`},
		{"unknown user", adminToken, "application/json", `{"user_id": 99}`, 404, `{"detail":"User 99 not found."}`},
	}...))
	for _, path := range []string{"/api/v1/admin/groups/99/users/", "/api/v1/admin/groups/abc/users/", "/api/v1/admin/groups/0/users/"} {
		if r := a.do(t, "POST", path, adminToken, "application/json", `{"user_id": 2}`); r.status != 404 || r.body != `{"detail":"Not found."}` {
			t.Errorf("%s: %d %s", path, r.status, r.body)
		}
	}
}
