package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// adminStdin is where -password-stdin and `token revoke` read their secret;
// a variable so that tests can feed it.
var adminStdin io.Reader = os.Stdin

const (
	// adminAddrEnvVar is not SCHEDULERD_HTTP_ADDR on purpose: that one is
	// the daemon's listen address, which may be 0.0.0.0 and so not
	// something a client can dial.
	adminAddrEnvVar  = configEnvPrefix + "ADDR"
	defaultAdminAddr = "http://127.0.0.1:8080"
	// adminHTTPTimeout exceeds the server's write timeout so that a slow
	// forwarded write is reported by the server, not cut short here.
	adminHTTPTimeout = 65 * time.Second
	// maxSecretLine bounds what is read from stdin for a password or token.
	maxSecretLine = 4096
	// maxAdminResponse bounds a response body; a full page of users is far
	// smaller.
	maxAdminResponse = 64 << 20
)

// adminCommand is one `schedulerd <group> <name>` subcommand.
type adminCommand struct {
	name     string
	synopsis string // flags after "schedulerd <group> <name>"
	short    string // one line, for the group's help
	summary  string
	// required flags must be given on the command line with a non-empty,
	// non-zero value.
	required []string
	// setup defines the command's flags on fs and returns what runs once
	// they are parsed and checked.
	setup func(fs *flag.FlagSet) func(ctx context.Context, c *adminClient, out io.Writer) error
}

type adminGroup struct {
	name     string
	commands []adminCommand
}

// adminGroups is the CLI: anything else on the command line is the
// daemon's flags.
var adminGroups = []adminGroup{
	{"user", []adminCommand{
		{
			name: "create", synopsis: "-email E [-username U] [-admin] [-password-stdin]",
			short:    "create a user, optionally an admin or with a password",
			summary:  "Create a user. Without -password-stdin the user has no password and logs in with tokens only\n(see `schedulerd user token`). The password is the first line of stdin.",
			required: []string{"email"},
			setup:    setupUserCreate,
		},
		{
			name: "list", short: "list users: id, username, email",
			summary: "List every user, newest first, as id<TAB>username<TAB>email.",
			setup:   setupUserList,
		},
		{
			name: "token", synopsis: "-email E", short: "issue a new API token for a user",
			summary:  "Issue a new API token for the user whose username is E, creating a plain user when there is\nnone. The token is printed on stdout; earlier tokens stay valid.",
			required: []string{"email"},
			setup:    setupUserToken,
		},
	}},
	{"token", []adminCommand{
		{
			name: "revoke", short: "revoke a token read from stdin",
			summary: "Revoke the token given as the first line of stdin (not as an argument, which ps would show).",
			setup:   setupTokenRevoke,
		},
	}},
	{"group", []adminCommand{
		{
			name: "create", synopsis: "-name N", short: "create a group", summary: "Create a group.",
			required: []string{"name"},
			setup:    setupGroupCreate,
		},
		{
			name: "add-user", synopsis: "-group ID -user ID", short: "add a user to a group",
			summary:  "Add a user to a group (adding a member again is not an error).",
			required: []string{"group", "user"},
			setup:    setupGroupAddUser,
		},
	}},
}

// errAdminUsage marks errors that are the operator's invocation, not the
// server's answer: they exit 2 and show the usage.
var errAdminUsage = errors.New("usage")

func usageErrorf(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errAdminUsage}, a...)...)
}

// runAdmin runs an operator subcommand. handled is false when args are not
// a subcommand, and run goes on to start the daemon.
func runAdmin(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) (code int, handled bool) {
	if len(args) == 0 {
		return 0, false
	}
	var group *adminGroup
	for i := range adminGroups {
		if adminGroups[i].name == args[0] {
			group = &adminGroups[i]
		}
	}
	if group == nil {
		return 0, false
	}
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	if len(args) < 2 {
		fmt.Fprintf(stderr, "schedulerd %s: a command is required\n\n", group.name)
		group.usage(stderr)
		return exitUsage, true
	}
	switch args[1] {
	case "-h", "-help", "--help", "help":
		group.usage(stdout)
		return exitOK, true
	}
	for _, cmd := range group.commands {
		if cmd.name == args[1] {
			return cmd.run(ctx, group.name, args[2:], getenv, stdout, stderr), true
		}
	}
	fmt.Fprintf(stderr, "schedulerd %s: unknown command %q\n\n", group.name, args[1])
	group.usage(stderr)
	return exitUsage, true
}

