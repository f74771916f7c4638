// Package slots is the schedule grammar: cron and interval definitions,
// their validation messages, and the slot times they select.
//
// A slot is a whole second of UTC. Everything here is a pure function of its
// inputs (no clock reads), so every node of the cluster computes the same
// slots for the same schedule, which is what makes the delivery
// Idempotency-Key (schedule id + slot) stable across nodes and retries.
//
// The cron grammar is parsed by hand rather than with robfig/cron: the API
// contract needs exact validation messages, a year field, weekday 7 as Sunday
// and slots up to 2099, none of which robfig provides.
package slots
