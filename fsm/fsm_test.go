package fsm

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 600000000, time.UTC)

func mustOpen(t *testing.T, path string, opts Options) *FSM {
	t.Helper()
	f, err := Open(path, opts)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func mustEncode(t *testing.T, ct CommandType, v any) []byte {
	t.Helper()
	b, err := Encode(ct, v)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	return b
}

func digestOf(s string) []byte { d := sha256.Sum256([]byte(s)); return d[:] }

// testLog is a fixed sequence of commands touching every table written in
// this package; entries carry consecutive indexes starting at 1.
func testLog(t *testing.T) []*raft.Log {
	cmds := [][]byte{
		mustEncode(t, CmdInit, InitCmd{ClusterID: "c1", ClusterKey: "k1", AdminEmail: "admin@localhost", TokenDigest: digestOf("admin"), At: t0}),
		mustEncode(t, CmdLeaderTerm, LeaderTerm{NodeID: "n1", Term: 2}),
		mustEncode(t, CmdSetNode, Node{ID: "n1", RaftAddr: "127.0.0.1:1", APIAddr: "127.0.0.1:2"}),
		mustEncode(t, CmdSetNode, Node{ID: "n2", RaftAddr: "127.0.0.1:3", APIAddr: "127.0.0.1:4"}),
		mustEncode(t, CmdIssueToken, IssueTokenCmd{Username: "bob@example.org", Email: "bob@example.org", TokenDigest: digestOf("bob1"), At: t0}),
		mustEncode(t, CmdIssueToken, IssueTokenCmd{Username: "bob@example.org", Email: "bob@example.org", TokenDigest: digestOf("bob2"), At: t0}),
		mustEncode(t, CmdCreateUser, CreateUserCmd{Username: "carol", Email: "carol@example.org", PasswordHash: "$2a$hash", At: t0}),
		mustEncode(t, CmdCreateGroup, CreateGroupCmd{Name: "ops"}),
		mustEncode(t, CmdAddToGroup, AddToGroupCmd{UserID: 3, GroupID: 1}),
		mustEncode(t, CmdRevokeToken, RevokeTokenCmd{TokenDigest: digestOf("bob1")}),
		mustEncode(t, CmdRemoveNode, RemoveNodeCmd{ID: "n2"}),
	}
	logs := make([]*raft.Log, len(cmds))
	for i, c := range cmds {
		logs[i] = &raft.Log{Index: uint64(i + 1), Term: 1, Type: raft.LogCommand, Data: c}
	}
	return logs
}

func mustDigest(t *testing.T, f *FSM) string {
	t.Helper()
	d, err := f.Digest()
	if err != nil {
		t.Fatalf("digest: %v", err)
	}
	return d
}

func TestCommandsApply(t *testing.T) {
	f := mustOpen(t, filepath.Join(t.TempDir(), "fsm.db"), Options{})
	logs := testLog(t)
	resp := f.ApplyBatch(logs)
	for i, r := range resp {
		if err, ok := r.(error); ok {
			t.Fatalf("entry %d: unexpected error %v", i+1, err)
		}
	}
	if got := resp[0].(InitResult); !got.Initialized || got.UserID != 1 {
		t.Fatalf("init result = %+v, want initialized user 1", got)
	}
	if got := resp[4].(IssueTokenResult); !got.Created || got.UserID != 2 {
		t.Fatalf("first token result = %+v, want created user 2", got)
	}
	if got := resp[5].(IssueTokenResult); got.Created || got.UserID != 2 {
		t.Fatalf("second token result = %+v, want existing user 2", got)
	}
	if f.AppliedIndex() != uint64(len(logs)) {
		t.Fatalf("applied index = %d, want %d", f.AppliedIndex(), len(logs))
	}
	err := f.View(func(tx *bolt.Tx) error {
		id, key := ClusterIdentity(tx)
		if id != "c1" || key != "k1" {
			t.Errorf("cluster identity = %q %q, want c1 k1", id, key)
		}
		admin, err := UserByTokenDigest(tx, digestOf("admin"))
		if err != nil || !admin.IsAdmin || admin.Username != "admin@localhost" {
			t.Errorf("admin by token = %+v, %v", admin, err)
		}
		if _, err := UserByTokenDigest(tx, digestOf("bob1")); !errors.Is(err, ErrNotFound) {
			t.Errorf("revoked token lookup error = %v, want ErrNotFound", err)
		}
		if u, err := UserByTokenDigest(tx, digestOf("bob2")); err != nil || u.ID != 2 {
			t.Errorf("bob by second token = %+v, %v", u, err)
		}
		carol, err := UserByUsername(tx, "carol")
		if err != nil || len(carol.Groups) != 1 || carol.Groups[0] != 1 || carol.PasswordHash != "$2a$hash" {
			t.Errorf("carol = %+v, %v; want member of group 1 with password hash", carol, err)
		}
		nodes, err := Nodes(tx)
		if err != nil || len(nodes) != 1 || nodes[0].ID != "n1" {
			t.Errorf("nodes = %+v, %v; want only n1", nodes, err)
		}
		if lt, _ := CurrentLeaderTerm(tx); lt.NodeID != "n1" || lt.Term != 2 {
			t.Errorf("leader term = %+v", lt)
		}
		if n := Count(tx, BUsers); n != 3 {
			t.Errorf("user count = %d, want 3", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestBusinessErrorsAreResponses(t *testing.T) {
	f := mustOpen(t, filepath.Join(t.TempDir(), "fsm.db"), Options{})
	before := mustDigest(t, f)
	cases := []struct {
		name string
		cmd  []byte
		want error
	}{
		{"revoke unknown token", mustEncode(t, CmdRevokeToken, RevokeTokenCmd{TokenDigest: digestOf("x")}), ErrNotFound},
		{"add unknown user to group", mustEncode(t, CmdAddToGroup, AddToGroupCmd{UserID: 9, GroupID: 1}), ErrNotFound},
	}
	for i, c := range cases {
		r := f.Apply(&raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: c.cmd})
		if err, _ := r.(error); !errors.Is(err, c.want) {
			t.Errorf("%s: response %v, want %v", c.name, r, c.want)
		}
	}
	f.Apply(&raft.Log{Index: 3, Type: raft.LogCommand, Data: mustEncode(t, CmdCreateUser, CreateUserCmd{Username: "a"})})
	r := f.Apply(&raft.Log{Index: 4, Type: raft.LogCommand, Data: mustEncode(t, CmdCreateUser, CreateUserCmd{Username: "a"})})
	if err, _ := r.(error); !errors.Is(err, ErrConflict) {
		t.Errorf("duplicate user: response %v, want ErrConflict", r)
	}
	if mustDigest(t, f) == before {
		t.Errorf("digest unchanged after a successful create")
	}
}

func TestInitOnlyOnce(t *testing.T) {
	f := mustOpen(t, filepath.Join(t.TempDir(), "fsm.db"), Options{})
	a := mustEncode(t, CmdInit, InitCmd{ClusterID: "first", ClusterKey: "k", AdminEmail: "a@x", TokenDigest: digestOf("a"), At: t0})
	b := mustEncode(t, CmdInit, InitCmd{ClusterID: "second", ClusterKey: "k2", AdminEmail: "b@x", TokenDigest: digestOf("b"), At: t0})
	resp := f.ApplyBatch([]*raft.Log{{Index: 1, Data: a}, {Index: 2, Data: b}})
	if !resp[0].(InitResult).Initialized || resp[1].(InitResult).Initialized {
		t.Fatalf("init responses = %+v, want only the first to initialise", resp)
	}
	f.View(func(tx *bolt.Tx) error {
		if id, _ := ClusterIdentity(tx); id != "first" {
			t.Errorf("cluster id = %q, want first", id)
		}
		return nil
	})
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	dir := t.TempDir()
	src := mustOpen(t, filepath.Join(dir, "a.db"), Options{})
	src.ApplyBatch(testLog(t))
	want := mustDigest(t, src)

	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Writes after the snapshot point must not leak into it.
	src.Apply(&raft.Log{Index: 100, Type: raft.LogCommand, Data: mustEncode(t, CmdCreateGroup, CreateGroupCmd{Name: "late"})})
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatalf("persist: %v", err)
	}
	snap.Release()

	dst := mustOpen(t, filepath.Join(dir, "b.db"), Options{})
	dst.ApplyBatch([]*raft.Log{{Index: 1, Data: mustEncode(t, CmdCreateGroup, CreateGroupCmd{Name: "stale"})}})
	var restored []Change
	dst.Watch(func(c Change) { restored = append(restored, c) })
	if err := dst.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if got := mustDigest(t, dst); got != want {
		t.Fatalf("digest after restore = %s, want %s", got, want)
	}
	if dst.AppliedIndex() != 11 {
		t.Fatalf("applied index after restore = %d, want 11", dst.AppliedIndex())
	}
	if len(restored) != 1 || !restored[0].Restored {
		t.Fatalf("watch after restore = %+v, want one Restored change", restored)
	}
}

func TestSameLogSameTables(t *testing.T) {
	dir := t.TempDir()
	a := mustOpen(t, filepath.Join(dir, "a.db"), Options{})
	b := mustOpen(t, filepath.Join(dir, "b.db"), Options{})
	logs := testLog(t)
	a.ApplyBatch(logs)
	// The other node sees the same entries in different batch shapes.
	for _, l := range logs {
		b.ApplyBatch([]*raft.Log{l})
	}
	if da, db := mustDigest(t, a), mustDigest(t, b); da != db {
		t.Fatalf("digests differ: %s vs %s", da, db)
	}
}

func TestUndecodableEntryPanics(t *testing.T) {
	cases := map[string][]byte{
		"empty":        {},
		"unknown type": {0x7f, '{', '}'},
		"bad payload":  append([]byte{byte(CmdSetNode)}, "{not json"...),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			f := mustOpen(t, filepath.Join(t.TempDir(), "fsm.db"), Options{})
			defer func() {
				r := recover()
				if r == nil {
					t.Fatalf("no panic for %q", data)
				}
				if !strings.Contains(fmt.Sprint(r), "fsm:") {
					t.Fatalf("panic %v does not say where it came from", r)
				}
				if f.AppliedIndex() != 0 {
					t.Fatalf("applied index moved to %d on a corrupt entry", f.AppliedIndex())
				}
			}()
			f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: data})
		})
	}
}

