package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// adminRun runs `schedulerd args...` as an operator would, with stdin.
// Tests using it must not run in parallel: adminStdin is shared.
func adminRun(t *testing.T, env map[string]string, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	old := adminStdin
	adminStdin = strings.NewReader(stdin)
	defer func() { adminStdin = old }()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, func(k string) string { return env[k] }, &out, &errOut)
	return code, out.String(), errOut.String()
}

// startAdminNode starts a bootstrapped one-node cluster whose first admin
// (user 1, admin@localhost) has testToken.
func startAdminNode(t *testing.T) *proc {
	t.Helper()
	s := newSpec(t, "a1")
	p := startNode(t, s, map[string]string{"SCHEDULERD_ADMIN_TOKEN": testToken}, "-bootstrap")
	waitReady(t, p)
	waitFor(t, "the cluster to be initialised", 10*time.Second, func() bool {
		return call(t, "GET", p.url("/api/v1/cluster/"), testToken, nil).status == http.StatusOK
	})
	return p
}

type adminCLICase struct {
	name   string
	env    map[string]string
	stdin  string
	args   []string
	code   int
	stdout string // exact
	stderr string // exact, or a regexp when it starts with "(?"
}

func runAdminCases(t *testing.T, cases []adminCLICase) {
	t.Helper()
	for _, c := range cases {
		code, out, errOut := adminRun(t, c.env, c.stdin, c.args...)
		errOK := errOut == c.stderr
		if strings.HasPrefix(c.stderr, "(?") {
			errOK = regexp.MustCompile(c.stderr).MatchString(errOut)
		}
		if code != c.code || out != c.stdout || !errOK {
			t.Errorf("%s: schedulerd %s\n got exit %d, stdout %q, stderr %q\nwant exit %d, stdout %q, stderr %q",
				c.name, strings.Join(c.args, " "), code, out, errOut, c.code, c.stdout, c.stderr)
		}
	}
}

