package kafka

import (
	"fmt"
)

// MaxTopicLength is the longest topic name Kafka accepts.
const MaxTopicLength = 249

// ValidateTopic reports whether name is a topic Kafka accepts: 1 to 249
// characters from [A-Za-z0-9._-], and neither "." nor "..". The error wraps
// ErrInvalidTopic.
func ValidateTopic(name string) error {
	if problem := topicProblem(name); problem != "" {
		return fmt.Errorf("%w: %s", ErrInvalidTopic, problem)
	}
	return nil
}

func topicProblem(name string) string {
	switch {
	case name == "":
		return "empty"
	case name == "." || name == "..":
		return fmt.Sprintf("%q is reserved", name)
	case len(name) > MaxTopicLength:
		return fmt.Sprintf("%d characters, at most %d allowed", len(name), MaxTopicLength)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Sprintf("%q has %q at byte %d, only [A-Za-z0-9._-] allowed", name, c, i)
		}
	}
	return ""
}
