package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fakeEnv keeps tests independent of the real process environment, which
// may well contain SCHEDULERD_* variables on a developer machine.
func fakeEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func parse(t *testing.T, env map[string]string, args ...string) (*Config, string, error) {
	t.Helper()
	var out bytes.Buffer
	c, err := ParseConfig(args, fakeEnv(env), &out)
	return c, out.String(), err
}

func mustParse(t *testing.T, env map[string]string, args ...string) *Config {
	t.Helper()
	c, out, err := parse(t, env, args...)
	if err != nil {
		t.Fatalf("ParseConfig(%q): unexpected error: %v\noutput:\n%s", args, err, out)
	}
	return c
}

// base is the smallest valid non-dev command line; cases append to it so
// each one fails for exactly the reason under test.
func base(extra ...string) []string {
	return append([]string{"-node-id", "n1", "-data-dir", "/tmp/x"}, extra...)
}

func TestParseConfigRejects(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // must appear in the error message
	}{
		{"missing node id", []string{"-data-dir", "/d"}, nil, "-node-id is required"},
		{"missing data dir", []string{"-node-id", "n1"}, nil, "-data-dir is required"},
		{"node id bad char", []string{"-node-id", "n 1", "-data-dir", "/d"}, nil, "-node-id"},
		{"node id slash", []string{"-node-id", "a/b", "-data-dir", "/d"}, nil, "-node-id"},
		{"node id too long", []string{"-node-id", strings.Repeat("a", 65), "-data-dir", "/d"}, nil, "-node-id"},
		{"positional arg", base("extra"), nil, "extra"},
		{"unknown flag", base("-nope"), nil, "-nope"},

		{"bootstrap with expect", base("-bootstrap", "-bootstrap-expect", "3", "-join", "a:1,b:1"), nil, "-bootstrap and -bootstrap-expect are mutually exclusive"},
		{"bootstrap with join", base("-bootstrap", "-join", "a:1"), nil, "-bootstrap and -join"},
		{"dev with expect", []string{"-dev", "-bootstrap-expect", "3", "-join", "a:1,b:1"}, nil, "-dev and -bootstrap-expect"},
		{"dev with join", []string{"-dev", "-join", "a:1"}, nil, "-dev and -join"},
		{"expect negative", base("-bootstrap-expect", "-1"), nil, "-bootstrap-expect"},
		{"expect one", base("-bootstrap-expect", "1"), nil, "use -bootstrap"},
		{"expect without join", base("-bootstrap-expect", "3"), nil, "-bootstrap-expect requires -join with the addresses of the expected nodes"},
		{"expect too few join", base("-bootstrap-expect", "3", "-join", "a:1"), nil, "-bootstrap-expect 3 requires at least 2 -join"},
		{"expect duplicate join", base("-bootstrap-expect", "3", "-join", "a:1,http://a:1"), nil, "-join"},

		{"http addr no port", base("-http-addr", "localhost"), nil, "-http-addr"},
		{"http addr named port", base("-http-addr", "localhost:http"), nil, "-http-addr"},
		{"http addr port too big", base("-http-addr", "localhost:70000"), nil, "-http-addr"},
		{"raft addr no port", base("-raft-addr", "localhost"), nil, "-raft-addr"},
		{"raft addr negative port", base("-raft-addr", "localhost:-1"), nil, "-raft-addr"},
		{"http advertise bad", base("-http-advertise", "nohost"), nil, "-http-advertise"},
		{"raft advertise bad", base("-raft-advertise", "h:99999"), nil, "-raft-advertise"},
		{"http advertise port zero", base("-http-advertise", "10.0.0.1:0"), nil, "-http-advertise"},
		{"raft advertise port zero", base("-raft-advertise", "10.0.0.1:0"), nil, "-raft-advertise"},
		{"derived http advertise port zero", base("-http-addr", "127.0.0.1:0"), nil, "set -http-advertise when -http-addr uses port 0"},
		{"derived raft advertise port zero", base("-raft-addr", "127.0.0.1:0"), nil, "set -raft-advertise when -raft-addr uses port 0"},

		{"http advertise unspecified", base("-http-advertise", "0.0.0.0:80"), nil, "-http-advertise: 0.0.0.0 is not an address other nodes can reach"},
		{"raft advertise ipv6 unspecified", base("-raft-advertise", "[::]:80"), nil, "-raft-advertise"},
		{"http advertise empty host", base("-http-advertise", ":80"), nil, "-http-advertise"},
		{"derived http advertise", base("-http-addr", "0.0.0.0:8080"), nil,
			"-http-advertise: 0.0.0.0 is not an address other nodes can reach; set -http-advertise when -http-addr listens on all interfaces"},
		{"derived raft advertise empty host", base("-raft-addr", ":8089"), nil,
			"set -raft-advertise when -raft-addr listens on all interfaces"},

		{"listen equal", base("-http-addr", "127.0.0.1:9000", "-raft-addr", "127.0.0.1:9000"), nil, "-http-addr 127.0.0.1:9000 and -raft-addr 127.0.0.1:9000"},
		{"listen overlap wildcard", base("-http-addr", "0.0.0.0:9000", "-http-advertise", "10.0.0.1:80", "-raft-addr", "127.0.0.1:9000"), nil, "-raft-addr"},
		{"listen equal case", base("-http-addr", "LOCALHOST:9000", "-raft-addr", "localhost:09000"), nil, "-http-addr"},
		{"advertise equal", base("-http-advertise", "10.0.0.1:80", "-raft-advertise", "10.0.0.1:80"), nil, "-http-advertise and -raft-advertise"},

		{"join bad scheme", base("-join", "ftp://a:1"), nil, `-join entry "ftp://a:1"`},
		{"join missing port", base("-join", "a"), nil, `-join entry "a"`},
		{"join url missing port", base("-join", "http://a"), nil, `-join entry "http://a"`},
		{"join url with path", base("-join", "http://a:1/v1"), nil, `-join entry "http://a:1/v1"`},
		{"join empty host", base("-join", ":8080"), nil, `-join entry ":8080"`},
		{"join port zero", base("-join", "a:0"), nil, `-join entry "a:0"`},

		{"heartbeat zero", base("-raft-heartbeat-timeout", "0"), nil, "-raft-heartbeat-timeout"},
		{"heartbeat too low", base("-raft-heartbeat-timeout", "4ms", "-raft-leader-lease-timeout", "4ms"), nil, "-raft-heartbeat-timeout"},
		{"election zero", base("-raft-election-timeout", "0s"), nil, "-raft-election-timeout"},
		{"election too low", base("-raft-election-timeout", "1ms"), nil, "-raft-election-timeout"},
		{"election below heartbeat", base("-raft-election-timeout", "200ms"), nil, "-raft-election-timeout"},
		{"commit zero", base("-raft-commit-timeout", "0"), nil, "-raft-commit-timeout"},
		{"commit negative", base("-raft-commit-timeout", "-1s"), nil, "-raft-commit-timeout"},
		{"lease zero", base("-raft-leader-lease-timeout", "0"), nil, "-raft-leader-lease-timeout"},
		{"lease above heartbeat", base("-raft-leader-lease-timeout", "500ms"), nil, "-raft-leader-lease-timeout (500ms) must not exceed -raft-heartbeat-timeout"},
		{"snapshot threshold zero", base("-raft-snapshot-threshold", "0"), nil, "-raft-snapshot-threshold"},
		{"snapshot interval low", base("-raft-snapshot-interval", "500ms"), nil, "-raft-snapshot-interval"},
		{"log level", base("-log-level", "verbose"), nil, "-log-level"},
		{"admin email", base("-admin-email", "nobody"), nil, "-admin-email"},

		{"bad env int", base(), map[string]string{"SCHEDULERD_BOOTSTRAP_EXPECT": "many"}, "SCHEDULERD_BOOTSTRAP_EXPECT"},
		{"bad env bool", base(), map[string]string{"SCHEDULERD_LOG_JSON": "sure"}, "SCHEDULERD_LOG_JSON"},
		{"bad env duration", base(), map[string]string{"SCHEDULERD_RAFT_COMMIT_TIMEOUT": "5"}, "-raft-commit-timeout"},
		{"env contradiction", base("-bootstrap"), map[string]string{"SCHEDULERD_JOIN": "a:1"}, "-bootstrap and -join"},
		{"env token with token file", base("-admin-token-file", "/nonexistent"), map[string]string{"SCHEDULERD_ADMIN_TOKEN": "t"}, "-admin-token-file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, out, err := parse(t, tt.env, tt.args...)
			if err == nil {
				t.Fatalf("ParseConfig(%q) = %+v, want error containing %q", tt.args, c, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseConfig(%q) error:\n  got:  %q\n  want: contains %q\noutput:\n%s", tt.args, err, tt.want, out)
			}
			if errors.Is(err, flag.ErrHelp) {
				t.Fatalf("ParseConfig(%q) returned flag.ErrHelp for a usage error", tt.args)
			}
		})
	}
}

