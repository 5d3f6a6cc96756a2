// Package tlsfiles loads the PEM files of a TLS client (a CA bundle, a
// client certificate and its key) the one way every connection of the
// bridge does: Zulip, NATS and Kafka. A file that cannot be read or holds
// no usable PEM is a configuration error naming the variable that names
// the file, so that each Config's Validate reports it and the bridge exits
// 2 before it starts anything.
package tlsfiles
