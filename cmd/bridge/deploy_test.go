package main

// Tests of the deployment files at the repository root: docker-compose.yml
// (loaded with compose-go, as `docker compose` loads it), the Dockerfile
// (parsed with BuildKit's parser, as `docker build` parses it, and its
// `go build` run here) and .dockerignore. There is no Docker daemon: what
// can be checked without one is checked against the bridge itself (its
// variables, its subcommands, its version stamping).

import (
	"bytes"
	"cmp"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"errors"
	goversion "go/version"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"

	"github.com/zulip-bridge/zulip-bridge/internal/envconfig"
)

// repoRoot is the repository root, where the deployment files live.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root: %v", err)
	}
	return root
}

// knownBridgeVars is every variable `bridge env` lists.
func knownBridgeVars() map[string]envconfig.Var {
	m := map[string]envconfig.Var{}
	for _, v := range vars() {
		m[v.Key] = v
	}
	return m
}

// knownSimulatorVars is every variable cmd/zulipsim reads, from the env
// tags of its config struct (a main package cannot be imported).
func knownSimulatorVars(t *testing.T, root string) map[string]bool {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(root, "cmd", "zulipsim", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, sm := range regexp.MustCompile(`env:"(ZULIPSIM_[A-Z_]+)"`).FindAllSubmatch(src, -1) {
		m[string(sm[1])] = true
	}
	if !m["ZULIPSIM_ADDR"] {
		t.Fatalf("found no ZULIPSIM_ADDR among the simulator's variables %v", m)
	}
	return m
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// checkBridgeHealthcheck checks that a healthcheck (exec form) runs a real
// `bridge` subcommand that probes the address the bridge listens on:
// the command run here against an address nobody listens on must fail as
// a probe does (exit 1), not as a usage error (exit 2).
func checkBridgeHealthcheck(t *testing.T, where string, test []string, httpAddr string) {
	t.Helper()
	if len(test) < 3 || test[0] != "CMD" || test[1] != "/bridge" {
		t.Errorf("%s: healthcheck %q, want [CMD /bridge probe ...]: the image has no shell", where, test)
		return
	}
	if test[2] != "probe" {
		t.Errorf("%s: healthcheck runs `bridge %s`, want `bridge probe`", where, test[2])
	}
	if _, err := probeURL(httpAddr, "/readyz"); err != nil {
		t.Errorf("%s: the probe cannot reach BRIDGE_HTTP_ADDR=%s: %v", where, httpAddr, err)
	}
	var out bytes.Buffer
	if code := run(test[2:], []string{"BRIDGE_HTTP_ADDR=" + closedAddr(t)}, &out, &out); code != exitFailed {
		t.Errorf("%s: healthcheck `bridge %s` against nothing: exit %d, want %d:\n%s", where, strings.Join(test[2:], " "), code, exitFailed, out.String())
	}
}

func loadCompose(t *testing.T, root string) *types.Project {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// No environment: the file must not depend on the user's shell.
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root), cli.WithEnv(nil), cli.WithConsistency(true))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(ctx)
	if err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return p
}

// serviceEnv is a service's variable, "" when unset.
func serviceEnv(s types.ServiceConfig, key string) string {
	if v := s.Environment[key]; v != nil {
		return *v
	}
	return ""
}