func TestParseConfigDefaults(t *testing.T) {
	c := mustParse(t, nil, base()...)
	want := &Config{
		NodeID:               "n1",
		DataDir:              "/tmp/x",
		HTTPAddr:             "127.0.0.1:8080",
		HTTPAdvertise:        "127.0.0.1:8080",
		RaftAddr:             "127.0.0.1:8089",
		RaftAdvertise:        "127.0.0.1:8089",
		Join:                 nil,
		AdminEmail:           "admin@localhost",
		HeartbeatTimeout:     250 * time.Millisecond,
		ElectionTimeout:      250 * time.Millisecond,
		LeaderLeaseTimeout:   125 * time.Millisecond,
		CommitTimeout:        5 * time.Millisecond,
		SnapshotThreshold:    65536,
		SnapshotInterval:     30 * time.Second,
		CatchUpWindow:        10 * time.Minute,
		DeliveryTimeout:      30 * time.Second,
		DeliveryWorkers:      256,
		RunsRetention:        100,
		LogLevel:             "info",
		httpAdvertiseDerived: true,
		raftAdvertiseDerived: true,
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("defaults:\n  got:  %+v\n  want: %+v", c, want)
	}
}

func TestParseConfigAdvertise(t *testing.T) {
	tests := []struct {
		name           string
		args           []string
		wantHTTP, want string
	}{
		{"derived from listen", base("-http-addr", "10.0.0.5:80", "-raft-addr", "10.0.0.5:81"), "10.0.0.5:80", "10.0.0.5:81"},
		{"explicit wins", base("-http-addr", "0.0.0.0:80", "-http-advertise", "10.0.0.5:80", "-raft-addr", ":81", "-raft-advertise", "node1.example:81"), "10.0.0.5:80", "node1.example:81"},
		{"listen port zero with explicit advertise", base("-http-addr", "127.0.0.1:0", "-http-advertise", "10.0.0.5:80"), "10.0.0.5:80", "127.0.0.1:8089"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, nil, tt.args...)
			if c.HTTPAdvertise != tt.wantHTTP || c.RaftAdvertise != tt.want {
				t.Fatalf("advertise: got http=%q raft=%q, want http=%q raft=%q", c.HTTPAdvertise, c.RaftAdvertise, tt.wantHTTP, tt.want)
			}
		})
	}
}

