package consumer

import (
	"context"
	"errors"
	"fmt"

	"github.com/segmentio/kafka-go"
)

// ConsumeKafka reads the topics of rc (GroupTopics, or Topic) as a member
// of the consumer group rc.GroupID with a kafka-go Reader and hands each
// record to h, one at a time, until ctx is done; then it leaves the group
// and returns nil.
//
// A record's offset is committed only once h handled it (or it was a
// duplicate): with rc.CommitInterval zero, the default, each commit is
// synchronous. Kafka has no per-record negative acknowledgement, so a
// record h failed is handed to h again after opts.Backoff's delay, and
// nothing after it in its partition (so of its key) comes first; should
// the process stop meanwhile, the group delivers it again from the last
// committed offset, to this or another member.
//
// The bridge's topics are <prefix>.<type> (docs/names.md): list those the
// service needs, e.g. "zulip.message" and "zulip.bridge" (control
// events); kafka-go subscribes to names, not patterns. Set rc.Dialer for
// TLS or SASL.
func ConsumeKafka(ctx context.Context, rc kafka.ReaderConfig, h Handler, opts Options) error {
	if rc.GroupID == "" {
		return errors.New("consumer: kafka ReaderConfig.GroupID is required (example: \"my-service\")")
	}
	if rc.Topic == "" && len(rc.GroupTopics) == 0 {
		return errors.New("consumer: kafka ReaderConfig.GroupTopics is required (example: [\"zulip.message\", \"zulip.bridge\"])")
	}
	if len(rc.Brokers) == 0 {
		return errors.New("consumer: kafka ReaderConfig.Brokers is required (example: [\"kafka-0:9092\"])")
	}
	d, err := newDispatcher(h, opts)
	if err != nil {
		return err
	}
	r := kafka.NewReader(rc)
	defer r.Close()
	for {
		msg, err := r.FetchMessage(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("consumer: kafka group %s: %w", rc.GroupID, err)
		}
		hdrs := make(map[string]string, len(msg.Headers))
		for _, hd := range msg.Headers {
			if _, ok := hdrs[hd.Key]; !ok {
				hdrs[hd.Key] = string(hd.Value)
			}
		}
		meta := metadataFrom(hdrs)
		meta.KafkaTopic, meta.Partition, meta.Offset, meta.Key = msg.Topic, msg.Partition, msg.Offset, string(msg.Key)
		ack := func(ctx context.Context) error { return r.CommitMessages(ctx, msg) }
		for attempt := 1; ; attempt++ {
			meta.Attempt = attempt
			err := d.handle(ctx, meta, msg.Value, ack)
			if err == nil {
				break
			}
			delay := d.opts.Backoff(attempt)
			d.log.Info("consumer: handler failed; the record comes again", "topic", msg.Topic, "partition", msg.Partition, "offset", msg.Offset, "dedup_key", meta.DedupKey, "attempt", attempt, "delay", delay, "error", err)
			if !sleep(ctx, delay) {
				return nil // not committed: the group delivers it again
			}
		}
	}
}
