package httpapi

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/gorilla/mux"
)

// blocksEcho answers 200 with the method and the caller seen by the handler.
func blocksEcho(w http.ResponseWriter, r *http.Request) {
	who := "anonymous"
	if p := principalFrom(r); p != nil {
		who = p.Username
	}
	writeJSON(w, http.StatusOK, map[string]string{"method": r.Method, "user": who})
}

func TestResource(t *testing.T) {
	userRes := resource{auth: authUser, methods: map[string]http.HandlerFunc{"GET": blocksEcho, "POST": blocksEcho}}
	adminRes := resource{auth: authAdmin, methods: map[string]http.HandlerFunc{"POST": blocksEcho}}
	openRes := resource{auth: authNone, methods: map[string]http.HandlerFunc{"GET": blocksEcho}}
	userTok := "Token " + blocksUserKey
	adminTok := "Token " + blocksAdminKey
	const notAuth = `{"detail":"Authentication credentials were not provided."}`
	const forbidden = `{"detail":"You do not have permission to perform this action."}`

	tests := []struct {
		name   string
		res    resource
		method string
		authz  string
		status int
		body   string
		allow  string // expected Allow header ("" = absent)
	}{
		{"anonymous GET", userRes, "GET", "", 401, notAuth, ""},
		{"anonymous PUT: 401 before 405", userRes, "PUT", "", 401, notAuth, ""},
		{"anonymous OPTIONS", userRes, "OPTIONS", "", 401, notAuth, ""},
		{"unknown keyword is anonymous", userRes, "GET", "Bearer " + blocksUserKey, 401, notAuth, ""},
		{"bad token on a missing method", userRes, "PUT", "Token nope", 401, `{"detail":"Invalid token."}`, ""},
		{"bad basic", userRes, "GET", blocksBasic("bob@example.org:wrong"), 401, `{"detail":"Invalid username/password."}`, ""},
		{"user GET", userRes, "GET", userTok, 200, `{"method":"GET","user":"bob@example.org"}`, ""},
		{"user via basic", userRes, "POST", blocksBasic("bob@example.org:pw"), 200, `{"method":"POST","user":"bob@example.org"}`, ""},
		{"HEAD served by GET", userRes, "HEAD", userTok, 200, `{"method":"HEAD","user":"bob@example.org"}`, ""},
		{"OPTIONS", userRes, "OPTIONS", userTok, 200, "", "GET, HEAD, OPTIONS, POST"},
		{"missing method", userRes, "PUT", userTok, 405, `{"detail":"Method \"PUT\" not allowed."}`, "GET, HEAD, OPTIONS, POST"},
		{"lowercase method is another method", userRes, "get", userTok, 405, `{"detail":"Method \"get\" not allowed."}`, "GET, HEAD, OPTIONS, POST"},
		{"user on admin route: 403", adminRes, "POST", userTok, 403, forbidden, ""},
		{"user on admin route, missing method: 403 before 405", adminRes, "DELETE", userTok, 403, forbidden, ""},
		{"anonymous on admin route", adminRes, "POST", "", 401, notAuth, ""},
		{"admin", adminRes, "POST", adminTok, 200, `{"method":"POST","user":"admin"}`, ""},
		{"no GET, no HEAD", adminRes, "HEAD", adminTok, 405, `{"detail":"Method \"HEAD\" not allowed."}`, "OPTIONS, POST"},
		{"admin, missing method", adminRes, "GET", adminTok, 405, `{"detail":"Method \"GET\" not allowed."}`, "OPTIONS, POST"},
		{"open route, anonymous", openRes, "GET", "", 200, `{"method":"GET","user":"anonymous"}`, ""},
		{"open route ignores bad credentials", openRes, "GET", "Token nope", 200, `{"method":"GET","user":"anonymous"}`, ""},
		{"open route, missing method", openRes, "POST", "", 405, `{"detail":"Method \"POST\" not allowed."}`, "GET, HEAD, OPTIONS"},
	}
	for _, tc := range tests {
		r := httptest.NewRequest(tc.method, "/api/v1/x/", nil)
		if tc.authz != "" {
			r.Header.Set("Authorization", tc.authz)
		}
		rec := httptest.NewRecorder()
		tc.res.handler(blocksAuth{}, noSettle).ServeHTTP(rec, r)
		blocksCheck(t, tc.name, rec, tc.status, tc.body)
		if got := rec.Header().Get("Allow"); got != tc.allow {
			t.Errorf("%s: Allow = %q, want %q", tc.name, got, tc.allow)
		}
		wantChallenge := ""
		if tc.status == http.StatusUnauthorized {
			wantChallenge = `Basic realm="api"`
		}
		if got := rec.Header().Get("WWW-Authenticate"); got != wantChallenge {
			t.Errorf("%s: WWW-Authenticate = %q, want %q", tc.name, got, wantChallenge)
		}
	}
}