func TestParseConfigListenPortZeroTwice(t *testing.T) {
	// Both listeners on port 0 get distinct ephemeral ports, so this must
	// not be reported as a clash.
	c := mustParse(t, nil, base(
		"-http-addr", "127.0.0.1:0", "-http-advertise", "10.0.0.5:80",
		"-raft-addr", "127.0.0.1:0", "-raft-advertise", "10.0.0.5:81")...)
	if c.HTTPAddr != "127.0.0.1:0" || c.RaftAddr != "127.0.0.1:0" {
		t.Fatalf("got http=%q raft=%q", c.HTTPAddr, c.RaftAddr)
	}
}

func TestParseConfigDev(t *testing.T) {
	c := mustParse(t, nil, "-dev")
	if c.NodeID != "dev" || c.DataDir != "" || !c.Bootstrap || !c.Dev {
		t.Fatalf("-dev: got NodeID=%q DataDir=%q Bootstrap=%v Dev=%v, want \"dev\", \"\", true, true", c.NodeID, c.DataDir, c.Bootstrap, c.Dev)
	}

	c = mustParse(t, nil, "-dev", "-node-id", "alpha", "-data-dir", "/var/lib/x")
	if c.NodeID != "alpha" || c.DataDir != "/var/lib/x" || !c.Bootstrap {
		t.Fatalf("-dev with overrides: got NodeID=%q DataDir=%q Bootstrap=%v", c.NodeID, c.DataDir, c.Bootstrap)
	}
}

