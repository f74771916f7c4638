// Package executor is the leader-only part of a node that fires schedules:
// a heap of next slot times, slots claimed through raft before delivery,
// HTTP delivery with retries, and catch-up after a failover. The slot maths
// (cron and interval grammar) lives in executor/slots so the API can
// validate definitions and show next_run_at with the same code.
package executor
