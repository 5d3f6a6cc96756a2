package source

// ParseEvents is parseEvents, for the tests of package source_test, which
// may import packages that import this one (mapping).
func ParseEvents(body []byte, after int64) ([]Event, error) { return parseEvents(body, after) }

// ParseMessages is parseMessages, likewise.
func ParseMessages(body []byte, anchor int64) ([]Message, bool, error) {
	return parseMessages(body, anchor)
}