func TestComposeFile(t *testing.T) {
	root := repoRoot(t)
	p := loadCompose(t, root)
	known := knownBridgeVars()
	simVars := knownSimulatorVars(t, root)
	stages := dockerfileStages(t, root)

	want := []string{"bridge-kafka", "bridge-nats", "kafka", "nats", "zulipsim"}
	if got := p.ServiceNames(); !slices.Equal(sortedCopy(got), want) {
		t.Fatalf("services %v, want %v", got, want)
	}
	key, err := os.ReadFile(filepath.Join(root, "compose", "zulip-api-key"))
	if err != nil {
		t.Fatal(err)
	}
	apiKey := strings.TrimSpace(string(key))
	if apiKey == "" {
		t.Fatal("compose/zulip-api-key is empty")
	}

	for name, s := range p.Services {
		// Healthchecks, in exec form (distroless has no shell), and start
		// order by health.
		if hc := s.HealthCheck; hc == nil || hc.Disable || len(hc.Test) < 2 || hc.Test[0] != "CMD" {
			t.Errorf("%s: healthcheck %+v, want an exec-form test [CMD ...]", name, hc)
		}
		for dep, d := range s.DependsOn {
			if d.Condition != types.ServiceConditionHealthy {
				t.Errorf("%s: depends_on %s with condition %q, want %s", name, dep, d.Condition, types.ServiceConditionHealthy)
			}
			if _, ok := p.Services[dep]; !ok {
				t.Errorf("%s: depends on unknown service %s", name, dep)
			}
		}
		// Images: pinned, or built from a stage that exists.
		switch {
		case s.Build != nil:
			target := s.Build.Target
			if target == "" {
				target = stages[len(stages)-1].Name
			}
			if !slices.ContainsFunc(stages, func(st instructions.Stage) bool { return st.Name == target }) {
				t.Errorf("%s: build target %q is no stage of the Dockerfile", name, target)
			}
		case !pinnedImage(s.Image):
			t.Errorf("%s: image %q is not pinned to a version tag", name, s.Image)
		}
		// Published only on the loopback interface.
		for _, port := range s.Ports {
			if port.HostIP != "127.0.0.1" {
				t.Errorf("%s: port %d published on %q, want 127.0.0.1 only", name, port.Target, port.HostIP)
			}
		}
		// Environment: names the programs read, secrets only as files.
		for k, v := range s.Environment {
			val := ""
			if v != nil {
				val = *v
			}
			switch {
			case strings.HasPrefix(k, "BRIDGE_") || strings.HasPrefix(k, "ZULIP_"):
				if _, ok := known[k]; !ok {
					t.Errorf("%s: %s is not a variable `bridge env` knows", name, k)
				}
			case strings.HasPrefix(k, "ZULIPSIM_"):
				if !simVars[k] {
					t.Errorf("%s: %s is not a variable zulipsim reads", name, k)
				}
			}
			if envconfig.IsSecretName(k) {
				secret, ok := strings.CutPrefix(val, "/run/secrets/")
				if !strings.HasSuffix(k, "_FILE") || !ok {
					t.Errorf("%s: %s is a credential given as a plain value; give it as a compose secret and %s_FILE=/run/secrets/<name>", name, k, strings.TrimSuffix(k, "_FILE"))
					continue
				}
				if !slices.ContainsFunc(s.Secrets, func(r types.ServiceSecretConfig) bool {
					return r.Source == secret && (r.Target == "" || r.Target == val || r.Target == secret)
				}) {
					t.Errorf("%s: %s=%s but the service mounts no secret %q there", name, k, val, secret)
				}
			}
			if strings.Contains(val, apiKey) && k != "ZULIPSIM_BOT" {
				t.Errorf("%s: %s holds the API key in plain text", name, k)
			}
		}
		for _, r := range s.Secrets {
			def, ok := p.Secrets[r.Source]
			if !ok || def.File == "" {
				t.Errorf("%s: secret %s is not defined from a file", name, r.Source)
				continue
			}
			if b, err := os.ReadFile(def.File); err != nil || len(bytes.TrimSpace(b)) == 0 {
				t.Errorf("%s: secret %s: file %s: %v (empty: %v)", name, r.Source, def.File, err, len(b) == 0)
			}
		}
	}

	sim := p.Services["zulipsim"]
	if sim.Build == nil || sim.Build.Target != "zulipsim" {
		t.Errorf("zulipsim: build %+v, want the Dockerfile's zulipsim target", sim.Build)
	}
	if got := sim.HealthCheck.Test; !slices.Equal(got, types.HealthCheckTest{"CMD", "/zulipsim", "-probe"}) {
		t.Errorf("zulipsim: healthcheck %q, want [CMD /zulipsim -probe]", got)
	}
	simHost, simPort, err := net.SplitHostPort(serviceEnv(sim, "ZULIPSIM_ADDR"))
	if err != nil || (simHost != "0.0.0.0" && simHost != "") {
		t.Errorf("zulipsim: ZULIPSIM_ADDR=%q, want all interfaces so that the bridges reach it", serviceEnv(sim, "ZULIPSIM_ADDR"))
	}
	if rate, err := strconv.ParseFloat(serviceEnv(sim, "ZULIPSIM_RATE"), 64); err != nil || rate <= 0 {
		t.Errorf("zulipsim: ZULIPSIM_RATE=%q: the simulator must generate events", serviceEnv(sim, "ZULIPSIM_RATE"))
	}

	nats := p.Services["nats"]
	if cmd := strings.Join(nats.Command, " "); !strings.Contains(cmd, "-js") || !strings.Contains(cmd, "-sd /data") {
		t.Errorf("nats: command %q, want JetStream (-js) stored in /data (-sd /data)", cmd)
	}
	if !slices.ContainsFunc(nats.Volumes, func(v types.ServiceVolumeConfig) bool { return v.Type == types.VolumeTypeVolume && v.Target == "/data" }) {
		t.Errorf("nats: no named volume on /data")
	}
	kafka := p.Services["kafka"]
	advertised := map[string]string{} // listener name -> host:port
	for _, l := range strings.Split(serviceEnv(kafka, "KAFKA_ADVERTISED_LISTENERS"), ",") {
		if u, err := url.Parse(l); err == nil {
			advertised[u.Scheme] = u.Host
		}
	}
	for _, port := range kafka.Ports {
		if hp := net.JoinHostPort(port.HostIP, port.Published); !slices.Contains(mapValues(advertised), hp) {
			t.Errorf("kafka: published %s is not an advertised listener %v: clients on the host would be sent elsewhere", hp, advertised)
		}
	}

	sinks := map[string]string{"bridge-nats": sinkNATS, "bridge-kafka": sinkKafka}
	stateVolumes := map[string]string{}
	for name, sink := range sinks {
		s := p.Services[name]
		if s.Build == nil || s.Build.Target != "" && s.Build.Target != stages[len(stages)-1].Name {
			t.Errorf("%s: build %+v, want the Dockerfile's default target", name, s.Build)
		}
		if got := serviceEnv(s, "BRIDGE_SINK"); got != sink {
			t.Errorf("%s: BRIDGE_SINK=%q, want %s", name, got, sink)
		}
		// The same environment, given to the bridge, is a valid configuration.
		var environ []string
		for k, v := range s.Environment {
			if v != nil {
				environ = append(environ, k+"="+*v)
			}
		}
		environ = append(environ, "ZULIP_API_KEY_FILE="+p.Secrets["zulip_api_key"].File)
		if _, err := loadConfig(environ); err != nil {
			t.Errorf("%s: the bridge rejects the environment: %v", name, err)
		}
		site, err := url.Parse(serviceEnv(s, "ZULIP_SITE"))
		if err != nil || site.Hostname() != "zulipsim" || site.Port() != simPort {
			t.Errorf("%s: ZULIP_SITE=%q, want the zulipsim service on port %s", name, serviceEnv(s, "ZULIP_SITE"), simPort)
		}
		if !strings.Contains(serviceEnv(sim, "ZULIPSIM_BOT"), serviceEnv(s, "ZULIP_EMAIL")+":"+apiKey) {
			t.Errorf("%s: the simulator does not accept %s with the key of compose/zulip-api-key", name, serviceEnv(s, "ZULIP_EMAIL"))
		}
		if _, ok := s.DependsOn["zulipsim"]; !ok {
			t.Errorf("%s: does not wait for zulipsim", name)
		}
		switch sink {
		case sinkNATS:
			u, err := url.Parse(serviceEnv(s, "BRIDGE_NATS_URL"))
			if _, ok := s.DependsOn[u.Hostname()]; err != nil || u.Hostname() != "nats" || !ok || u.Port() != "4222" {
				t.Errorf("%s: BRIDGE_NATS_URL=%q, want the nats service, waited for", name, serviceEnv(s, "BRIDGE_NATS_URL"))
			}
		case sinkKafka:
			brokers := serviceEnv(s, "BRIDGE_KAFKA_BROKERS")
			if _, ok := s.DependsOn["kafka"]; !ok || brokers != advertised["plaintext"] && brokers != advertised["PLAINTEXT"] {
				t.Errorf("%s: BRIDGE_KAFKA_BROKERS=%q, want kafka's in-network listener %v, waited for", name, brokers, advertised)
			}
			if serviceEnv(s, "BRIDGE_KAFKA_CREATE_TOPICS") != "true" {
				t.Errorf("%s: BRIDGE_KAFKA_CREATE_TOPICS is not true", name)
			}
		}
		// State on a named volume of its own, where BRIDGE_STATE_DIR says.
		dir := serviceEnv(s, "BRIDGE_STATE_DIR")
		i := slices.IndexFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool { return v.Target == dir })
		if dir == "" || i < 0 || s.Volumes[i].Type != types.VolumeTypeVolume {
			t.Errorf("%s: no named volume on BRIDGE_STATE_DIR=%q (volumes %+v)", name, dir, s.Volumes)
		} else {
			vol := s.Volumes[i].Source
			if _, ok := p.Volumes[vol]; !ok {
				t.Errorf("%s: volume %s is not declared", name, vol)
			}
			if other, dup := stateVolumes[vol]; dup {
				t.Errorf("%s and %s share the state volume %s", name, other, vol)
			}
			stateVolumes[vol] = name
		}
		// The healthcheck probes the port the bridge listens on, which is
		// the one published.
		httpAddr := serviceEnv(s, "BRIDGE_HTTP_ADDR")
		checkBridgeHealthcheck(t, name, s.HealthCheck.Test, httpAddr)
		_, httpPort, _ := net.SplitHostPort(httpAddr)
		if !slices.ContainsFunc(s.Ports, func(port types.ServicePortConfig) bool { return strconv.Itoa(int(port.Target)) == httpPort }) {
			t.Errorf("%s: BRIDGE_HTTP_ADDR port %s is not published (ports %+v)", name, httpPort, s.Ports)
		}
		// Stopping waits for the shutdown the bridge promises.
		shutdown, err := time.ParseDuration(cmp.Or(serviceEnv(s, "BRIDGE_SHUTDOWN_TIMEOUT"), known["BRIDGE_SHUTDOWN_TIMEOUT"].Default))
		if err != nil {
			t.Fatal(err)
		}
		if s.StopGracePeriod == nil || time.Duration(*s.StopGracePeriod) <= shutdown {
			t.Errorf("%s: stop_grace_period %v, want above BRIDGE_SHUTDOWN_TIMEOUT (%s)", name, s.StopGracePeriod, shutdown)
		}
	}
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// pinnedImage reports whether ref names a version tag (or a digest), not
// latest nor no tag at all.
func pinnedImage(ref string) bool {
	if strings.Contains(ref, "@sha256:") {
		return true
	}
	i := strings.LastIndex(ref, ":")
	if i < 0 || strings.Contains(ref[i:], "/") {
		return false
	}
	tag := ref[i+1:]
	return tag != "latest" && regexp.MustCompile(`^v?\d+\.\d+`).MatchString(tag)
}