func TestAdminCLI(t *testing.T) {
	p := startAdminNode(t)
	env := map[string]string{"SCHEDULERD_ADDR": "http://" + p.httpAddr, "SCHEDULERD_ADMIN_TOKEN": testToken}
	badTok := map[string]string{"SCHEDULERD_ADDR": p.httpAddr, "SCHEDULERD_ADMIN_TOKEN": strings.Repeat("9", 40)}
	noTok := map[string]string{"SCHEDULERD_ADDR": p.httpAddr}
	tokFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokFile, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const password = "pass with spaces "

	runAdminCases(t, []adminCLICase{
		{"create an admin", env, "", []string{"user", "create", "-email", "ops@example.org", "-admin"}, 0,
			"created user 2 ops@example.org\n", ""},
		{"create with a password", env, password + "\r\nignored\n", []string{"user", "create", "-email", "dora@example.org", "-username", "dora", "-password-stdin"}, 0,
			"created user 3 dora\n", ""},
		{"existing user", env, "", []string{"user", "create", "-email", "ops@example.org"}, 1, "",
			"schedulerd: POST /api/v1/admin/users/: 409 username: A user with that username already exists.\n"},
		{"invalid email", env, "", []string{"user", "create", "-email", "nope"}, 1, "",
			"schedulerd: POST /api/v1/admin/users/: 400 email: Enter a valid email address.\n"},
		{"missing -email", env, "", []string{"user", "create", "-admin"}, 2, "",
			`(?s)^schedulerd user create: -email is required\n\nUsage: schedulerd user create -email E .*-password-stdin`},
		{"empty -email", env, "", []string{"user", "create", "-email", ""}, 2, "", `(?s)^schedulerd user create: -email is required\n`},
		{"no password on stdin", env, "\n", []string{"user", "create", "-email", "x@example.org", "-password-stdin"}, 2, "",
			`(?s)^schedulerd user create: no password on stdin: give it as the first line\n`},
		{"unknown flag", env, "", []string{"user", "create", "-email", "x@example.org", "-password", "p"}, 2, "",
			`(?s)^flag provided but not defined: -password\nUsage: schedulerd user create`},
		{"bad token", badTok, "", []string{"user", "list"}, 1, "", "schedulerd: GET /api/v1/user/: 401 Invalid token.\n"},
		{"no token", noTok, "", []string{"user", "list"}, 2, "",
			`(?s)^schedulerd user list: no admin token: set SCHEDULERD_ADMIN_TOKEN or -token-file\n`},
		{"both tokens", env, "", []string{"user", "list", "-token-file", tokFile}, 2, "",
			`(?s)^schedulerd user list: SCHEDULERD_ADMIN_TOKEN and -token-file are mutually exclusive\n`},
		{"list with -token-file and -addr", nil, "", []string{"user", "list", "-token-file", tokFile, "-addr", "http://" + p.httpAddr + "/"}, 0,
			"3\tdora\tdora@example.org\n2\tops@example.org\tops@example.org\n1\tadmin@localhost\tadmin@localhost\n", ""},
		{"unexpected argument", env, "", []string{"user", "list", "all"}, 2, "", `(?s)^schedulerd user list: unexpected argument "all"\n`},
		{"bad -addr", env, "", []string{"user", "list", "-addr", "ftp://x"}, 2, "", `(?s)^schedulerd user list: -addr "ftp://x": want http\(s\)://host:port\n`},
		{"unreachable -addr", env, "", []string{"user", "list", "-addr", freeAddr(t)}, 1, "", `(?s)^schedulerd: GET /api/v1/user/: dial tcp .*connection refused\n$`},
		{"no command", env, "", []string{"group"}, 2, "", `(?s)^schedulerd group: a command is required\n\nUsage: schedulerd group <command>`},
		{"unknown command", env, "", []string{"token", "list"}, 2, "", `(?s)^schedulerd token: unknown command "list"\n\nUsage: schedulerd token <command>.*revoke`},
	})
	// The password works for token-auth: it was sent without its line ending.
	if r := call(t, "POST", p.url("/api/token-auth/"), "", map[string]string{"username": "dora", "password": password}); r.status != http.StatusOK {
		t.Fatalf("token-auth with the password from stdin: %d %s", r.status, r.body)
	}
	if r := call(t, "GET", p.url("/api/v1/user/2/"), testToken, nil); !strings.Contains(string(r.body), `"username":"ops@example.org"`) {
		t.Fatalf("user 2: %s", r.body)
	}

	// Help goes to stdout and exits 0.
	code, out, _ := adminRun(t, env, "", "user", "-h")
	if code != 0 || !strings.Contains(out, "Usage: schedulerd user <command>") || !strings.Contains(out, "  token     issue a new API token for a user\n") {
		t.Fatalf("user -h: %d %q", code, out)
	}
	code, out, _ = adminRun(t, env, "", "user", "create", "-h")
	if code != 0 || !strings.Contains(out, "Usage: schedulerd user create -email E [-username U] [-admin] [-password-stdin] [-addr URL] [-token-file file]") ||
		!strings.Contains(out, "-password-stdin") || !strings.Contains(out, "http://"+p.httpAddr) {
		t.Fatalf("user create -h: %d %q", code, out)
	}

	// Tokens: issue one, use it, revoke it through stdin.
	code, out, errOut := adminRun(t, env, "", "user", "token", "-email", "carol@example.org")
	tok := strings.TrimSuffix(out, "\n")
	if code != 0 || !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(tok) || errOut != "" {
		t.Fatalf("user token: %d %q %q", code, out, errOut)
	}
	if r := call(t, "GET", p.url("/api/v1/user/"), tok, nil); r.status != http.StatusOK {
		t.Fatalf("issued token: %d %s", r.status, r.body)
	}
	runAdminCases(t, []adminCLICase{
		{"missing -email", env, "", []string{"user", "token"}, 2, "", `(?s)^schedulerd user token: -email is required\n`},
		{"revoke", env, tok + "\n", []string{"token", "revoke"}, 0, "revoked token\n", ""},
		{"revoke again", env, tok, []string{"token", "revoke"}, 1, "", "schedulerd: POST /api/v1/admin/tokens/revoke/: 404 Not found.\n"},
		{"nothing to revoke", env, "", []string{"token", "revoke"}, 2, "", `(?s)^schedulerd token revoke: no token on stdin`},
	})
	if r := call(t, "GET", p.url("/api/v1/user/"), tok, nil); r.status != http.StatusUnauthorized || string(r.body) != `{"detail":"Invalid token."}` {
		t.Fatalf("revoked token: %d %s", r.status, r.body)
	}

	runAdminCases(t, []adminCLICase{
		{"create a group", env, "", []string{"group", "create", "-name", "operators"}, 0, "created group 1 operators\n", ""},
		{"existing group", env, "", []string{"group", "create", "-name", "operators"}, 1, "",
			"schedulerd: POST /api/v1/admin/groups/: 409 name: group with this name already exists.\n"},
		{"missing -name", env, "", []string{"group", "create"}, 2, "", `(?s)^schedulerd group create: -name is required\n`},
		{"add a user", env, "", []string{"group", "add-user", "-group", "1", "-user", "3"}, 0, "added user 3 to group 1\n", ""},
		{"add again", env, "", []string{"group", "add-user", "-user", "3", "-group", "1"}, 0, "added user 3 to group 1\n", ""},
		{"unknown group", env, "", []string{"group", "add-user", "-group", "9", "-user", "3"}, 1, "",
			"schedulerd: POST /api/v1/admin/groups/9/users/: 404 Not found.\n"},
		{"unknown user", env, "", []string{"group", "add-user", "-group", "1", "-user", "99"}, 1, "",
			"schedulerd: POST /api/v1/admin/groups/1/users/: 404 User 99 not found.\n"},
		{"missing -user", env, "", []string{"group", "add-user", "-group", "1"}, 2, "", `(?s)^schedulerd group add-user: -user is required\n`},
		{"non-numeric -group", env, "", []string{"group", "add-user", "-group", "ops", "-user", "3"}, 2, "",
			`(?s)^invalid value "ops" for flag -group: parse error\nUsage: schedulerd group add-user`},
	})
	if r := call(t, "GET", p.url("/api/v1/user/3/"), testToken, nil); !strings.Contains(string(r.body), `"groups":["http://`+p.httpAddr+`/api/v1/group/1/"]`) {
		t.Fatalf("user 3 after add-user: %s", r.body)
	}

	// Secrets never reach the daemon's log.
	if log := p.stderr.String(); strings.Contains(log, password) || strings.Contains(log, tok) || strings.Contains(log, testToken) {
		t.Fatalf("a secret appears in the daemon's log:\n%s", log)
	}
}

