package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestLoggerDurations: the process logger writes durations as Go duration
// strings in JSON and text, not bare nanoseconds.
func TestLoggerDurations(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		var b bytes.Buffer
		newLogger(bridgeConfig{LogLevel: "info", LogFormat: format}, &b).Info("x", "retry_in", 402882171*time.Nanosecond)
		if !strings.Contains(b.String(), "402.882171ms") || strings.Contains(b.String(), "402882171") {
			t.Errorf("%s: %s", format, b.String())
		}
	}
}