func (g *adminGroup) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: schedulerd %s <command> [flags]\n\nCommands:\n", g.name)
	for _, c := range g.commands {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.short)
	}
	fmt.Fprintf(w, "\nEvery command talks to any node's API at -addr (default $%s, else\n%s) ", adminAddrEnvVar, defaultAdminAddr)
	fmt.Fprintf(w, "with the admin token from %s or -token-file.\n", adminTokenEnvVar)
	fmt.Fprintf(w, "Run \"schedulerd %s <command> -h\" for its flags.\n", g.name)
}

func (cmd adminCommand) run(ctx context.Context, group string, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	full := "schedulerd " + group + " " + cmd.name
	fs := flag.NewFlagSet(full, flag.ContinueOnError)
	// flag writes its messages before Parse returns; buffering them lets
	// -h go to stdout (it succeeded) and mistakes to stderr.
	var flagOut bytes.Buffer
	fs.SetOutput(&flagOut)

	addrDefault := getenv(adminAddrEnvVar)
	if addrDefault == "" {
		addrDefault = defaultAdminAddr
	}
	addr := fs.String("addr", addrDefault, "`URL` of any node's API, http(s)://host:port (env "+adminAddrEnvVar+")")
	tokenFile := fs.String("token-file", "", "`file` holding an admin token (alternative to "+adminTokenEnvVar+")")
	runCmd := cmd.setup(fs)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: %s %s\n\n%s\n\n", full, strings.TrimSpace(cmd.synopsis+" [-addr URL] [-token-file file]"), cmd.summary)
		fmt.Fprintf(w, "The admin token is read from %s or -token-file, never from a flag.\n\nFlags:\n", adminTokenEnvVar)
		fs.PrintDefaults()
	}

	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		stdout.Write(flagOut.Bytes())
		return exitOK
	}
	if err != nil {
		stderr.Write(flagOut.Bytes())
		return exitUsage
	}
	fs.SetOutput(stderr)
	if fs.NArg() > 0 {
		err = usageErrorf("unexpected argument %q", fs.Arg(0))
	}
	if err == nil {
		err = checkRequired(fs, cmd.required)
	}
	var c *adminClient
	if err == nil {
		c, err = newAdminClient(*addr, *tokenFile, getenv)
	}
	if err == nil {
		err = runCmd(ctx, c, stdout)
	}
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errAdminUsage):
		fmt.Fprintf(stderr, "%s: %s\n\n", full, strings.TrimPrefix(err.Error(), errAdminUsage.Error()+": "))
		fs.Usage()
		return exitUsage
	default:
		fmt.Fprintf(stderr, "schedulerd: %v\n", err)
		return exitFatal
	}
}

// checkRequired: a required flag must be on the command line with a value
// other than its zero, so that -email "" is caught as well as no -email.
func checkRequired(fs *flag.FlagSet, names []string) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, n := range names {
		if v := fs.Lookup(n).Value.String(); !set[n] || v == "" || v == "0" {
			return usageErrorf("-%s is required", n)
		}
	}
	return nil
}

