// Command bridge long-polls a Zulip server's events API and publishes every
// event to NATS or Kafka. See the README and `bridge help`.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/KimMachineGun/automemlimit/memlimit"

	"github.com/zulip-bridge/zulip-bridge/internal/envconfig"
)

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1 // the bridge ran and failed (bad credentials, broker gone for good...)
	exitConfig = 2 // invalid configuration or usage: nothing was started
)

func main() {
	args, environ := os.Args[1:], os.Environ()
	if len(args) == 0 || args[0] == "run" {
		// Only the long-running process: not `check`, `probe` and the
		// like, whose output must stay what they print.
		setMemoryLimit(environ, memlimit.FromCgroup, os.Stderr)
	}
	os.Exit(run(args, environ, os.Stdout, os.Stderr))
}

// memoryLimitRatio is the share of the cgroup memory limit given to the Go
// runtime as its soft limit (GOMEMLIMIT), the rest left for what the
// runtime does not count (stacks of threads in C, the kernel's page cache
// charged to the cgroup) and for headroom before the OOM killer.
const memoryLimitRatio = 0.9

// setMemoryLimit sets the Go runtime's soft memory limit to
// memoryLimitRatio of the memory limit cgroup reports (a Kubernetes
// resources.limits.memory), unless GOMEMLIMIT is set, which the runtime
// then already honours. No limit, or no cgroup (not Linux, cgroup not
// mounted), changes nothing. It logs the outcome once, to w, in the
// format BRIDGE_LOG_* asks for; it returns the limit it set, 0 for none.
// (GOMAXPROCS needs nothing: since Go 1.25 the runtime derives it from
// the cgroup CPU quota itself, and follows its changes.)
func setMemoryLimit(environ []string, cgroupLimit memlimit.Provider, w io.Writer) int64 {
	var bc bridgeConfig
	if err := envconfig.Parse(&bc, environ); err != nil {
		bc = bridgeConfig{} // run reports the error; log with the defaults meanwhile
	}
	if bc.LogLevel == "" {
		bc.LogLevel, bc.LogFormat = "info", "json"
	}
	log := newLogger(bc, w)
	if v := envconfig.ToMap(environ)["GOMEMLIMIT"]; v != "" {
		log.Info("memory limit from GOMEMLIMIT", "gomemlimit", v, "gomaxprocs", runtime.GOMAXPROCS(0))
		return 0
	}
	limit, err := cgroupLimit()
	switch {
	case errors.Is(err, memlimit.ErrNoLimit):
		log.Debug("no cgroup memory limit: GOMEMLIMIT left unset", "gomaxprocs", runtime.GOMAXPROCS(0))
		return 0
	case err != nil:
		log.Debug("cgroup memory limit not readable: GOMEMLIMIT left unset", "error", err, "gomaxprocs", runtime.GOMAXPROCS(0))
		return 0
	}
	set := int64(min(float64(limit)*memoryLimitRatio, float64(1<<62)))
	if set <= 0 {
		return 0
	}
	debug.SetMemoryLimit(set)
	log.Info("memory limit from the cgroup", slog.Int64("gomemlimit", set), slog.Uint64("cgroup_memory_limit", limit),
		"ratio", memoryLimitRatio, "gomaxprocs", runtime.GOMAXPROCS(0))
	return set
}

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
