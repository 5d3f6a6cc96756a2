// Package leader elects one active replica of the bridge among several,
// and gives it a fencing token: a Term that says, at each action, whether
// this replica may still act as the leader.
//
// Two backends implement Elector: a Kubernetes Lease (NewLease, written as
// client-go's leaderelection writes one, through a small client of its own
// in kube.go: client-go would add about 20 MiB to every bridge's resident
// memory) and a key of a NATS JetStream key-value bucket (NewNATSKV). Config holds the
// BRIDGE_LEADER_* variables; cmd/bridge runs a pipeline per term.
//
// # Terms
//
// Every acquisition of the lease starts a Term. A term is valid until
// RenewDeadline after the start of the last write of the leader that
// acquired or renewed the lease, by the leader's monotonic clock, and never
// valid again once it is not (a renewal after that deadline does not revive
// it: a standby may have been entitled to take over in between). Its
// context, the one Elector.Run gives to onLead, is cancelled as soon as the
// term ends. A caller fences an action by calling Term.Check just before it
// and by recording Term.Number with what it writes.
//
// A standby takes over only once the record has not changed for
// LeaseDuration since it first saw it, by its own monotonic clock (or once
// the key is gone, for NATS KV). Since it saw the record after the
// leader's last write started, the leader's term ended RenewDeadline after
// that start, at least LeaseDuration − RenewDeadline (5s by default)
// before any standby can acquire. That margin absorbs the difference in
// the rate of the two clocks and the time between a Check and the action
// it guards; it does not cover a process that is paused between its Check
// and its action for longer than the margin. Hence the fencing a store
// applies with the term number (a write of an older term refused) is what
// makes that case safe, where the store can compare and set.
//
// Each candidacy writes the configured identity with a random suffix
// (identity_1a2b3c4d), so that every acquisition, even by a restarted
// replica of the same name, is a change of holder: the restarted process
// waits for the lease of its previous life to run out unless that life
// released it.
//
// # Kubernetes Lease
//
// The term number is the Lease's spec.leaseTransitions + 1 as written by
// the acquiring update: it grows by 1 each time the holder changes (as
// client-go counts it), and
// since every acquisition is by a new holder, each term's number is larger
// than the last. The first holder of a new Lease has term 1. The number is
// reset if the Lease object is deleted, or if another program writes
// leaseTransitions: neither may happen while fencing relies on it. (The
// resourceVersion was not chosen: Kubernetes documents it as opaque.)
//
// Writes are compare-and-set on the Lease's resourceVersion, so of two
// standbys one acquires. LeaseDuration must be whole seconds
// (spec.leaseDurationSeconds). A term is renewed from the start of each
// successful write, every RetryPeriod; a renewal whose answer was lost is
// recognised by reading the Lease back. The leader keeps renewing while
// onLead finishes, and releases the Lease (holder emptied, duration one
// second) once onLead has returned, so that a standby takes over at its
// next try. A release is never written over a Lease another replica
// holds. The backend reads the API server's address and credentials from
// the pod's service account or a kubeconfig file (a token, a token file
// or a client certificate; no exec plugins).
//
// # NATS KV
//
// The key LeaseName in the bucket Bucket (created with history 1 and a TTL
// of LeaseDuration; an existing bucket with another TTL is refused) holds
// {"holder": id, "term": n}. A candidate creates the key when it is
// missing (kv.Create: fails if another was first) or, when the revision it
// saw has not changed for LeaseDuration, overwrites it with kv.Update at
// that revision. The term number is the KV revision of that acquiring
// write: the bucket's stream sequence, which only grows (also across
// expiries and deletes, not across deleting the bucket). The leader renews
// every RetryPeriod with kv.Update at the revision it last wrote; a
// renewal whose answer was lost is recognised by reading the key back. On
// release the leader deletes the key at its last revision.
//
// The TTL expires the key by the server's clock LeaseDuration after the
// leader's last write reached it, after the leader's term ended by the
// margin above; a server clock stepped forward by more than the margin
// could expire it early, the one point where the NATS backend trusts a
// clock other than the candidates' monotonic ones.
//
// # What is not guaranteed
//
//   - No backend stops a process that ignores its term: the guarantee is
//     that Check fails, and the term's context is cancelled, before
//     another replica can acquire.
//   - A store that cannot compare and set (a Kafka topic, a file) cannot
//     refuse a late write of an older term; the margin alone protects it.
//   - Liveness needs the server: a leader that cannot reach it stops
//     leading after RenewDeadline even if no other replica can take over.
package leader
