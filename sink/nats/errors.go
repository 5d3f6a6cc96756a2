package nats

import "errors"

var (
	// ErrClosed is returned by Publish after Close.
	ErrClosed = errors.New("nats sink: closed")
	// ErrNotConnected is returned by Publish and Ready while the connection
	// to NATS is down; nats.go keeps reconnecting in the background.
	ErrNotConnected = errors.New("nats sink: not connected")
	// ErrInvalidMessage marks a message NATS cannot carry (an empty subject,
	// a header that would break the protocol). Sending it again cannot help.
	ErrInvalidMessage = errors.New("nats sink: invalid message")
	// ErrNoURL is returned by New when the configuration names no server and
	// no in-process connection is given.
	ErrNoURL = errors.New("nats sink: no server URL")
	// ErrUnreachable is returned by New and Connect when no server of
	// BRIDGE_NATS_URL answered (nothing listens, the dial or the handshake
	// timed out): trying again later may succeed. A server that answers and
	// refuses (credentials, TLS) is not ErrUnreachable.
	ErrUnreachable = errors.New("nats sink: cannot reach")
	// ErrBadPosition is returned by PublishedSince for a position this sink
	// did not produce.
	ErrBadPosition = errors.New("nats sink: malformed position")
)
