// Package natsembed runs a nats-server with JetStream inside the bridge
// process. It is the zero-setup default (BRIDGE_NATS_URL empty) and what
// `bridge demo` publishes to: storage lives in the bridge's state directory,
// so what was published survives a restart of the bridge.
package natsembed
