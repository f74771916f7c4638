package executor

import (
	"math"
	"time"
)

// MaxAttempts is the contract's limit on delivery attempts of one slot: the
// first attempt and five retries. After the last failed attempt a failed-task
// record is written.
const MaxAttempts = 6

// The contract's retry timing.
const (
	// DefaultFirstRetry is the wait before the first retry.
	DefaultFirstRetry = 5 * time.Second
	// DefaultRetryCap bounds every wait between attempts.
	DefaultRetryCap = 5 * time.Minute
)

// jitterFraction is the half-width of the jitter band: a delay is spread
// uniformly over [base·(1-j), base·(1+j)).
const jitterFraction = 0.2

// RetryPolicy is the retry timing of a delivery. The default is the
// contract's; tests and benchmarks scale First and Cap down so a full retry
// sequence runs in milliseconds.
type RetryPolicy struct {
	First    time.Duration // wait before the first retry (exact, no jitter)
	Cap      time.Duration // upper bound of any wait; <= 0 means no bound
	Attempts int           // total attempts including the first
}

// DefaultRetryPolicy is the contract's policy: 6 attempts, the first retry
// after 5 s, then exponential with ±20% jitter, capped at 5 minutes.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{First: DefaultFirstRetry, Cap: DefaultRetryCap, Attempts: MaxAttempts}
}

// RetryDelay is the wait before the next attempt after failed attempt n
// (1-based, n < MaxAttempts) under the default policy. rnd is a number in
// [0, 1) chosen by the leader before the retry goes through raft, so every
// node agrees on the retry time.
func RetryDelay(n int, rnd float64) time.Duration {
	return DefaultRetryPolicy().Delay(n, rnd)
}

// CanRetry reports whether failed attempt n (1-based) may be followed by
// another attempt.
func (p RetryPolicy) CanRetry(n int) bool { return n < p.Attempts }

// Delay is the wait after failed attempt n (1-based). After attempt 1 it is
// exactly First; after attempt n > 1 it is First·2^(n-1) spread by ±20%
// according to rnd in [0, 1) (values outside are clamped), and never more
// than Cap. It is never negative; n < 1 is treated as 1.
func (p RetryPolicy) Delay(n int, rnd float64) time.Duration {
	first := max(p.First, 0)
	limit := p.Cap
	if limit <= 0 {
		limit = math.MaxInt64
	}
	if n <= 1 || first == 0 {
		return min(first, limit)
	}
	// base = first·2^(n-1), saturating at limit (at most 63 doublings since
	// first > 0, whatever n is).
	base := first
	for i := 1; i < n && base < limit; i++ {
		if base > limit/2 {
			base = limit
			break
		}
		base *= 2
	}
	switch {
	case rnd != rnd || rnd < 0: // NaN or negative
		rnd = 0
	case rnd > 1:
		rnd = 1
	}
	f := float64(base) * (1 - jitterFraction + 2*jitterFraction*rnd)
	if f >= float64(limit) {
		return limit
	}
	return max(time.Duration(f), 0)
}