func TestUnknownOptionalCommandIsSkipped(t *testing.T) {
	f := mustOpen(t, filepath.Join(t.TempDir(), "fsm.db"), Options{})
	r := f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: []byte{byte(OptionalFlag | 0x7e), '{', '}'}})
	if r != nil {
		t.Fatalf("response = %v, want nil", r)
	}
	if f.AppliedIndex() != 1 {
		t.Fatalf("applied index = %d, want 1", f.AppliedIndex())
	}
}

func TestRestartResumesFromStoredIndex(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fsm.db")
	f, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	logs := testLog(t)
	f.ApplyBatch(logs)
	want := mustDigest(t, f)
	f.Close()

	g := mustOpen(t, path, Options{})
	if g.AppliedIndex() != uint64(len(logs)) {
		t.Fatalf("applied index after reopen = %d, want %d", g.AppliedIndex(), len(logs))
	}
	// raft replays from its last snapshot: entries already in the file must
	// not be applied twice (a second init token, a second group...).
	replay := append(testLog(t)[5:], &raft.Log{Index: uint64(len(logs) + 1), Type: raft.LogCommand,
		Data: mustEncode(t, CmdCreateGroup, CreateGroupCmd{Name: "new"})})
	resp := g.ApplyBatch(replay)
	if last := resp[len(resp)-1]; last != uint64(2) {
		t.Fatalf("new group id = %v, want 2 (replayed entries must be skipped)", last)
	}
	for i, r := range resp[:len(resp)-1] {
		if r != nil {
			t.Fatalf("replayed entry %d answered %v, want nil", i, r)
		}
	}
	if got := mustDigest(t, g); got == want {
		t.Fatalf("digest unchanged after a new entry")
	}
}

