package kafka

import (
	"fmt"
	"testing"

	"github.com/segmentio/kafka-go"
)

// balance puts a key where kafka-go's Hash balancer (and so Sarama's
// default partitioner) does, for every partition count; keyless records go
// round robin over all partitions.
func TestBalanceMatchesKafkaGoHash(t *testing.T) {
	s := &Sink{}
	for n := 1; n <= 64; n++ {
		parts := make([]int, n)
		for i := range parts {
			parts[i] = i
		}
		for k := range 500 {
			key := []byte(fmt.Sprintf("stream:%d:topic %d \\xff", k*7919, k))
			if k%5 == 0 {
				key = []byte{}
			}
			if got, want := s.balance(key, n), (&kafka.Hash{}).Balance(kafka.Message{Key: key}, parts...); got != want {
				t.Fatalf("balance(%q, %d) = %d, kafka.Hash says %d", key, n, got, want)
			}
		}
	}
	const n = 3
	seen := make(map[int]int)
	for range 3 * n {
		seen[s.balance(nil, n)]++
	}
	for p := range n {
		if seen[p] != 3 {
			t.Errorf("keyless records per partition: %v, want 3 each of %d", seen, n)
			break
		}
	}
}
