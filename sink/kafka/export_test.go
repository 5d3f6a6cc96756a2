package kafka

// FloorSum is the sum of the sink's partition floors. On a cluster the sink
// alone wrote to, with no Position call (whose discovery reads the brokers'
// end offsets), it is the number of records whose produce request was
// answered: what the sink knows is confirmed, which a broker's count of
// stored records runs ahead of while an answer is on its way.
func FloorSum(s *Sink) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, off := range s.floors {
		n += off
	}
	return n
}
