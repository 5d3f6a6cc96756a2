package main

import (
	"fmt"
	"io"

	"github.com/zulip-bridge/zulip-bridge/internal/envconfig"
)

// cmdEnv prints every variable with its default and whether it is set.
// Secrets are reported as set or unset, never shown. With markdown it
// prints the configuration table of docs/configuration.md instead, from
// the same tags, and reads nothing from the environment.
func cmdEnv(environ []string, stdout io.Writer, markdown bool) int {
	if markdown {
		fmt.Fprint(stdout, envconfig.Markdown(vars()))
		return exitOK
	}
	fmt.Fprint(stdout, envconfig.Describe(vars(), environ))
	if unknown := envconfig.Unknown(vars(), environ, "BRIDGE_", "ZULIP_"); len(unknown) > 0 {
		fmt.Fprintf(stdout, "\nset but not read by the bridge (typo?): %v\n", unknown)
	}
	return exitOK
}
