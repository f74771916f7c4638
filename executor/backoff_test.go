package executor

import (
	"math"
	"testing"
	"time"
)

func TestRetryDelaySequence(t *testing.T) {
	bases := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second}
	for _, rnd := range []float64{0, 0.25, 0.5, 0.75, 0.999999} {
		for i, base := range bases {
			n := i + 1
			got := RetryDelay(n, rnd)
			if n == 1 {
				if got != 5*time.Second {
					t.Errorf("RetryDelay(1, %v) = %v, want exactly 5s", rnd, got)
				}
				continue
			}
			lo, hi := time.Duration(float64(base)*0.8), time.Duration(float64(base)*1.2)
			if got < lo || got >= hi {
				t.Errorf("RetryDelay(%d, %v) = %v, want in [%v, %v)", n, rnd, got, lo, hi)
			}
		}
	}
	// The middle of the band is the unjittered value.
	for i, base := range bases {
		if got := RetryDelay(i+1, 0.5); got != base {
			t.Errorf("RetryDelay(%d, 0.5) = %v, want %v", i+1, got, base)
		}
	}
	// The band's edges.
	if got, want := RetryDelay(3, 0), 16*time.Second; got != want {
		t.Errorf("RetryDelay(3, 0) = %v, want %v", got, want)
	}
	if got, want := RetryDelay(3, 0.999999), 24*time.Second; got < want-time.Millisecond || got >= want {
		t.Errorf("RetryDelay(3, ~1) = %v, want just under %v", got, want)
	}
}

func TestRetryDelayCapped(t *testing.T) {
	for _, n := range []int{7, 8, 10, 50, 63, 64, 100, 1 << 20, math.MaxInt} {
		for _, rnd := range []float64{0, 0.5, 0.999999} {
			got := RetryDelay(n, rnd)
			if got > 5*time.Minute || got < 4*time.Minute {
				t.Errorf("RetryDelay(%d, %v) = %v, want in [4m, 5m]", n, rnd, got)
			}
		}
	}
	if got := RetryDelay(100, 0.999); got != 5*time.Minute {
		t.Errorf("RetryDelay(100, 0.999) = %v, want the 5m cap", got)
	}
}

func TestRetryDelayNeverNegative(t *testing.T) {
	for _, n := range []int{math.MinInt, -5, 0, 1, 2, 5, 70, math.MaxInt} {
		for _, rnd := range []float64{math.NaN(), math.Inf(-1), -1, 0, 0.5, 1, 2, math.Inf(1)} {
			if got := RetryDelay(n, rnd); got < 0 || got > 5*time.Minute*6/5 {
				t.Errorf("RetryDelay(%d, %v) = %v, want in [0, 6m]", n, rnd, got)
			}
		}
	}
	if got := RetryDelay(0, 0.3); got != 5*time.Second {
		t.Errorf("RetryDelay(0, 0.3) = %v, want n<1 treated as 1 (5s)", got)
	}
}

func TestRetryDelayMonotoneInRnd(t *testing.T) {
	for n := 2; n < MaxAttempts; n++ {
		prev := time.Duration(0)
		for i := 0; i < 100; i++ {
			got := RetryDelay(n, float64(i)/100)
			if got < prev {
				t.Fatalf("RetryDelay(%d, %v) = %v < %v for a smaller rnd", n, float64(i)/100, got, prev)
			}
			prev = got
		}
	}
}

func TestRetryPolicyScaled(t *testing.T) {
	p := RetryPolicy{First: 5 * time.Millisecond, Cap: 30 * time.Millisecond, Attempts: 4}
	want := []time.Duration{5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond, 30 * time.Millisecond, 30 * time.Millisecond}
	for i, w := range want {
		if got := p.Delay(i+1, 0.5); got != w {
			t.Errorf("Delay(%d, 0.5) = %v, want %v", i+1, got, w)
		}
	}
	for n, want := range map[int]bool{1: true, 3: true, 4: false, 5: false} {
		if got := p.CanRetry(n); got != want {
			t.Errorf("CanRetry(%d) = %v, want %v", n, got, want)
		}
	}
	d := DefaultRetryPolicy()
	if d.First != 5*time.Second || d.Cap != 5*time.Minute || d.Attempts != MaxAttempts || MaxAttempts != 6 {
		t.Errorf("DefaultRetryPolicy() = %+v, MaxAttempts = %d", d, MaxAttempts)
	}
	if !d.CanRetry(5) || d.CanRetry(6) {
		t.Errorf("default policy: CanRetry(5) = %v, CanRetry(6) = %v; want true, false", d.CanRetry(5), d.CanRetry(6))
	}
}

func TestRetryPolicyDegenerate(t *testing.T) {
	if got := (RetryPolicy{}).Delay(1<<30, 0.7); got != 0 {
		t.Errorf("zero policy Delay = %v, want 0", got)
	}
	if got := (RetryPolicy{First: -time.Second, Cap: time.Minute}).Delay(3, 0.5); got != 0 {
		t.Errorf("negative First Delay = %v, want 0", got)
	}
	// No cap: saturates instead of overflowing.
	p := RetryPolicy{First: time.Second}
	if got := p.Delay(10, 0.5); got != 512*time.Second {
		t.Errorf("uncapped Delay(10, 0.5) = %v, want 512s", got)
	}
	if got := p.Delay(math.MaxInt, 0.999); got <= 0 {
		t.Errorf("uncapped Delay(MaxInt) = %v, want a large positive duration", got)
	}
}
