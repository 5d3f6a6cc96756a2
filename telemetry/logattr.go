package telemetry

import "log/slog"

// ReplaceLogAttr is the slog.HandlerOptions.ReplaceAttr of the bridge's
// logger, for the JSON and the text handler alike: a time.Duration is
// written as its String ("402.882171ms", "1m30s"), which an operator reads
// and time.ParseDuration parses back, instead of the JSON handler's bare
// nanosecond integer (402882171). Every other attribute is unchanged.
//
//	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: telemetry.ReplaceLogAttr}
func ReplaceLogAttr(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	return a
}