func TestCommitFailureStopsTheFSM(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fsm.db")
	var fail bool
	var fatal error
	f, err := Open(path, Options{
		BeforeCommit: func() error {
			if fail {
				return syscall.ENOSPC
			}
			return nil
		},
		OnFatal: func(err error) { fatal = err },
	})
	if err != nil {
		t.Fatal(err)
	}
	logs := testLog(t)
	f.ApplyBatch(logs[:4])
	want := mustDigest(t, f)

	fail = true
	resp := f.ApplyBatch(logs[4:6])
	for i, r := range resp {
		err, _ := r.(error)
		if !errors.Is(err, ErrFailed) || !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("response %d = %v, want ErrFailed wrapping ENOSPC", i, r)
		}
	}
	if fatal == nil {
		t.Fatalf("OnFatal not called")
	}
	if f.AppliedIndex() != 4 {
		t.Fatalf("applied index = %d after a failed commit, want 4", f.AppliedIndex())
	}
	// Later batches are refused too: applying them would skip the lost ones.
	fail = false
	if r := f.ApplyBatch(logs[6:7])[0]; !errors.Is(r.(error), ErrFailed) {
		t.Fatalf("batch after failure answered %v, want ErrFailed", r)
	}
	if err := f.WaitForIndex(make(chan struct{}), 5); !errors.Is(err, ErrFailed) {
		t.Fatalf("wait after failure = %v, want ErrFailed", err)
	}
	if got := mustDigest(t, f); got != want {
		t.Fatalf("state changed by a failed commit")
	}
	f.Close()

	g := mustOpen(t, path, Options{})
	if g.AppliedIndex() != 4 || mustDigest(t, g) != want {
		t.Fatalf("reopened state at %d differs from the last good commit", g.AppliedIndex())
	}
	g.ApplyBatch(logs[4:])
	if g.AppliedIndex() != uint64(len(logs)) {
		t.Fatalf("replay after restart stopped at %d", g.AppliedIndex())
	}
}