// readSecretLine returns the first line of adminStdin without its line
// ending. Spaces are kept: they may be part of a password.
func readSecretLine(what string) (string, error) {
	// Two bytes over the limit leave room for a CRLF after a line of
	// exactly the maximum length.
	line, err := bufio.NewReader(io.LimitReader(adminStdin, maxSecretLine+2)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read the %s from stdin: %w", what, err)
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if len(line) > maxSecretLine {
		return "", usageErrorf("the %s on stdin is longer than %d bytes", what, maxSecretLine)
	}
	if line == "" {
		return "", usageErrorf("no %s on stdin: give it as the first line", what)
	}
	return line, nil
}

func setupUserCreate(fs *flag.FlagSet) func(context.Context, *adminClient, io.Writer) error {
	email := fs.String("email", "", "the user's email (required)")
	username := fs.String("username", "", "the login name (default: the email)")
	admin := fs.Bool("admin", false, "make the user an administrator")
	pwStdin := fs.Bool("password-stdin", false, "read a password for the user from the first line of stdin")
	return func(ctx context.Context, c *adminClient, out io.Writer) error {
		body := map[string]any{"email": *email, "is_admin": *admin}
		if *username != "" {
			body["username"] = *username
		}
		if *pwStdin {
			pw, err := readSecretLine("password")
			if err != nil {
				return err
			}
			body["password"] = pw
		}
		var u struct{ URL, Username string }
		if err := c.do(ctx, "POST", "/api/v1/admin/users/", body, &u); err != nil {
			return err
		}
		fmt.Fprintf(out, "created user %s %s\n", idFromURL(u.URL), u.Username)
		return nil
	}
}

func setupUserList(fs *flag.FlagSet) func(context.Context, *adminClient, io.Writer) error {
	return func(ctx context.Context, c *adminClient, out io.Writer) error {
		next := "/api/v1/user/"
		seen := map[string]bool{}
		for next != "" {
			if seen[next] {
				return fmt.Errorf("GET %s: the server sent the same page twice", next)
			}
			seen[next] = true
			var page struct {
				Next    *string
				Results []struct{ URL, Username, Email string }
			}
			if err := c.do(ctx, "GET", next, nil, &page); err != nil {
				return err
			}
			for _, u := range page.Results {
				fmt.Fprintf(out, "%s\t%s\t%s\n", idFromURL(u.URL), u.Username, u.Email)
			}
			next = ""
			if page.Next != nil {
				// Only the path and query are used: the link is built from
				// the Host the server saw, which behind a proxy need not be
				// an address this client can reach.
				u, err := url.Parse(*page.Next)
				if err != nil {
					return fmt.Errorf("GET %s: bad next link %q: %v", next, *page.Next, err)
				}
				next = u.RequestURI()
			}
		}
		return nil
	}
}

func setupUserToken(fs *flag.FlagSet) func(context.Context, *adminClient, io.Writer) error {
	email := fs.String("email", "", "the user's email, which is also its username (required)")
	return func(ctx context.Context, c *adminClient, out io.Writer) error {
		var res struct{ Token string }
		if err := c.do(ctx, "POST", "/api/v1/user/token/", map[string]string{"email": *email}, &res); err != nil {
			return err
		}
		fmt.Fprintln(out, res.Token)
		return nil
	}
}

func setupTokenRevoke(fs *flag.FlagSet) func(context.Context, *adminClient, io.Writer) error {
	return func(ctx context.Context, c *adminClient, out io.Writer) error {
		tok, err := readSecretLine("token")
		if err != nil {
			return err
		}
		if err := c.do(ctx, "POST", "/api/v1/admin/tokens/revoke/", map[string]string{"token": strings.TrimSpace(tok)}, nil); err != nil {
			return err
		}
		fmt.Fprintln(out, "revoked token")
		return nil
	}
}

func setupGroupCreate(fs *flag.FlagSet) func(context.Context, *adminClient, io.Writer) error {
	name := fs.String("name", "", "the group's name (required)")
	return func(ctx context.Context, c *adminClient, out io.Writer) error {
		var g struct{ URL, Name string }
		if err := c.do(ctx, "POST", "/api/v1/admin/groups/", map[string]string{"name": *name}, &g); err != nil {
			return err
		}
		fmt.Fprintf(out, "created group %s %s\n", idFromURL(g.URL), g.Name)
		return nil
	}
}

func setupGroupAddUser(fs *flag.FlagSet) func(context.Context, *adminClient, io.Writer) error {
	group := fs.Uint64("group", 0, "the group's `id` (required)")
	user := fs.Uint64("user", 0, "the user's `id` (required; see `schedulerd user list`)")
	return func(ctx context.Context, c *adminClient, out io.Writer) error {
		p := "/api/v1/admin/groups/" + strconv.FormatUint(*group, 10) + "/users/"
		if err := c.do(ctx, "POST", p, map[string]uint64{"user_id": *user}, nil); err != nil {
			return err
		}
		fmt.Fprintf(out, "added user %d to group %d\n", *user, *group)
		return nil
	}
}

// idFromURL returns the last path segment of an item's url, its id.
func idFromURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "?"
	}
	return path.Base(strings.TrimSuffix(u.Path, "/"))
}

