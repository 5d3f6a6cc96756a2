// Package checkpointtest is the conformance suite every checkpoint.Store
// passes: round trip, overwrite, durability across reopening, "not found"
// only when nothing was saved, corrupt or foreign data reported as an error
// that names where it lies, Check, Close, and concurrent use. Each store's
// tests run it against the real backend, in process.
package checkpointtest
