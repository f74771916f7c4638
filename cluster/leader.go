package cluster

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/seedscheduler/schedulerd/fsm"
)

// leaderLoop starts leader-only services when this node gains leadership and
// stops them (waiting until they have returned) when it loses it. Raft blocks
// on NotifyCh, so the channel is drained promptly.
func (n *Node) leaderLoop(ctx context.Context, notify <-chan bool) {
	defer close(n.loopDone)
	var term *leaderTerm
	stopTerm := func() {
		if term != nil {
			term.stop()
			term = nil
			n.log.Info("leader-only services stopped")
		}
	}
	defer stopTerm()
	for {
		select {
		case <-ctx.Done():
			return
		case leader := <-notify:
			lost := !leader
			for drained := false; !drained; {
				select {
				case v := <-notify:
					leader = v
					lost = lost || !v
				default:
					drained = true
				}
			}
			// A loss seen while draining ends the old term even if leadership
			// came straight back: services keep no state across terms.
			if lost {
				stopTerm()
			}
			if leader && term == nil {
				term = n.startTerm(ctx)
			}
		}
	}
}

// leaderTerm is the leader-only work of one term.
type leaderTerm struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// stop cancels the term and waits until every service has returned.
func (t *leaderTerm) stop() {
	t.cancel()
	t.wg.Wait()
}

func (n *Node) startTerm(parent context.Context) *leaderTerm {
	ctx, cancel := context.WithCancel(parent)
	t := &leaderTerm{cancel: cancel}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		n.runTerm(ctx, &t.wg)
	}()
	return t
}

// runTerm catches the FSM up with everything committed by earlier leaders,
// announces this leader in the log (so the last committed entry is one the
// FSM sees), registers its own address, then starts the services.
func (n *Node) runTerm(ctx context.Context, wg *sync.WaitGroup) {
	n.log.Info("gained leadership; waiting for the log to be applied")
	for {
		err := n.await(n.raft.Barrier(10 * time.Second))
		if err == nil {
			break
		}
		if errors.Is(err, ErrNotLeader) || errors.Is(err, ErrLeadershipLost) || errors.Is(err, ErrShutdown) {
			return
		}
		n.log.Warn("barrier failed; retrying", "error", err)
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return
		}
	}
	term, _ := strconv.ParseUint(n.raft.Stats()["term"], 10, 64)
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, _, err := n.ApplyCommand(actx, fsm.CmdLeaderTerm, fsm.LeaderTerm{NodeID: n.cfg.NodeID, Term: term})
	if err == nil {
		err = n.registerSelf(actx)
	}
	cancel()
	if err != nil {
		n.log.Warn("could not announce leadership", "error", err)
		return
	}
	n.servicesMu.Lock()
	services := append([]LeaderService(nil), n.services...)
	n.servicesMu.Unlock()
	n.log.Info("leader ready; starting leader-only services", "term", term, "services", len(services))
	for _, s := range services {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.RunLeader(ctx)
		}()
	}
}

// registerSelf writes this node's addresses to the replicated metadata when
// they differ from what is stored. Leader only.
func (n *Node) registerSelf(ctx context.Context) error {
	want := fsm.Node{ID: n.cfg.NodeID, RaftAddr: n.cfg.RaftAdvertise, APIAddr: n.cfg.APIAdvertise}
	if n.metadataIs(want) {
		return nil
	}
	_, _, err := n.ApplyCommand(ctx, fsm.CmdSetNode, want)
	return err
}

func (n *Node) metadataIs(want fsm.Node) bool {
	got, ok, err := n.getNode(want.ID)
	return err == nil && ok && got == want
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