// dockerfileStages parses the Dockerfile as BuildKit does, failing on any
// warning of its linter.
func dockerfileStages(t *testing.T, root string) []instructions.Stage {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	for _, w := range res.Warnings {
		t.Errorf("Dockerfile: %s", w.Short)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, _, _, msg string, loc []parser.Range) {
		t.Errorf("Dockerfile:%v: %s: %s", loc, rule, msg)
	}})
	stages, _, err := instructions.Parse(res.AST, lint)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	if len(stages) == 0 {
		t.Fatal("Dockerfile: no stage")
	}
	return stages
}

// stageConfig is what a final stage sets for the container.
type stageConfig struct {
	entrypoint, cmd []string
	user            string
	env             map[string]string
	labels          map[string]string
	args            map[string]bool
	expose          []string
	healthcheck     []string
	copies          []*instructions.CopyCommand
}

func stageImage(st instructions.Stage) stageConfig {
	im := stageConfig{env: map[string]string{}, labels: map[string]string{}, args: map[string]bool{}}
	for _, c := range st.Commands {
		switch c := c.(type) {
		case *instructions.EntrypointCommand:
			im.entrypoint = execForm(c.ShellDependantCmdLine)
		case *instructions.CmdCommand:
			im.cmd = execForm(c.ShellDependantCmdLine)
		case *instructions.UserCommand:
			im.user = c.User
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				// As BuildKit does: quotes removed, variables expanded.
				var env []string
				for k, v := range im.env {
					env = append(env, k+"="+v)
				}
				v, _, err := shell.NewLex('\\').ProcessWord(kv.Value, shell.EnvsFromSlice(env))
				if err != nil {
					v = kv.Value
				}
				im.env[kv.Key] = v
			}
		case *instructions.LabelCommand:
			for _, kv := range c.Labels {
				im.labels[kv.Key] = kv.Value
			}
		case *instructions.ArgCommand:
			for _, a := range c.Args {
				im.args[a.Key] = true
			}
		case *instructions.ExposeCommand:
			im.expose = append(im.expose, c.Ports...)
		case *instructions.HealthCheckCommand:
			im.healthcheck = c.Health.Test
		case *instructions.CopyCommand:
			im.copies = append(im.copies, c)
		}
	}
	return im
}

