package httpapi

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const (
	blocksUserKey  = "0123456789abcdef0123456789abcdef01234567"
	blocksAdminKey = "fedcba9876543210fedcba9876543210fedcba98"
	blocksFailKey  = "ffffffffffffffffffffffffffffffffffffffff"
)

var (
	blocksUser  = Principal{UserID: 2, Username: "bob@example.org"}
	blocksAdmin = Principal{UserID: 1, Username: "admin", IsAdmin: true}
)

// blocksAuth is an in-memory Authenticator; blocksFailKey and the user
// "broken" simulate a failing state store.
type blocksAuth struct{}

func (blocksAuth) TokenUser(key string) (Principal, bool, error) {
	switch key {
	case blocksUserKey:
		return blocksUser, true, nil
	case blocksAdminKey:
		return blocksAdmin, true, nil
	case blocksFailKey:
		return Principal{}, false, errors.New("state unavailable")
	}
	return Principal{}, false, nil
}

func (blocksAuth) PasswordUser(username, password string) (Principal, bool, error) {
	switch {
	case username == "broken":
		return Principal{}, false, errors.New("state unavailable")
	case username == "admin" && password == "s3cret:with:colons":
		return blocksAdmin, true, nil
	case username == "bob@example.org" && password == "pw":
		return blocksUser, true, nil
	case username == "josé" && password == "pw":
		return blocksUser, true, nil
	}
	return Principal{}, false, nil
}

func blocksBasic(creds string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(creds))
}

