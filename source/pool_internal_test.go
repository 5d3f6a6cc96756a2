package source

import (
	"runtime"
	"testing"
)

// TestSmallResponsesReuseBuffers: reading one small response after
// another, as a long-poll at a steady rate does, reuses the read buffer
// instead of allocating streamBufSize for each (under the race detector
// sync.Pool drops a quarter of what it is given, hence the margin).
func TestSmallResponsesReuseBuffers(t *testing.T) {
	body := []byte(`{"result":"success","msg":"","events":[{"type":"message","id":1,"message":{"id":9,"content":"a message of some length, as a chat has"},"flags":[]}],"queue_id":"q"}`)
	read := func() {
		if _, err := parseEvents(body, -1); err != nil {
			t.Fatal(err)
		}
	}
	read()
	const n = 200
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		read()
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / n; per > streamBufSize/2 {
		t.Errorf("%d bytes allocated per small response, want under %d: the read buffer is not reused", per, streamBufSize/2)
	}
}
