package kafka

import "errors"

// Sentinel errors, for callers to tell apart with errors.Is.
var (
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("kafka sink closed")
	// ErrUnknownTopic means a topic does not exist and the sink is not
	// configured to create it (BRIDGE_KAFKA_CREATE_TOPICS=false).
	ErrUnknownTopic = errors.New("kafka topic does not exist")
	// ErrTopicNotOwned means a message names a topic outside
	// BRIDGE_KAFKA_TOPIC_PREFIX. The sink refuses it because a restarted
	// bridge reads back only the topics it owns.
	ErrTopicNotOwned = errors.New("kafka topic outside the bridge's prefix")
	// ErrInvalidTopic means a message names a topic Kafka does not accept.
	// Publishing it again cannot succeed.
	ErrInvalidTopic = errors.New("invalid kafka topic name")
	// ErrMessageTooLarge means a message is larger than
	// BRIDGE_KAFKA_BATCH_BYTES. Publishing it again cannot succeed.
	ErrMessageTooLarge = errors.New("message larger than the kafka batch limit")
	// ErrBadPosition means a position given to PublishedSince was not made
	// by Position.
	ErrBadPosition = errors.New("invalid kafka sink position")
)