func TestWaitForIndex(t *testing.T) {
	f := mustOpen(t, filepath.Join(t.TempDir(), "fsm.db"), Options{})
	done := make(chan error, 1)
	go func() { done <- f.WaitForIndex(make(chan struct{}), 2) }()
	logs := testLog(t)
	f.ApplyBatch(logs[:1])
	select {
	case err := <-done:
		t.Fatalf("wait returned %v at index 1", err)
	default:
	}
	f.ApplyBatch(logs[1:2])
	if err := <-done; err != nil {
		t.Fatalf("wait: %v", err)
	}
	abort := make(chan struct{})
	close(abort)
	if err := f.WaitForIndex(abort, 99); !errors.Is(err, ErrWaitAborted) {
		t.Fatalf("aborted wait = %v, want ErrWaitAborted", err)
	}
}

func TestPage(t *testing.T) {
	f := mustOpen(t, filepath.Join(t.TempDir(), "fsm.db"), Options{})
	for i := 1; i <= 5; i++ {
		f.Apply(&raft.Log{Index: uint64(i), Data: mustEncode(t, CmdCreateUser, CreateUserCmd{Username: fmt.Sprint("u", i)})})
	}
	ids := func(p PageResult) []uint64 {
		var out []uint64
		for _, k := range p.Keys {
			out = append(out, KeyU64(k))
		}
		return out
	}
	f.View(func(tx *bolt.Tx) error {
		p := Page(tx, BUsers, nil, false, 2)
		if fmt.Sprint(ids(p)) != "[5 4]" || p.HasBefore || !p.HasAfter {
			t.Errorf("first page = %v before=%v after=%v", ids(p), p.HasBefore, p.HasAfter)
		}
		p = Page(tx, BUsers, U64Key(4), false, 2)
		if fmt.Sprint(ids(p)) != "[3 2]" || !p.HasBefore || !p.HasAfter {
			t.Errorf("second page = %v before=%v after=%v", ids(p), p.HasBefore, p.HasAfter)
		}
		p = Page(tx, BUsers, U64Key(2), false, 2)
		if fmt.Sprint(ids(p)) != "[1]" || !p.HasBefore || p.HasAfter {
			t.Errorf("last page = %v before=%v after=%v", ids(p), p.HasBefore, p.HasAfter)
		}
		p = Page(tx, BUsers, U64Key(1), true, 2)
		if fmt.Sprint(ids(p)) != "[3 2]" || !p.HasBefore || !p.HasAfter {
			t.Errorf("previous page = %v before=%v after=%v", ids(p), p.HasBefore, p.HasAfter)
		}
		p = Page(tx, BUsers, U64Key(3), true, 2)
		if fmt.Sprint(ids(p)) != "[5 4]" || p.HasBefore || !p.HasAfter {
			t.Errorf("back to first page = %v before=%v after=%v", ids(p), p.HasBefore, p.HasAfter)
		}
		p = Page(tx, BUsers, U64Key(99), false, 10)
		if fmt.Sprint(ids(p)) != "[5 4 3 2 1]" {
			t.Errorf("page from beyond the end = %v", ids(p))
		}
		return nil
	})
}

type memSink struct {
	bytes.Buffer
	cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
func (s *memSink) Close() error  { return nil }
