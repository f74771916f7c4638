//go:build e2e

package e2e

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// fault is one nemesis application, for the report.
type fault struct {
	name   string
	victim string
	at     time.Time // fault injected
	healed time.Time // process restarted / thawed / link healed
	hold   time.Duration
	// stop-leader: how long until another node reported itself leader
	// while the old one was frozen (-1: none within the hold).
	elected time.Duration
}

// TestNemesesUnderLoad (CI profile): the workload of TestLeaderKillsUnderLoad
// while four nemeses are applied in turn, E2E_NEMESIS_ROUNDS times (4):
// SIGKILL of a random node and restart; SIGSTOP of the leader for 2–5 s;
// the leader's inbound raft proxy blackholed for 3 s; every node SIGKILLed
// at once and restarted on its data dir. After each fault: a leader, an
// acknowledged create invoked after the heal, a slot delivered after it.
// The same invariants are checked at the end.
func TestNemesesUnderLoad(t *testing.T) {
	rounds := envInt("E2E_NEMESIS_ROUNDS", 4)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 11))
	t.Logf("nemesis seed %d", seed)
	started := time.Now()

	c := newCluster(t, 3)
	lb := startNginx(t, c)
	sk := newSink(t)
	lr := startLoad(t, c, lb, sk, started)

	var fs []fault
	var elected []time.Duration
	for round := 1; round <= rounds; round++ {
		for _, name := range []string{"kill-random", "stop-leader", "blackhole-leader", "kill-all"} {
			leader := c.WaitHealthy(60 * time.Second)
			f := fault{name: name, victim: leader.id, at: time.Now()}
			switch name {
			case "kill-random":
				v := c.nodes[rng.IntN(len(c.nodes))]
				f.victim = v.id
				c.Kill(v)
				// The two survivors are a majority: writes must go on.
				lr.waitWrite(fmt.Sprintf("an acknowledged create with %s down", v.id), f.at)
				c.Start(v)
			case "stop-leader":
				f.hold = time.Duration(2000+rng.IntN(3001)) * time.Millisecond
				c.Stop(leader)
				f.elected = -1
				for time.Since(f.at) < f.hold {
					if l, ok := c.Leader(); ok && l != leader && f.elected < 0 {
						f.elected = time.Since(f.at)
					}
					time.Sleep(20 * time.Millisecond) // poll interval
				}
				c.Cont(leader)
			case "blackhole-leader":
				f.hold = 3 * time.Second
				leader.proxy.Set(modeBlackhole, 0)
				time.Sleep(f.hold) // the fault's duration
				// Heal with fresh connections: a blackholed stream lost bytes
				// mid-message, so it is closed (drop) before passing again.
				leader.proxy.Set(modeDrop, 0)
				leader.proxy.Set(modePass, 0)
			case "kill-all":
				f.victim = "all"
				c.KillAll()
				for _, nd := range c.nodes {
					c.Start(nd)
				}
			}
			f.healed = time.Now()
			fs = append(fs, f)
			nl := lr.waitRecovered(fmt.Sprintf("%s (round %d)", name, round))
			t.Logf("round %d: %s of %s (hold %v), recovered %v after the heal; leader %s before, %s after", round, name, f.victim,
				f.hold, time.Since(f.healed).Round(time.Millisecond), leader.id, nl.id)
			if name == "stop-leader" {
				if f.elected < 0 {
					t.Logf("round %d: no other node became leader while %s was frozen for %v", round, leader.id, f.hold)
				} else {
					elected = append(elected, f.elected)
				}
			}
		}
	}
	ops, end := lr.finish()

	// ---- report of the nemeses ----
	byName := map[string][]time.Duration{}
	var order []string
	for _, f := range fs {
		if byName[f.name] == nil {
			order = append(order, f.name)
		}
		byName[f.name+" heal"] = append(byName[f.name+" heal"], firstAckAfter(ops, f.healed))
		byName[f.name] = append(byName[f.name], firstAckAfter(ops, f.at))
	}
	t.Logf("faults: %d in %v", len(fs), end.Sub(started).Round(time.Second))
	t.Logf("stop-leader: SIGSTOP → another node leader: %s", durations(elected))
	for _, n := range order {
		t.Logf("%s: fault → first accepted write through nginx %s; heal → first accepted write %s",
			n, durations(byName[n]), durations(byName[n+" heal"]))
	}
	lr.check(ops, end)
}
