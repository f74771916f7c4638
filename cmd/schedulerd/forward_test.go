package main

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
)

// Many concurrent writes through one follower travel to the leader in
// batches; each must still get its own answer, from the leader, and be
// readable on the follower as soon as it is answered.
func TestConcurrentWritesThroughAFollower(t *testing.T) {
	_, ps := startCluster(t)
	leader, followers := leaderOf(t, ps)
	f := followers[0]

	const writers = 40
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	tokens := make(chan string, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := issueToken(t, f, fmt.Sprintf("w%d@example.org", i))
			if r.status != http.StatusCreated {
				errs <- fmt.Errorf("write %d: %d %s", i, r.status, r.body)
				return
			}
			if got := r.header.Get("X-Scheduler-Served-By"); got != leader.id {
				errs <- fmt.Errorf("write %d served by %q, want the leader %q", i, got, leader.id)
				return
			}
			tok := r.json(t)["token"].(string)
			// Read-your-writes on the node that took the request.
			if r := call(t, "GET", f.url("/api/v1/user/"), tok, nil); r.status != http.StatusOK {
				errs <- fmt.Errorf("new token of write %d on %s right after the answer: %d %s", i, f.id, r.status, r.body)
				return
			}
			tokens <- tok
		}()
	}
	wg.Wait()
	close(errs)
	close(tokens)
	for err := range errs {
		t.Error(err)
	}
	seen := map[string]bool{}
	for tok := range tokens {
		if seen[tok] {
			t.Errorf("token %s issued twice", tok)
		}
		seen[tok] = true
	}

	// Validation and auth errors come back as the leader answered them.
	if r := call(t, "POST", f.url("/api/v1/user/token/"), testToken, map[string]string{"email": "nope"}); r.status != http.StatusBadRequest ||
		string(r.body) != `{"email":["Enter a valid email address."]}` {
		t.Errorf("invalid email through the follower: %d %s", r.status, r.body)
	}

	// A token revoked through the follower is refused by the follower
	// (read-your-writes) and by the leader, which authenticates every
	// forwarded request again against its own state.
	var victim string
	for tok := range seen {
		victim = tok
		break
	}
	if r := call(t, "POST", f.url("/api/v1/admin/tokens/revoke/"), testToken, map[string]string{"token": victim}); r.status != http.StatusNoContent {
		t.Fatalf("revoke through the follower: %d %s", r.status, r.body)
	}
	for _, p := range []*proc{f, leader} {
		r := call(t, "POST", p.url("/api/v1/schedule/"), victim, map[string]any{"endpoint": "http://example.org/hook"})
		if r.status != http.StatusUnauthorized || string(r.body) != `{"detail":"Invalid token."}` {
			t.Errorf("write with a revoked token through %s: %d %s", p.id, r.status, r.body)
		}
	}
}
