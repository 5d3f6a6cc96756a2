package kafka

import (
	"reflect"
	"testing"

	"github.com/zulip-bridge/zulip-bridge/internal/envconfig"
)

// TestConfigZeroValue: the zero value plus the brokers validates and means
// what the environment's defaults mean, as for every Config of the bridge.
func TestConfigZeroValue(t *testing.T) {
	var fromEnv Config
	if err := envconfig.Parse(&fromEnv, nil); err != nil {
		t.Fatal(err)
	}
	if got, want := (Config{}).withDefaults(), fromEnv.withDefaults(); !reflect.DeepEqual(got, want) {
		t.Errorf("zero value means %+v, the environment's defaults %+v", got, want)
	}
	// TopicPrefix has no envDefault: the bridge derives it from
	// BRIDGE_SUBJECT_PREFIX; every other default is on its tag.
	fromEnv.TopicPrefix = DefaultTopicPrefix
	if !reflect.DeepEqual(fromEnv.withDefaults(), fromEnv) {
		t.Errorf("the envDefault tags %+v are not the documented defaults %+v", fromEnv, fromEnv.withDefaults())
	}
	if err := (Config{Brokers: []string{"kafka-0:9092"}}).Validate(); err != nil {
		t.Errorf("Validate(zero value + brokers) = %v", err)
	}
}