func TestResourceAllowOrder(t *testing.T) {
	h := func(http.ResponseWriter, *http.Request) {}
	tests := []struct {
		methods map[string]http.HandlerFunc
		want    string
	}{
		{map[string]http.HandlerFunc{"PUT": h, "GET": h, "PATCH": h, "DELETE": h}, "DELETE, GET, HEAD, OPTIONS, PATCH, PUT"},
		{map[string]http.HandlerFunc{"POST": h, "GET": h}, "GET, HEAD, OPTIONS, POST"},
		{map[string]http.HandlerFunc{"GET": h, "HEAD": h, "OPTIONS": h}, "GET, HEAD, OPTIONS"},
		{map[string]http.HandlerFunc{"POST": h, "GET": nil}, "OPTIONS, POST"},
		{nil, "OPTIONS"},
	}
	for _, tc := range tests {
		rec := httptest.NewRecorder()
		resource{auth: authNone, methods: tc.methods}.handler(nil, noSettle).ServeHTTP(rec, httptest.NewRequest("TRACE", "/", nil))
		if got := rec.Header().Get("Allow"); got != tc.want {
			t.Errorf("methods %v: Allow = %q, want %q", blocksHandlerKeys(tc.methods), got, tc.want)
		}
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("methods %v: TRACE status = %d, want 405", blocksHandlerKeys(tc.methods), rec.Code)
		}
	}
}

func blocksHandlerKeys(m map[string]http.HandlerFunc) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestPrincipalFromWithoutResource(t *testing.T) {
	if p := principalFrom(httptest.NewRequest("GET", "/", nil)); p != nil {
		t.Errorf("principalFrom on a bare request = %+v, want nil", *p)
	}
}

func blocksRouter() http.Handler {
	rt := newRouter()
	get := func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"path": r.URL.Path, "raw": r.URL.EscapedPath(), "id": mux.Vars(r)["id"]})
	}
	rt.Handle("/api/v1/schedule/", resource{auth: authUser, methods: map[string]http.HandlerFunc{"GET": get}}.handler(blocksAuth{}, noSettle))
	rt.Handle("/api/v1/schedule/{id}/", resource{auth: authUser, methods: map[string]http.HandlerFunc{"GET": get}}.handler(blocksAuth{}, noSettle))
	rt.Handle("/healthz/", resource{methods: map[string]http.HandlerFunc{"GET": get}}.handler(blocksAuth{}, noSettle))
	return withTrailingSlash(rt)
}