func TestParseConfigEnv(t *testing.T) {
	env := map[string]string{
		"SCHEDULERD_NODE_ID":                "from-env",
		"SCHEDULERD_DATA_DIR":               "/env/data",
		"SCHEDULERD_BOOTSTRAP_EXPECT":       "3",
		"SCHEDULERD_JOIN":                   " a:1 , ,https://b:2/ ",
		"SCHEDULERD_LOG_JSON":               "1",
		"SCHEDULERD_LOG_LEVEL":              "DEBUG",
		"SCHEDULERD_RAFT_SNAPSHOT_INTERVAL": "2m",
		"SCHEDULERD_ADMIN_TOKEN":            "  secret\n",
	}
	c := mustParse(t, env)
	if c.NodeID != "from-env" || c.DataDir != "/env/data" || c.BootstrapExpect != 3 ||
		!c.LogJSON || c.LogLevel != "debug" || c.SnapshotInterval != 2*time.Minute || c.AdminToken != "secret" {
		t.Fatalf("env fallback: got %+v", c)
	}
	if want := []string{"a:1", "https://b:2/"}; !reflect.DeepEqual(c.Join, want) {
		t.Fatalf("Join: got %q, want %q", c.Join, want)
	}
	if want := []string{"http://a:1", "https://b:2"}; !reflect.DeepEqual(c.JoinURLs(), want) {
		t.Fatalf("JoinURLs: got %q, want %q", c.JoinURLs(), want)
	}
}

func TestParseConfigCommandLineWinsOverEnv(t *testing.T) {
	env := map[string]string{
		"SCHEDULERD_NODE_ID":  "from-env",
		"SCHEDULERD_DATA_DIR": "/env/data",
		"SCHEDULERD_LOG_JSON": "true",
		// An invalid env value for a flag given on the command line is never
		// consulted, so it must not cause an error.
		"SCHEDULERD_BOOTSTRAP_EXPECT": "bogus",
	}
	c := mustParse(t, env, "-node-id", "from-flag", "-log-json=false", "-bootstrap-expect", "0")
	if c.NodeID != "from-flag" || c.LogJSON || c.DataDir != "/env/data" {
		t.Fatalf("got NodeID=%q LogJSON=%v DataDir=%q, want \"from-flag\", false, \"/env/data\"", c.NodeID, c.LogJSON, c.DataDir)
	}
}