// execForm is the command line of a JSON-form instruction; nil for the
// shell form, which needs a shell the image does not have.
func execForm(c instructions.ShellDependantCmdLine) []string {
	if c.PrependShell {
		return nil
	}
	return c.CmdLine
}

func TestDockerfile(t *testing.T) {
	root := repoRoot(t)
	stages := dockerfileStages(t, root)
	byName := map[string]instructions.Stage{}
	for _, st := range stages {
		byName[st.Name] = st
	}
	known := knownBridgeVars()
	simVars := knownSimulatorVars(t, root)

	// The default target (the last stage) is the bridge.
	if last := stages[len(stages)-1].Name; last != "bridge" {
		t.Errorf("the last stage, built by default, is %q, want bridge", last)
	}
	build, ok := byName["build"]
	if !ok {
		t.Fatal("no build stage")
	}
	goVersion, _ := strings.CutPrefix(build.BaseName, "golang:")
	if mod := goModVersion(t, root); !strings.HasPrefix(build.BaseName, "golang:") || goversion.Compare("go"+goVersion, "go"+mod) < 0 {
		t.Errorf("build stage FROM %s, want a golang image of at least go.mod's go %s", build.BaseName, mod)
	}
	checkLayerOrder(t, build)

	for _, tc := range []struct{ stage, binary string }{{"bridge", "/bridge"}, {"zulipsim", "/zulipsim"}} {
		st, ok := byName[tc.stage]
		if !ok {
			t.Errorf("no %s stage", tc.stage)
			continue
		}
		im := stageImage(st)
		if !strings.HasPrefix(st.BaseName, "gcr.io/distroless/static") || !strings.Contains(st.BaseName, ":nonroot") {
			t.Errorf("%s: FROM %s, want gcr.io/distroless/static...:nonroot", tc.stage, st.BaseName)
		}
		uid, gid, ok := strings.Cut(im.user, ":")
		if n, err := strconv.Atoi(uid); err != nil || n == 0 {
			t.Errorf("%s: USER %q, want a numeric non-root uid (Kubernetes runAsNonRoot checks it)", tc.stage, im.user)
		} else if _, err := strconv.Atoi(gid); !ok || err != nil {
			t.Errorf("%s: USER %q, want uid:gid, both numeric", tc.stage, im.user)
		}
		if !slices.Equal(im.entrypoint, []string{tc.binary}) {
			t.Errorf("%s: ENTRYPOINT %q, want [%q]", tc.stage, im.entrypoint, tc.binary)
		}
		for _, l := range []string{"title", "source", "version", "revision", "licenses"} {
			if im.labels["org.opencontainers.image."+l] == "" {
				t.Errorf("%s: no label org.opencontainers.image.%s", tc.stage, l)
			}
		}
		// The version and revision labels are the build arguments, as
		// BuildKit expands them.
		for label, arg := range map[string]string{"version": "VERSION", "revision": "REVISION"} {
			raw := im.labels["org.opencontainers.image."+label]
			got, _, err := shell.NewLex('\\').ProcessWord(raw, shell.EnvsFromSlice([]string{arg + "=build-arg-value"}))
			if err != nil || got != "build-arg-value" || !im.args[arg] {
				t.Errorf("%s: label org.opencontainers.image.%s = %s is not the stage's ARG %s", tc.stage, label, raw, arg)
			}
		}
		for k := range im.env {
			if strings.HasPrefix(k, "BRIDGE_") || strings.HasPrefix(k, "ZULIP_") {
				if _, ok := known[k]; !ok {
					t.Errorf("%s: ENV %s is not a variable `bridge env` knows", tc.stage, k)
				}
			} else if strings.HasPrefix(k, "ZULIPSIM_") && !simVars[k] {
				t.Errorf("%s: ENV %s is not a variable zulipsim reads", tc.stage, k)
			}
		}
		if !slices.ContainsFunc(im.copies, func(c *instructions.CopyCommand) bool {
			return c.From == "build" && c.DestPath == tc.binary
		}) {
			t.Errorf("%s: %s is not copied from the build stage", tc.stage, tc.binary)
		}
		if len(im.healthcheck) == 0 || im.healthcheck[0] != "CMD" {
			t.Errorf("%s: HEALTHCHECK %q, want exec form", tc.stage, im.healthcheck)
		}
	}

	bridge := stageImage(byName["bridge"])
	if !slices.Equal(bridge.cmd, []string{"run"}) {
		t.Errorf("bridge: CMD %q, want [run]", bridge.cmd)
	}
	checkBridgeHealthcheck(t, "Dockerfile HEALTHCHECK", bridge.healthcheck, bridge.env["BRIDGE_HTTP_ADDR"])
	// The state directory: where BRIDGE_STATE_DIR says, owned by the user.
	dir := bridge.env["BRIDGE_STATE_DIR"]
	if dir == "" || !slices.ContainsFunc(bridge.copies, func(c *instructions.CopyCommand) bool {
		return c.DestPath == dir && c.Chown == bridge.user
	}) {
		t.Errorf("bridge: no state directory BRIDGE_STATE_DIR=%q created owned by %s", dir, bridge.user)
	}
	for _, v := range []string{"BRIDGE_HTTP_ADDR", "BRIDGE_NATS_EMBEDDED_ADDR"} {
		_, port, err := net.SplitHostPort(cmp.Or(bridge.env[v], known[v].Default))
		if err != nil || !slices.Contains(bridge.expose, port) {
			t.Errorf("bridge: the port of %s (%s) is not in EXPOSE %v", v, port, bridge.expose)
		}
	}
	if host, _, _ := net.SplitHostPort(bridge.env["BRIDGE_NATS_EMBEDDED_ADDR"]); host != "0.0.0.0" {
		t.Errorf("bridge: BRIDGE_NATS_EMBEDDED_ADDR=%q: the embedded NATS server must listen beyond the container's loopback", bridge.env["BRIDGE_NATS_EMBEDDED_ADDR"])
	}
}

