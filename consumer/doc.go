// Package consumer reads what zulip-bridge publishes, for the services
// downstream of it: typed Zulip events decoded from the payload (with the
// raw JSON always at hand), the metadata the bridge puts in the headers,
// idempotency on Zulip-Dedup-Key, callbacks for the bridge's control events,
// and one subscription helper per broker:
//
//   - [ConsumeJetStream]: a durable JetStream pull consumer (nats.go's
//     jetstream package): filter subjects, explicit acks, redelivery with
//     back-off when the handler fails.
//   - [ConsumeKafka]: a kafka-go consumer group ([kafka.Reader] with
//     GroupID): an offset is committed only after the handler succeeded.
//
// Both call one [Handler] with a [Delivery] (the event, its [Metadata] and
// an acknowledgement), one message at a time, so events of one key (one
// conversation, docs/names.md) arrive in the order the broker holds them,
// across redeliveries.
//
// The bridge stores each event once in JetStream or Kafka; broker consumers
// are at-least-once as always (an acknowledgement lost, a restart before
// a commit). [Options.WindowSize] keeps the dedup keys of the last events
// handled in memory, and [Options.Store] is the hook for a durable
// idempotency store that survives restarts.
//
// The bridge's control events (docs/delivery.md) go to their own callbacks
// when set: [Options.OnResync] when a Zulip queue was lost (what could not be
// recovered), [Options.OnState] for the initial state of a new queue,
// [Options.OnInvalid] for an event the bridge could not publish as is.
//
// The package imports only the standard library, nats.go and kafka-go, so a
// service depends on nothing else of the bridge. docs/consuming.md has the
// whole picture; docs/asyncapi.yaml describes every channel, header and
// payload for services in other languages.
package consumer
