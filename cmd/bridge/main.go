// Command bridge long-polls a Zulip server's events API and publishes every
// event to NATS or Kafka. See the README and `bridge help`.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1 // the bridge ran and failed (bad credentials, broker gone for good...)
	exitConfig = 2 // invalid configuration or usage: nothing was started
)

func main() { os.Exit(run(os.Args[1:], os.Environ(), os.Stdout, os.Stderr)) }

const usage = `usage: bridge [command]

commands:
  run       run the bridge (default)
  demo      zero setup: simulator + embedded NATS + bridge, prints events as a consumer sees them
  check     validate the configuration, reach Zulip and the broker, report each step
  env       list every environment variable with its default and whether it is set
            (env --markdown: the configuration table of docs/configuration.md)
  probe     healthcheck: exit 0 if this host's bridge answers /readyz (probe live: /healthz) with 200
  version   print the version
`

// run is main without the process: arguments, environment and output are
// passed in, and the exit code returned, so tests drive it directly.
func run(args, environ []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	markdown := cmd == "env" && len(args) == 1 && args[0] == "--markdown"
	if len(args) > 0 && cmd != "probe" && !markdown {
		fmt.Fprintf(stderr, "bridge %s: unexpected arguments %q\n\n%s", cmd, args, usage)
		return exitConfig
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch cmd {
	case "run":
		return cmdRun(ctx, environ, stdout, stderr)
	case "demo":
		return cmdDemo(ctx, environ, stdout, stderr)
	case "check":
		return cmdCheck(ctx, environ, stdout, stderr)
	case "env":
		return cmdEnv(environ, stdout, markdown)
	case "probe":
		return cmdProbe(ctx, args, environ, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, versionString())
		return exitOK
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "bridge: unknown command %q\n\n%s", cmd, usage)
		return exitConfig
	}
}
