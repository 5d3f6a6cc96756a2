// Package health serves the bridge's probes: /healthz (liveness: 503 only
// when the poll loop is wedged), /readyz (ready only while a queue is
// registered, the broker takes messages and the checkpoint store is
// writable) and /metrics. A probe never reveals a credential: it reports
// component names and their errors, which are built without secrets.
package health
