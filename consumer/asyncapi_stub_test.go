package consumer_test

import "testing"

func validateRun(t *testing.T, run *mixedRun, broker string) {}