func TestAdminCLIThroughFollower(t *testing.T) {
	_, ps := startCluster(t)
	_, followers := leaderOf(t, ps)
	env := map[string]string{"SCHEDULERD_ADDR": followers[0].httpAddr, "SCHEDULERD_ADMIN_TOKEN": testToken}
	runAdminCases(t, []adminCLICase{
		{"create via a follower", env, "pw\n", []string{"user", "create", "-email", "ops@example.org", "-password-stdin"}, 0,
			"created user 2 ops@example.org\n", ""},
		{"group via a follower", env, "", []string{"group", "create", "-name", "ops"}, 0, "created group 1 ops\n", ""},
		{"add via a follower", env, "", []string{"group", "add-user", "-group", "1", "-user", "2"}, 0, "added user 2 to group 1\n", ""},
		// Read-your-writes on the follower that forwarded the writes.
		{"list on that follower", env, "", []string{"user", "list"}, 0,
			"2\tops@example.org\tops@example.org\n1\tadmin@localhost\tadmin@localhost\n", ""},
	})
}

// TestAdminUserListFollowsNext pages through a fake API whose next links
// name a host the client cannot reach, as behind a proxy.
func TestAdminUserListFollowsNext(t *testing.T) {
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.URL.RequestURI())
		if r.Header.Get("Authorization") != "Token "+testToken {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.RequestURI() {
		case "/api/v1/user/":
			fmt.Fprint(w, `{"count":3,"next":"https://lb.invalid/api/v1/user/?cursor=c2","previous":null,"results":[
				{"url":"https://lb.invalid/api/v1/user/12/","username":"z","email":"z@example.org","groups":[]},
				{"url":"https://lb.invalid/api/v1/user/11/","username":"y","email":"y@example.org","groups":[]}]}`)
		case "/api/v1/user/?cursor=c2":
			fmt.Fprint(w, `{"count":3,"next":null,"previous":"https://lb.invalid/api/v1/user/?cursor=c1","results":[
				{"url":"https://lb.invalid/api/v1/user/3/","username":"x","email":"","groups":[]}]}`)
		case "/api/v1/admin/groups/":
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprint(w, "<html>bad gateway</html>")
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	env := map[string]string{"SCHEDULERD_ADDR": srv.URL, "SCHEDULERD_ADMIN_TOKEN": testToken}
	runAdminCases(t, []adminCLICase{
		{"two pages", env, "", []string{"user", "list"}, 0, "12\tz\tz@example.org\n11\ty\ty@example.org\n3\tx\t\n", ""},
		{"not the API answering", env, "", []string{"group", "create", "-name", "g"}, 1, "",
			"schedulerd: POST /api/v1/admin/groups/: 502 Bad Gateway\n"},
	})
	if want := "/api/v1/user/ /api/v1/user/?cursor=c2"; strings.Join(seen[:2], " ") != want {
		t.Fatalf("requests %v, want %s first", seen, want)
	}
}

func TestRunAdminLeavesDaemonArgsAlone(t *testing.T) {
	for _, args := range [][]string{nil, {}, {"-dev"}, {"-node-id", "user"}, {"users"}} {
		var out, errOut bytes.Buffer
		if code, ok := runAdmin(context.Background(), args, nil, &out, &errOut); ok || code != 0 || out.Len()+errOut.Len() != 0 {
			t.Errorf("runAdmin(%q) = %d, %v; output %q %q", args, code, ok, out.String(), errOut.String())
		}
	}
}