func TestRouter(t *testing.T) {
	h := blocksRouter()
	notFound := `{"detail":"Not found."}`
	tests := []struct {
		name   string
		method string
		target string
		authz  bool
		status int
		body   string
	}{
		{"with slash", "GET", "/api/v1/schedule/", true, 200, `{"id":"","path":"/api/v1/schedule/","raw":"/api/v1/schedule/"}`},
		{"without slash, no redirect", "GET", "/api/v1/schedule", true, 200, `{"id":"","path":"/api/v1/schedule/","raw":"/api/v1/schedule/"}`},
		{"item with slash", "GET", "/api/v1/schedule/0f5b/", true, 200, `{"id":"0f5b","path":"/api/v1/schedule/0f5b/","raw":"/api/v1/schedule/0f5b/"}`},
		{"item without slash", "GET", "/api/v1/schedule/0f5b", true, 200, `{"id":"0f5b","path":"/api/v1/schedule/0f5b/","raw":"/api/v1/schedule/0f5b/"}`},
		{"query kept", "GET", "/api/v1/schedule?enabled=true", true, 200, `{"id":"","path":"/api/v1/schedule/","raw":"/api/v1/schedule/"}`},
		{"probe without slash", "GET", "/healthz", false, 200, `{"id":"","path":"/healthz/","raw":"/healthz/"}`},
		{"unknown path", "GET", "/nope", true, 404, notFound},
		{"unknown path with slash", "POST", "/nope/", false, 404, notFound},
		{"root", "GET", "/", false, 404, notFound},
		{"too deep", "GET", "/api/v1/schedule/a/b/", true, 404, notFound},
		{"unclean path is not redirected", "GET", "//api/v1/schedule/", true, 404, notFound},
		{"dot segments are not redirected", "GET", "/api/v1/x/../schedule/", true, 404, notFound},
		{"auth checked on a routed path without slash", "GET", "/api/v1/schedule", false, 401,
			`{"detail":"Authentication credentials were not provided."}`},
		{"405 on a routed path without slash", "DELETE", "/api/v1/schedule", true, 405, `{"detail":"Method \"DELETE\" not allowed."}`},
	}
	for _, tc := range tests {
		r := httptest.NewRequest(tc.method, tc.target, nil)
		if tc.authz {
			r.Header.Set("Authorization", "Token "+blocksUserKey)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		blocksCheck(t, tc.name, rec, tc.status, tc.body)
		if loc := rec.Header().Get("Location"); loc != "" {
			t.Errorf("%s: redirected to %q, want no redirect", tc.name, loc)
		}
	}
}

func TestWithTrailingSlash(t *testing.T) {
	tests := []struct {
		target            string
		wantPath, wantRaw string
	}{
		{"/a", "/a/", ""},
		{"/a/", "/a/", ""},
		{"/a/b%2Fc", "/a/b/c/", "/a/b%2Fc/"},
		{"/a/b%2Fc/", "/a/b/c/", "/a/b%2Fc/"},
		{"/a/caf%C3%A9", "/a/café/", ""},
		{"*", "*", ""},
	}
	for _, tc := range tests {
		var seen *url.URL
		h := withTrailingSlash(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = r.URL }))
		r := httptest.NewRequest("OPTIONS", "http://h/", nil)
		u, err := url.Parse(tc.target)
		if err != nil {
			t.Fatalf("parse %q: %v", tc.target, err)
		}
		r.URL = u
		before := *u
		h.ServeHTTP(httptest.NewRecorder(), r)
		if seen.Path != tc.wantPath || seen.RawPath != tc.wantRaw {
			t.Errorf("%q: Path, RawPath = %q, %q; want %q, %q", tc.target, seen.Path, seen.RawPath, tc.wantPath, tc.wantRaw)
		}
		// RawPath is only honoured when it still encodes Path.
		if want := tc.wantRaw; want != "" && seen.EscapedPath() != want {
			t.Errorf("%q: EscapedPath = %q, want %q", tc.target, seen.EscapedPath(), want)
		}
		if *r.URL != before {
			t.Errorf("%q: caller's URL modified: %+v, want %+v", tc.target, *r.URL, before)
		}
	}
}

func noSettle(*http.Request) {}

// TestSettleBeforeReadsAndRefusals: a read settles before authenticating; a
// write settles only when refused, then authenticates again (the token may
// come from a write this node answered but has not applied yet).
func TestSettleBeforeReadsAndRefusals(t *testing.T) {
	ok := func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }
	for _, tc := range []struct {
		method      string
		knownAfter  int // the token is known from this settle on (0: always)
		wantSettles int
		wantStatus  int
	}{
		{"GET", 0, 1, http.StatusNoContent},
		{"GET", 1, 1, http.StatusNoContent},
		{"POST", 0, 0, http.StatusNoContent},
		{"POST", 1, 1, http.StatusNoContent},
		{"POST", 2, 1, http.StatusUnauthorized},
	} {
		settles := 0
		a := &settlingAuth{known: func() bool { return settles >= tc.knownAfter }}
		h := resource{auth: authUser, methods: map[string]http.HandlerFunc{"GET": ok, "POST": ok}}.handler(a, func(*http.Request) { settles++ })
		r := httptest.NewRequest(tc.method, "/", nil)
		r.Header.Set("Authorization", "Token abc")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if settles != tc.wantSettles || rec.Code != tc.wantStatus {
			t.Errorf("%s, token known after %d settles: %d settles, status %d; want %d, %d",
				tc.method, tc.knownAfter, settles, rec.Code, tc.wantSettles, tc.wantStatus)
		}
	}
}

// settlingAuth knows the token once known() says so.
type settlingAuth struct {
	blocksAuth
	known func() bool
}

func (a *settlingAuth) TokenUser(string) (Principal, bool, error) {
	return Principal{UserID: 1}, a.known(), nil
}
