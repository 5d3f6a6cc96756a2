package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestHelpExits0 asks every command for help: usage on stdout, exit 0,
// nothing started; and `bridge --help` says configuration is by the
// environment and where it is listed.
func TestHelpExits0(t *testing.T) {
	for cmd := range commandUsage {
		for _, flag := range []string{"--help", "-h"} {
			var stdout, stderr bytes.Buffer
			if code := run([]string{cmd, flag}, nil, &stdout, &stderr); code != exitOK {
				t.Errorf("bridge %s %s: exit %d, want 0; stderr %q", cmd, flag, code, stderr.String())
			}
			if !strings.HasPrefix(stdout.String(), "usage: bridge "+cmd) {
				t.Errorf("bridge %s %s: stdout %q, want its usage", cmd, flag, stdout.String())
			}
		}
	}
	for _, flag := range []string{"--help", "-h", "help"} {
		var stdout, stderr bytes.Buffer
		if code := run([]string{flag}, nil, &stdout, &stderr); code != exitOK {
			t.Errorf("bridge %s: exit %d", flag, code)
		}
		for _, want := range []string{"environment variables", `"bridge env"`, "docs/configuration.md"} {
			if !strings.Contains(stdout.String(), want) {
				t.Errorf("bridge %s does not say %q:\n%s", flag, want, stdout.String())
			}
		}
	}
}
