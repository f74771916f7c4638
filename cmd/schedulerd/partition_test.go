package main

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// partition cuts one node off at its raft transport: its dials fail, the
// connections it accepts are closed at once, and the ones it had are
// closed when the cut starts.
type partition struct {
	mu    sync.Mutex
	cut   bool
	conns []net.Conn
}

func (p *partition) set(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

func (p *partition) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		c.Close()
		return false
	}
	p.conns = append(p.conns, c)
	return true
}

type cutStream struct {
	raft.StreamLayer
	p *partition
}

func (s *cutStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	s.p.mu.Lock()
	cut := s.p.cut
	s.p.mu.Unlock()
	if cut {
		return nil, errors.New("partitioned")
	}
	c, err := s.StreamLayer.Dial(addr, timeout)
	if err != nil {
		return nil, err
	}
	if !s.p.track(c) {
		return nil, errors.New("partitioned")
	}
	return c, nil
}

func (s *cutStream) Accept() (net.Conn, error) {
	for {
		c, err := s.StreamLayer.Accept()
		if err != nil {
			return nil, err
		}
		if s.p.track(c) {
			return c, nil
		}
	}
}

// TestLeaderCutOffAtTheTransport isolates the leader while schedules fire
// every second: the majority elects a new leader and carries on; every
// slot is delivered at least once, re-deliveries share their key, and after
// healing all three nodes hold the same state.
func TestLeaderCutOffAtTheTransport(t *testing.T) {
	sk := newSink(t)
	specs := []nodeSpec{newSpec(t, "n1"), newSpec(t, "n2"), newSpec(t, "n3")}
	join := strings.Join([]string{specs[0].httpAddr, specs[1].httpAddr, specs[2].httpAddr}, ",")
	parts := map[string]*partition{}
	var ds []*daemon
	for _, s := range specs {
		p := &partition{}
		parts[s.id] = p
		d := startDaemonWith(t, s, fastRetry, func(d *daemon) {
			d.wrapStream = func(st raft.StreamLayer) raft.StreamLayer { return &cutStream{StreamLayer: st, p: p} }
		}, "-bootstrap-expect", "3", "-join", join)
		ds = append(ds, d)
	}
	var leader *daemon
	waitFor(t, "a leader with the first admin", 20*time.Second, func() bool {
		for _, d := range ds {
			if d.node.IsLeader() && call(t, "GET", d.url("/api/v1/"), testToken, nil).status == 200 {
				leader = d
				return true
			}
		}
		return false
	})
	var ids []string
	for i := 0; i < 5; i++ {
		sc := createSchedule(t, baseURL(leader), map[string]any{"endpoint": sk.srv.URL + fmt.Sprintf("/p%d", i), "cron_definition": "* * * * * * *"})
		ids = append(ids, sc["id"].(string))
	}
	start := time.Now().Unix() + 1
	waitFor(t, "a few slots", 10*time.Second, func() bool { return time.Now().Unix() >= start+2 })

	parts[leader.cfg.NodeID].set(true)
	var rest []*daemon
	for _, d := range ds {
		if d != leader {
			rest = append(rest, d)
		}
	}
	waitFor(t, "a new leader in the majority", 10*time.Second, func() bool { return rest[0].node.IsLeader() || rest[1].node.IsLeader() })
	waitFor(t, "the old leader to step down", 10*time.Second, func() bool { return !leader.node.IsLeader() })
	end := time.Now().Unix() + 3
	lastSlot := func(path string) int64 {
		last := int64(0)
		for _, g := range sk.deliveries(path) {
			s, _ := strconv.ParseInt(g.key[strings.LastIndex(g.key, ":")+1:], 10, 64)
			last = max(last, s)
		}
		return last
	}
	waitFor(t, "slots after the partition", 15*time.Second, func() bool {
		for i := range ids {
			if lastSlot(fmt.Sprintf("/p%d", i)) < end {
				return false
			}
		}
		return true
	})

	parts[leader.cfg.NodeID].set(false)
	for _, id := range ids {
		if r := call(t, "PATCH", rest[0].url("/api/v1/schedule/"+id+"/"), testToken, map[string]any{"enabled": false}); r.status != 200 {
			t.Fatalf("disable: %d %s", r.status, r.body)
		}
	}
	waitFor(t, "all three nodes to hold the same state after healing", 20*time.Second, func() bool {
		var digests []string
		for _, d := range ds {
			dg, err := d.node.FSM().Digest()
			if err != nil || d.node.FSM().AppliedIndex() != ds[0].node.FSM().AppliedIndex() {
				return false
			}
			digests = append(digests, dg)
		}
		return digests[0] == digests[1] && digests[1] == digests[2]
	})

	for i, id := range ids {
		seen := map[int64]bool{}
		for _, g := range sk.deliveries(fmt.Sprintf("/p%d", i)) {
			slotStr, ok := strings.CutPrefix(g.key, id+":")
			if !ok {
				t.Fatalf("key %q of schedule %s", g.key, id)
			}
			s, _ := strconv.ParseInt(slotStr, 10, 64)
			seen[s] = true
		}
		for s := start; s <= end; s++ {
			if !seen[s] {
				t.Errorf("schedule %d: slot %d never delivered", i, s)
			}
		}
	}
}
