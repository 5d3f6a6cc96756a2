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

configuration: environment variables only (no flags, no config file besides a
zuliprc); "bridge env" lists every variable, its default and whether it is set;
docs/configuration.md explains each. "bridge COMMAND --help" describes a command.
`

// commandUsage is each command's `bridge COMMAND --help`.
var commandUsage = map[string]string{
	"run":     "usage: bridge run\n\nrun the bridge until SIGTERM or SIGINT (the default command); configured by the\nenvironment: \"bridge env\" lists the variables.\n",
	"demo":    "usage: bridge demo\n\nzero setup: starts a Zulip simulator, an embedded NATS server and the bridge, and\nprints events as a consumer sees them, until Ctrl-C.\n",
	"check":   "usage: bridge check\n\nvalidate the configuration the environment gives, reach Zulip and the broker, and\nreport each step; exit 0 when every step passed.\n",
	"env":     "usage: bridge env [--markdown]\n\nlist every environment variable with its default and whether it is set (secrets\nonly as set); --markdown prints the configuration table of docs/configuration.md.\n",
	"probe":   "usage: bridge probe [ready|live]\n\nhealthcheck: exit 0 if the bridge on this host (BRIDGE_HTTP_ADDR) answers /readyz\n(ready, the default) or /healthz (live) with 200, else 1.\n",
	"version": "usage: bridge version\n\nprint the version.\n",
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "--help" || arg == "-help" || arg == "help"
}

// run is main without the process: arguments, environment and output are
// passed in, and the exit code returned, so tests drive it directly.
func run(args, environ []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	if u, ok := commandUsage[cmd]; ok && len(args) == 1 && isHelp(args[0]) {
		fmt.Fprint(stdout, u)
		return exitOK
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