func TestAuthenticate(t *testing.T) {
	tests := []struct {
		name    string
		header  []string // nil: no Authorization header
		want    *Principal
		status  int    // 0: no error
		message string // exact 401 body
	}{
		{name: "no header", header: nil},
		{name: "empty header", header: []string{""}},
		{name: "blank header", header: []string{"   "}},
		{name: "unknown keyword", header: []string{"Bearer " + blocksUserKey}},
		{name: "keyword prefix is not the keyword", header: []string{"Tokens " + blocksUserKey}},
		{name: "token", header: []string{"Token " + blocksUserKey}, want: &blocksUser},
		{name: "token keyword case-insensitive", header: []string{"tOKEN " + blocksAdminKey}, want: &blocksAdmin},
		{name: "token with tabs and padding", header: []string{"  Token\t" + blocksUserKey + "  "}, want: &blocksUser},
		{name: "first header counts", header: []string{"Token " + blocksUserKey, "Token nope"}, want: &blocksUser},
		{name: "token without key", header: []string{"Token"}, status: 401, message: "Invalid token header. No credentials provided."},
		{name: "token keyword and spaces", header: []string{"Token   "}, status: 401, message: "Invalid token header. No credentials provided."},
		{name: "token with spaces", header: []string{"Token a b"}, status: 401, message: "Invalid token header. Token string should not contain spaces."},
		{name: "unknown token", header: []string{"Token " + strings.Repeat("0", 40)}, status: 401, message: "Invalid token."},
		{name: "malformed token", header: []string{"Token x"}, status: 401, message: "Invalid token."},
		{name: "uppercase hex is another key", header: []string{"Token " + strings.ToUpper(blocksUserKey)}, status: 401, message: "Invalid token."},
		{name: "basic", header: []string{blocksBasic("bob@example.org:pw")}, want: &blocksUser},
		{name: "basic keyword case-insensitive", header: []string{"bAsIc " + base64.StdEncoding.EncodeToString([]byte("bob@example.org:pw"))}, want: &blocksUser},
		{name: "basic password with colons", header: []string{blocksBasic("admin:s3cret:with:colons")}, want: &blocksAdmin},
		{name: "basic Latin-1 username", header: []string{"Basic " + base64.StdEncoding.EncodeToString([]byte("jos\xe9:pw"))}, want: &blocksUser},
		{name: "basic UTF-8 username", header: []string{blocksBasic("josé:pw")}, want: &blocksUser},
		{name: "basic without credentials", header: []string{"Basic"}, status: 401, message: "Invalid basic header. No credentials provided."},
		{name: "basic with spaces", header: []string{"Basic YQ== Yg=="}, status: 401, message: "Invalid basic header. Credentials string should not contain spaces."},
		{name: "basic wrong password", header: []string{blocksBasic("bob@example.org:nope")}, status: 401, message: "Invalid username/password."},
		{name: "basic unknown user", header: []string{blocksBasic("eve:pw")}, status: 401, message: "Invalid username/password."},
		{name: "basic no colon", header: []string{blocksBasic("bob@example.org")}, status: 401, message: "Invalid username/password."},
		{name: "basic not base64", header: []string{"Basic !!!notbase64"}, status: 401, message: "Invalid username/password."},
		{name: "basic truncated base64", header: []string{"Basic YWJj="}, status: 401, message: "Invalid username/password."},
		{name: "basic empty user and password", header: []string{blocksBasic(":")}, status: 401, message: "Invalid username/password."},
	}
	for _, tc := range tests {
		r := httptest.NewRequest(http.MethodGet, "/api/v1/", nil)
		for _, h := range tc.header {
			r.Header.Add("Authorization", h)
		}
		p, err := authenticate(r, blocksAuth{})
		if tc.status == 0 {
			if err != nil {
				t.Errorf("%s: err = %v, want none", tc.name, err)
				continue
			}
			switch {
			case tc.want == nil && p != nil:
				t.Errorf("%s: principal = %+v, want nil", tc.name, *p)
			case tc.want != nil && (p == nil || *p != *tc.want):
				t.Errorf("%s: principal = %v, want %+v", tc.name, p, *tc.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: principal = %v, err = nil; want %d %q", tc.name, p, tc.status, tc.message)
			continue
		}
		if p != nil {
			t.Errorf("%s: principal = %+v alongside an error, want nil", tc.name, *p)
		}
		rec := blocksRender(err)
		blocksCheck(t, tc.name, rec, tc.status, `{"detail":"`+tc.message+`"}`)
		if got := rec.Header().Get("WWW-Authenticate"); got != `Basic realm="api"` {
			t.Errorf("%s: WWW-Authenticate = %q, want %q", tc.name, got, `Basic realm="api"`)
		}
		// Credentials must never be echoed back or end up in logs via errors.
		for _, h := range tc.header {
			for _, part := range strings.Fields(h)[1:] {
				if len(part) < 8 {
					continue // too short to tell a leak from a word of the message
				}
				if strings.Contains(err.Error(), part) || strings.Contains(rec.Body.String(), part) {
					t.Errorf("%s: credential %q leaked into error %q / body %s", tc.name, part, err, rec.Body.String())
				}
			}
		}
	}
}

func TestAuthenticateStoreFailure(t *testing.T) {
	for _, h := range []string{"Token " + blocksFailKey, blocksBasic("broken:pw")} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Authorization", h)
		p, err := authenticate(r, blocksAuth{})
		if err == nil || p != nil {
			t.Errorf("%q: got (%v, %v), want (nil, error)", h, p, err)
			continue
		}
		var ae *apiError
		if errors.As(err, &ae) {
			t.Errorf("%q: store failure became %v, want a plain error (500)", h, ae)
		}
		if strings.Contains(err.Error(), blocksFailKey) {
			t.Errorf("%q: error %q contains the key", h, err)
		}
		blocksCheck(t, h, blocksRender(err), http.StatusInternalServerError, `{"detail":"internal error: state unavailable"}`)
	}
}

func TestStandardErrors(t *testing.T) {
	tests := []struct {
		name      string
		err       *apiError
		status    int
		body      string
		challenge bool
	}{
		{"not authenticated", errNotAuthenticated(), 401, `{"detail":"Authentication credentials were not provided."}`, true},
		{"forbidden", errForbidden(), 403, `{"detail":"You do not have permission to perform this action."}`, false},
		{"not found", errNotFound(), 404, `{"detail":"Not found."}`, false},
	}
	for _, tc := range tests {
		rec := blocksRender(tc.err)
		blocksCheck(t, tc.name, rec, tc.status, tc.body)
		want := ""
		if tc.challenge {
			want = `Basic realm="api"`
		}
		if got := rec.Header().Get("WWW-Authenticate"); got != want {
			t.Errorf("%s: WWW-Authenticate = %q, want %q", tc.name, got, want)
		}
	}
	// Each call must return a fresh value: handlers may add headers to it.
	a, b := errNotAuthenticated(), errNotAuthenticated()
	a.Header.Set("X-Test", "1")
	if b.Header.Get("X-Test") != "" {
		t.Errorf("errNotAuthenticated values share their Header map")
	}
}