func goModVersion(t *testing.T, root string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	return string(m[1])
}

// checkLayerOrder: go.mod and go.sum are copied and the modules downloaded
// before the source is copied, so that a source change reuses the module
// layer.
func checkLayerOrder(t *testing.T, build instructions.Stage) {
	t.Helper()
	step := 0 // 1: go.mod copied, 2: modules downloaded, 3: source copied
	for _, c := range build.Commands {
		switch c := c.(type) {
		case *instructions.CopyCommand:
			switch {
			case step == 0 && slices.Contains(c.SourcePaths, "go.mod") && slices.Contains(c.SourcePaths, "go.sum"):
				step = 1
			case step == 2 && slices.Contains(c.SourcePaths, "."):
				step = 3
			}
		case *instructions.RunCommand:
			if step == 1 && strings.Contains(strings.Join(c.CmdLine, " "), "go mod download") {
				step = 2
			}
		}
	}
	if step != 3 {
		t.Errorf("build stage: want COPY go.mod go.sum, RUN go mod download, COPY . . in that order (reached step %d)", step)
	}
}

// TestDockerfileGoBuild runs the Dockerfile's `go build` of the bridge,
// taken from its RUN instruction with the ARGs and ENVs substituted as
// BuildKit substitutes them, from the repository root (the build stage
// copies the root to its WORKDIR), and checks the binary: static, stamped
// with the VERSION build argument.
func TestDockerfileGoBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the bridge")
	}
	root := repoRoot(t)
	stages := dockerfileStages(t, root)
	i := slices.IndexFunc(stages, func(st instructions.Stage) bool { return st.Name == "build" })
	if i < 0 {
		t.Fatal("no build stage")
	}
	const stamped = "v0.0.0-dockerfile-test"
	buildArgs := map[string]string{"VERSION": stamped, "TARGETOS": runtime.GOOS, "TARGETARCH": runtime.GOARCH}

	// The stage's variables as BuildKit sees them at each RUN: ARGs (the
	// build argument or their default) and ENVs, in order.
	var stageEnv []string
	var line string
	for _, c := range stages[i].Commands {
		switch c := c.(type) {
		case *instructions.ArgCommand:
			for _, a := range c.Args {
				v, ok := buildArgs[a.Key]
				if !ok && a.Value != nil {
					v = *a.Value
				}
				stageEnv = append(stageEnv, a.Key+"="+v)
			}
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				stageEnv = append(stageEnv, kv.Key+"="+kv.Value)
			}
		case *instructions.RunCommand:
			if cl := strings.Join(c.CmdLine, " "); strings.Contains(cl, "go build") && strings.Contains(cl, "./cmd/bridge") {
				line = cl
			}
		}
		if line != "" {
			break
		}
	}
	if line == "" {
		t.Fatal("build stage: no RUN with the go build of ./cmd/bridge")
	}
	words, err := shell.NewLex('\\').ProcessWords(line, shell.EnvsFromSlice(stageEnv))
	if err != nil {
		t.Fatalf("expand %q: %v", line, err)
	}
	// One simple command, so that running it here is running what the
	// image build runs: NAME=value... go build args...
	var assign []string
	for len(words) > 0 && regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`).MatchString(words[0]) {
		assign, words = append(assign, words[0]), words[1:]
	}
	for _, w := range words {
		if slices.Contains([]string{"&&", "||", ";", "|", "&"}, w) {
			t.Fatalf("RUN %q is not one go build command: it would not be run here as it is", line)
		}
	}
	if len(words) < 2 || words[0] != "go" || words[1] != "build" {
		t.Fatalf("RUN %q: want [NAME=value...] go build ...", line)
	}
	// Checked before building: a build with other flags would be a build
	// of something else, and slow (nothing of it is cached).
	if !slices.Contains(assign, "CGO_ENABLED=0") {
		t.Fatalf("RUN %q does not set CGO_ENABLED=0: the binary would need the C library distroless static lacks", line)
	}
	if !slices.Contains(words, "-trimpath") {
		t.Fatalf("RUN %q does not build with -trimpath: the binary would carry the builder's paths", line)
	}
	bin := filepath.Join(t.TempDir(), "bridge")
	o := slices.Index(words, "-o")
	if o < 0 || o+1 >= len(words) {
		t.Fatalf("RUN %q has no -o", line)
	}
	words[o+1] = bin

	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, words[0], words[1:]...)
	cmd.Dir = root
	cmd.Env = append(append(os.Environ(), stageEnv...), assign...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s (in %s, with %v): %v\n%s", strings.Join(words, " "), root, assign, err, out)
	}

	out, err := exec.CommandContext(ctx, bin, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "zulip-bridge "+stamped+" (") {
		t.Errorf("`bridge version` of the image's binary: %q, %v; want the stamped %s", out, err, stamped)
	}
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" {
		t.Errorf("build settings CGO_ENABLED=%q -trimpath=%q, want 0 and true", settings["CGO_ENABLED"], settings["-trimpath"])
	}
	if err := checkStatic(bin); err != nil {
		t.Error(err)
	}
}

// checkStatic fails for an ELF binary that needs a dynamic loader, which a
// distroless static image does not have.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		if runtime.GOOS != "linux" {
			return nil // not ELF: the check is for the Linux image
		}
		return err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("the binary is dynamically linked (PT_INTERP): it would not start on distroless static")
		}
	}
	return nil
}

// TestDockerignoreKeepsTheBuild: no file that `go build` of the two
// binaries reads (sources, embedded files, go.mod, go.sum) is left out of
// the build context by .dockerignore, and what should stay out does.
func TestDockerignoreKeepsTheBuild(t *testing.T) {
	root := repoRoot(t)
	f, err := os.Open(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	patterns, err := ignorefile.ReadAll(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	ignored := func(rel string) bool {
		m, err := pm.MatchesOrParentMatches(filepath.ToSlash(rel))
		if err != nil {
			t.Fatalf(".dockerignore on %s: %v", rel, err)
		}
		return m
	}
	for _, out := range []string{".git/config", "helm/zulip-bridge/Chart.yaml", "bin/bridge", "data/checkpoint.json", "cmd/bridge/bridge.test"} {
		if !ignored(out) {
			t.Errorf(".dockerignore keeps %s in the build context", out)
		}
	}

	cmd := exec.Command("go", "list", "-deps", "-f",
		`{{if and .Module .Module.Main}}{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{range .EmbedFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{end}}`,
		"./cmd/bridge", "./cmd/zulipsim")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	listed, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	files := []string{"go.mod", "go.sum"}
	for _, p := range strings.Fields(string(listed)) {
		rel, err := filepath.Rel(root, p)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, rel)
	}
	if !slices.ContainsFunc(files, func(f string) bool { return strings.Contains(f, "testdata") }) {
		t.Fatalf("go list found no embedded testdata among %d files: the listing is wrong", len(files))
	}
	for _, f := range files {
		if ignored(f) {
			t.Errorf(".dockerignore leaves out %s, which the build needs", f)
		}
	}
	t.Logf("%d files the build reads", len(files))
}