func TestParseConfigBadEnvNamesVarAndFlag(t *testing.T) {
	_, _, err := parse(t, map[string]string{"SCHEDULERD_RAFT_SNAPSHOT_THRESHOLD": "-5"}, base()...)
	if err == nil {
		t.Fatal("want error for bad env value")
	}
	for _, want := range []string{"SCHEDULERD_RAFT_SNAPSHOT_THRESHOLD", "-raft-snapshot-threshold"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestParseConfigHelp(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help"} {
		t.Run(arg, func(t *testing.T) {
			_, out, err := parse(t, nil, arg)
			if !errors.Is(err, flag.ErrHelp) {
				t.Fatalf("ParseConfig(%q) error = %v, want flag.ErrHelp", arg, err)
			}
			if !strings.HasPrefix(out, "Usage: schedulerd [flags]") {
				t.Errorf("usage does not start with header:\n%s", out)
			}
			flags := []string{
				"node-id", "data-dir", "http-addr", "http-advertise", "raft-addr", "raft-advertise",
				"bootstrap", "bootstrap-expect", "join", "dev", "admin-email", "admin-token-file",
				"raft-heartbeat-timeout", "raft-election-timeout", "raft-leader-lease-timeout",
				"raft-commit-timeout", "raft-snapshot-threshold", "raft-snapshot-interval",
				"log-level", "log-json",
			}
			for _, f := range flags {
				if !strings.Contains(out, "  -"+f+" ") && !strings.Contains(out, "  -"+f+"\n") {
					t.Errorf("usage does not document -%s", f)
				}
				if env := flagEnvName(f); !strings.Contains(out, env) {
					t.Errorf("usage does not mention %s", env)
				}
			}
			if !strings.Contains(out, "SCHEDULERD_ADMIN_TOKEN") {
				t.Errorf("usage does not mention SCHEDULERD_ADMIN_TOKEN")
			}
		})
	}
}

func TestParseConfigAdminTokenFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "token")
	if err := os.WriteFile(good, []byte("  s3cret \n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}

	c := mustParse(t, nil, base("-admin-token-file", good)...)
	if c.AdminToken != "s3cret" {
		t.Fatalf("AdminToken = %q, want %q", c.AdminToken, "s3cret")
	}

	c = mustParse(t, map[string]string{"SCHEDULERD_ADMIN_TOKEN_FILE": good}, base()...)
	if c.AdminToken != "s3cret" {
		t.Fatalf("AdminToken via env file = %q, want %q", c.AdminToken, "s3cret")
	}

	for _, tc := range []struct{ name, path string }{
		{"missing", filepath.Join(dir, "missing")},
		{"directory", dir},
		{"empty", empty},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parse(t, nil, base("-admin-token-file", tc.path)...)
			if err == nil || !strings.Contains(err.Error(), "-admin-token-file") {
				t.Fatalf("got error %v, want one naming -admin-token-file", err)
			}
		})
	}
}

func TestParseConfigJoin(t *testing.T) {
	c := mustParse(t, nil, base(
		"-bootstrap-expect", "3",
		"-join", " 10.0.0.1:8080 ,,HTTP://Node2.example:8080/",
		"-join", "https://[::1]:8443")...)
	want := []string{"http://10.0.0.1:8080", "http://node2.example:8080", "https://[::1]:8443"}
	if got := c.JoinURLs(); !reflect.DeepEqual(got, want) {
		t.Fatalf("JoinURLs:\n  got:  %q\n  want: %q", got, want)
	}
	if len(c.Join) != 3 {
		t.Fatalf("Join = %q, want 3 entries", c.Join)
	}
}

func TestValidateHandBuiltConfig(t *testing.T) {
	// Validate must work on a Config built without ParseConfig, where the
	// advertise addresses may be left empty.
	c := &Config{
		NodeID: "n1", DataDir: "/d", HTTPAddr: "0.0.0.0:8080", RaftAddr: "127.0.0.1:8089",
		AdminEmail: "a@b", HeartbeatTimeout: time.Second, ElectionTimeout: time.Second,
		LeaderLeaseTimeout: 500 * time.Millisecond, CommitTimeout: 5 * time.Millisecond,
		SnapshotThreshold: 1, SnapshotInterval: time.Second, LogLevel: "warn",
		DeliveryTimeout: time.Second, DeliveryWorkers: 1, RunsRetention: 1,
	}
	err := c.Validate()
	want := "set -http-advertise when -http-addr listens on all interfaces"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Validate() = %v, want error containing %q", err, want)
	}
	c.HTTPAdvertise = "10.0.0.1:8080"
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() = %v, want nil", err)
	}
}
