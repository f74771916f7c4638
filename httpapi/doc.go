// Package httpapi serves the Seed Scheduler REST API on every node: the
// routes of the API contract (users, groups and tokens, schedules, failed
// tasks, webhooks, metrics, health and load-balancer probes) with the JSON
// bodies, error messages and cursor pagination that existing Seed clients
// expect. Callers authenticate with "Authorization: Token <key>" or HTTP
// Basic, checked against the replicated state before the method is
// dispatched. Any node answers reads from its own copy of the state and
// forwards writes to the current raft leader, so clients may talk to
// whichever node the load balancer picks.
package httpapi
