// Package faultproxy is a TCP proxy for tests that puts network faults
// between a client and its server: it listens on 127.0.0.1 (an OS-chosen
// port), forwards every connection to one upstream address, and injects
// the faults a test switches on and off while traffic flows (Set): resets,
// blackholes both ways or one way, stalls, added latency, and responses
// cut after a number of bytes. It counts connections and bytes (Stats) so
// that a test waits on what the proxy saw rather than on time.
//
// A blackhole drops bytes, so a connection that lost some has a gap in
// its byte stream and cannot carry on: ending the blackhole resets the
// connections it touched, as a TCP retransmission or keepalive timeout
// would end them in production. A stall holds bytes instead and delivers
// them, in order, once it ends.
package faultproxy