// adminClient calls one node's API with an admin token.
type adminClient struct {
	base  *url.URL
	token string
	http  *http.Client
}

// newAdminClient checks -addr and loads the token. Like the daemon, it
// refuses both token sources at once rather than pick one silently.
func newAdminClient(addr, tokenFile string, getenv func(string) string) (*adminClient, error) {
	addr = strings.TrimSpace(addr)
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.User != nil {
		return nil, usageErrorf("-addr %q: want http(s)://host:port", addr)
	}
	u.Path = ""
	envTok := strings.TrimSpace(getenv(adminTokenEnvVar))
	token := envTok
	switch {
	case tokenFile != "" && envTok != "":
		return nil, usageErrorf("%s and -token-file are mutually exclusive", adminTokenEnvVar)
	case tokenFile != "":
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, usageErrorf("-token-file: %v", err)
		}
		if token = strings.TrimSpace(string(b)); token == "" {
			return nil, usageErrorf("-token-file %s is empty", tokenFile)
		}
	case token == "":
		return nil, usageErrorf("no admin token: set %s or -token-file", adminTokenEnvVar)
	}
	return &adminClient{base: u, token: token, http: &http.Client{
		Timeout: adminHTTPTimeout,
		// A redirect would turn a POST into a GET, or send the token to
		// another host; report it instead.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}, nil
}

// adminHTTPError is an answer outside 2xx.
type adminHTTPError struct {
	method, path string
	status       int
	msg          string
}

func (e *adminHTTPError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.method, e.path, e.status, e.msg)
}

// do sends body (when not nil) as JSON to path (with its query) and decodes
// a 2xx answer into out (when not nil).
func (c *adminClient) do(ctx context.Context, method, pathQuery string, body, out any) error {
	ref, err := url.Parse(pathQuery)
	if err != nil {
		return fmt.Errorf("%s %s: %v", method, pathQuery, err)
	}
	target := c.base.ResolveReference(ref)
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("%s %s: %v", method, ref.Path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, target.String(), rd)
	if err != nil {
		return fmt.Errorf("%s %s: %v", method, ref.Path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Token "+c.token)
	req.Header.Set("User-Agent", "schedulerd-cli/"+version)
	resp, err := c.http.Do(req)
	if err != nil {
		// url.Error repeats the method and URL this message already has.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%s %s: %v", method, ref.Path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAdminResponse))
	if err != nil {
		return fmt.Errorf("%s %s: read the answer: %v", method, ref.Path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &adminHTTPError{method: method, path: ref.Path, status: resp.StatusCode, msg: errorMessage(resp.StatusCode, data)}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode the answer: %v", method, ref.Path, err)
		}
	}
	return nil
}

// errorMessage renders the API's error body: the detail, or the field
// errors as "field: message; other: message".
func errorMessage(status int, data []byte) string {
	var detail struct{ Detail *string }
	if json.Unmarshal(data, &detail) == nil && detail.Detail != nil {
		return *detail.Detail
	}
	var fields map[string][]string
	if json.Unmarshal(data, &fields) == nil && len(fields) > 0 {
		keys := make([]string, 0, len(fields))
		for k := range fields {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, k+": "+strings.Join(fields[k], " "))
		}
		return strings.Join(parts, "; ")
	}
	// Not the API talking (a proxy, or the wrong port).
	return http.StatusText(status)
}
