package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBenchTiny runs the whole command on tiny figures with both sinks
// and checks that the JSON line has every field with a sane value, so
// that the command keeps working. It checks no target: the figures of a
// test run on a loaded machine mean nothing.
func TestBenchTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the bridge binary")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	args := []string{"-events", "300", "-big", "400", "-duration", "1s", "-rate", "500", "-runs", "2", "-sinks", "nats,kafka",
		"-set", "BRIDGE_PUBLISH_BATCH=100"}
	if code := run(ctx, args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr.String())
	}
	out := strings.TrimRight(stdout.String(), "\n")
	line := out[strings.LastIndexByte(out, '\n')+1:]
	for _, want := range []string{"drain 300-event backlog, BRIDGE_SPOOL=off", "drain 300-event backlog, BRIDGE_SPOOL=on", "JetStream median of 2",
		"JetStream drain: ratio", "Kafka drain: ratio", "Kafka added by the bridge", "400-event backlog", "backfill after a queue loss",
		"bridge settings: BRIDGE_PUBLISH_BATCH=100"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}

	var fields map[string]any
	if err := json.Unmarshal([]byte(line), &fields); err != nil {
		t.Fatalf("last line is not JSON: %v\n%s", err, line)
	}
	checkFields(t, "", reflect.TypeFor[result](), fields)

	var r result
	dec := json.NewDecoder(strings.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(r.GoVersion, "go") || r.GOMAXPROCS < 1 || r.NumCPU < 1 || r.Runs != 2 || r.Events != 300 || r.Big != 400 || r.Mix != mixIssue || r.Spool != spoolBoth ||
		!slices.Equal(r.Set, []string{"BRIDGE_PUBLISH_BATCH=100"}) {
		t.Errorf("header %+v", r)
	}
	// The issue's mix: about 800 bytes per event.
	if r.AvgEventBytes < 600 || r.AvgEventBytes > 1100 {
		t.Errorf("avg_event_bytes %v, want about 800", r.AvgEventBytes)
	}
	if len(r.Sinks) != 2 || r.Sinks["nats"] == nil || r.Sinks["kafka"] == nil {
		t.Fatalf("sinks %v", r.Sinks)
	}
	for name, s := range r.Sinks {
		if s.Drain == nil || s.DrainSpool == nil {
			t.Fatalf("%s: drain %v, drain_spool %v; want both", name, s.Drain, s.DrainSpool)
		}
		for _, d := range []*drainSummary{s.Drain, s.DrainSpool} {
			checkDrain(t, name, d)
		}
		if s.Drain.Spool != spoolOff || s.DrainSpool.Spool != spoolOn || s.Drain.Baseline != baselineRaw || s.DrainSpool.Baseline != baselineSpool {
			t.Errorf("%s: drain is %s against %q, drain_spool %s against %q", name, s.Drain.Spool, s.Drain.Baseline, s.DrainSpool.Spool, s.DrainSpool.Baseline)
		}
		for i, d := range s.Drain.Runs {
			if d.RawAppendSeconds != 0 {
				t.Errorf("%s spool-off run %d: raw_spool_append_seconds %v, want 0", name, i+1, d.RawAppendSeconds)
			}
		}
		for i, d := range s.DrainSpool.Runs {
			// The appends are part of the spool baseline, which ends
			// with the broker's last confirmation after them.
			if !(d.RawAppendSeconds > 0) || d.RawAppendSeconds > d.RawSeconds {
				t.Errorf("%s spool-on run %d: appends took %vs of the baseline's %vs", name, i+1, d.RawAppendSeconds, d.RawSeconds)
			}
		}
		if want := round(s.DrainSpool.MedianBridgeEPS / s.Drain.MedianBridgeEPS); math.Abs(s.SpoolOnOff-want) > 0.002 {
			t.Errorf("%s: spool_on_off_bridge_ratio %v, want %v", name, s.SpoolOnOff, want)
		}

		l := s.Latency
		if l == nil {
			t.Fatalf("%s: no latency", name)
		}
		// 500 events/s for 1s, the first 100ms not counted; the bridge
		// gets only the messages the bot can see.
		if l.Events < 400 || l.Events > 450 || l.RawEvents != 450 {
			t.Errorf("%s latency: %d bridge and %d raw events measured", name, l.Events, l.RawEvents)
		}
		for what, p := range map[string]percentileSet{"bridge": l.Bridge, "raw": l.Raw} {
			if p.P50 <= 0 || p.P50 > p.P99 || p.P99 > p.P999 || p.P999 > 10000 {
				t.Errorf("%s latency %s: %+v", name, what, p)
			}
		}
		if math.Abs(l.Added.P99-(l.Bridge.P99-l.Raw.P99)) > 0.002 {
			t.Errorf("%s latency added %+v is not bridge %+v minus raw %+v", name, l.Added, l.Bridge, l.Raw)
		}
		rss(t, name+" latency", l.RSSMiB, l.PeakRSSMiB)

		bg := s.Big
		if bg == nil {
			t.Fatalf("%s: no big backlog", name)
		}
		if !bg.Finished || bg.QueueLost || bg.Events < 400 || bg.InBroker != bg.Events {
			t.Errorf("%s big: %+v", name, bg)
		}
		positive(t, name+" big", bg.Seconds, bg.EPS)
		rss(t, name+" big", bg.PeakRSSMiB)

		bf := s.Backfill
		if bf == nil {
			t.Fatalf("%s: no backfill", name)
		}
		if bf.Messages != 300 || bf.Pages != 1 {
			t.Errorf("%s backfill: %d messages in %d pages, want 300 in 1", name, bf.Messages, bf.Pages)
		}
		positive(t, name+" backfill", bf.BridgeSeconds, bf.BridgeMPS, bf.BaselineSeconds, bf.BaselineMPS, bf.Ratio)
		// CPU time comes in clock ticks: 300 messages may take none.
		if bf.BridgeCPUMicros < 0 || bf.ServerCPUMicros < 0 || bf.BaselineCPUMicros < 0 || bf.BridgeCPUMicros+bf.ServerCPUMicros+bf.BaselineCPUMicros == 0 {
			t.Errorf("%s backfill: CPU µs per message %v + %v | %v", name, bf.BridgeCPUMicros, bf.ServerCPUMicros, bf.BaselineCPUMicros)
		}
	}
	if len(r.Targets) != 14 {
		t.Errorf("%d targets, want 7 per sink: %+v", len(r.Targets), r.Targets)
	}
	for _, tg := range r.Targets {
		if tg.Name == "" || tg.Target == "" {
			t.Errorf("target %+v", tg)
		}
		if !strings.Contains(out, "target "+tg.Target) {
			t.Errorf("table lacks target %q", tg.Target)
		}
	}
}

// checkDrain checks the runs of one drain summary of TestBenchTiny.
func checkDrain(t *testing.T, name string, s *drainSummary) {
	t.Helper()
	name += " spool " + s.Spool
	if len(s.Runs) != 2 {
		t.Errorf("%s: %d drain runs, want 2", name, len(s.Runs))
	}
	for i, d := range s.Runs {
		// A few more than injected: the generator sends a message
		// before its first reaction or edit.
		if d.Events < 290 || d.Events > 310 || d.RawEvents < 290 || d.RawEvents > 310 {
			t.Errorf("%s run %d: events %d, raw %d; want about 300", name, i+1, d.Events, d.RawEvents)
		}
		if !d.Finished || d.QueueLost || d.InBroker != d.Events {
			t.Errorf("%s run %d: %+v, want the whole backlog drained", name, i+1, d)
		}
		if d.RawFirst != (i == 1) {
			t.Errorf("%s run %d: raw_first %t", name, i+1, d.RawFirst)
		}
		positive(t, name+" drain", d.BridgeSeconds, d.BridgeEPS, d.RawSeconds, d.RawEPS, d.Ratio, d.ReadySeconds)
		rss(t, name+" drain", d.PeakRSSMiB)
	}
	if !s.Finished {
		t.Errorf("%s: not finished", name)
	}
	positive(t, name+" drain median", s.MedianRatio, s.MedianBridgeEPS, s.MedianRawEPS)
}

// checkFields fails for every field of typ, recursively, missing from m.
func checkFields(t *testing.T, path string, typ reflect.Type, v any) {
	t.Helper()
	switch typ.Kind() {
	case reflect.Pointer:
		checkFields(t, path, typ.Elem(), v)
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			t.Errorf("%s: %T, want an object", path, v)
			return
		}
		for i := range typ.NumField() {
			f := typ.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			x, ok := m[name]
			if !ok || x == nil {
				t.Errorf("JSON lacks %s.%s", path, name)
				continue
			}
			checkFields(t, path+"."+name, f.Type, x)
		}
	case reflect.Slice:
		list, ok := v.([]any)
		if !ok || len(list) == 0 {
			t.Errorf("%s: %v, want a non-empty list", path, v)
			return
		}
		for i, x := range list {
			checkFields(t, path+"["+strconv.Itoa(i)+"]", typ.Elem(), x)
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok || len(m) == 0 {
			t.Errorf("%s: %v, want a non-empty object", path, v)
			return
		}
		for k, x := range m {
			checkFields(t, path+"."+k, typ.Elem(), x)
		}
	}
}

func positive(t *testing.T, what string, values ...float64) {
	t.Helper()
	for i, v := range values {
		if !(v > 0) {
			t.Errorf("%s: value %d is %v, want > 0 (all: %v)", what, i, v, values)
		}
	}
}

func rss(t *testing.T, what string, values ...float64) {
	t.Helper()
	for _, v := range values {
		if v < 1 || v > 16384 {
			t.Errorf("%s: RSS %v MiB", what, v)
		}
	}
}

func TestFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string // in the error; empty: valid
	}{
		{nil, ""},
		{[]string{"-sinks", "kafka", "-big", "0", "-mix", "default"}, ""},
		{[]string{"-runs", "0"}, "-runs 0"},
		{[]string{"-events", "5"}, "-events 5"},
		{[]string{"-big", "-1"}, "-big -1"},
		{[]string{"-rate", "0"}, "-rate 0"},
		{[]string{"-duration", "10ms"}, "-duration 10ms"},
		{[]string{"-sinks", "nats,redis"}, `unknown sink "redis"`},
		{[]string{"-mix", "huge"}, `-mix "huge"`},
		{[]string{"-cpuprofile", "/tmp/p", "-bridge", "/bin/bridge"}, "-cpuprofile needs"},
		{[]string{"-max-response", "-5"}, "-max-response -5"},
		{[]string{"-spool", "off"}, ""},
		{[]string{"-spool", "on"}, ""},
		{[]string{"-spool", "maybe"}, `-spool "maybe"`},
		{[]string{"extra"}, "unexpected arguments: extra"},
		{[]string{"-set", "BRIDGE_PUBLISH_BATCH=5000", "-set", "BRIDGE_ZULIP_MAX_RESPONSE_BYTES=1"}, ""},
		{[]string{"-set", "GOGC=400"}, "want BRIDGE_NAME=value"},
		{[]string{"-set", "BRIDGE_PUBLISH_BATCH"}, "want BRIDGE_NAME=value"},
	}
	for _, tt := range tests {
		cfg, err := parseFlags(tt.args, io.Discard)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%v: %v", tt.args, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%v: error %v, want one with %q", tt.args, err, tt.want)
		case tt.want == "" && len(cfg.sinks) == 0:
			t.Errorf("%v: no sinks", tt.args)
		}
	}
	if cfg, _ := parseFlags(nil, io.Discard); cfg.runs != 3 || cfg.events != 100000 || cfg.big != 1000000 || cfg.rate != 1000 ||
		cfg.duration != 10*time.Second || !reflect.DeepEqual(cfg.sinks, []string{"nats", "kafka"}) || cfg.mix != mixIssue ||
		cfg.spool != spoolBoth || !reflect.DeepEqual(cfg.spools, []string{spoolOff, spoolOn}) {
		t.Errorf("defaults %+v", cfg)
	}
	for in, want := range map[string][]string{"off": {spoolOff}, "on": {spoolOn}} {
		if cfg, err := parseFlags([]string{"-spool", in}, io.Discard); err != nil || !reflect.DeepEqual(cfg.spools, want) {
			t.Errorf("-spool %s: drains %v (%v), want %v", in, cfg.spools, err, want)
		}
	}
}

func TestPercentiles(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	var thousand []time.Duration
	for i := 1000; i >= 1; i-- {
		thousand = append(thousand, time.Duration(i)*time.Millisecond)
	}
	tests := []struct {
		in   []time.Duration
		want percentileSet
	}{
		{nil, percentileSet{}},
		{ms(7), percentileSet{7, 7, 7}},
		{ms(3, 1, 2), percentileSet{2, 3, 3}},
		{thousand, percentileSet{500, 990, 999}},
	}
	for _, tt := range tests {
		if got := percentiles(tt.in); got != tt.want {
			t.Errorf("percentiles(%d values) = %+v, want %+v", len(tt.in), got, tt.want)
		}
	}
	for in, want := range map[string]float64{"": 0, "1": 1, "3 1 2": 2, "4 1 3 2": 2.5} {
		var v []float64
		for _, f := range strings.Fields(in) {
			v = append(v, float64(f[0]-'0'))
		}
		if got := median(v); got != want {
			t.Errorf("median(%v) = %v, want %v", v, got, want)
		}
	}
}

// TestReportOneSpoolMode checks the table and the JSON line when -spool
// selects one drain: the other is absent, not zero, and its target is
// not evaluated.
func TestReportOneSpoolMode(t *testing.T) {
	run := drainRun{Events: 1000, Finished: true, InBroker: 1000, BridgeSeconds: 0.5, RawEvents: 1000, RawSeconds: 0.25, RawAppendSeconds: 0.1}
	run.rates()
	for _, mode := range []string{spoolOff, spoolOn} {
		sr := &sinkResult{}
		d := sr.drain(mode)
		d.Runs = []drainRun{run}
		d.summarize()
		r := &result{Events: 1000, Spool: mode, Sinks: map[string]*sinkResult{"nats": sr}}
		r.evaluate()
		var out bytes.Buffer
		printTable(&out, r)
		if err := printJSON(&out, r); err != nil {
			t.Fatal(err)
		}
		text := out.String()
		other, wantTarget, wantBaseline := spoolOn, "nats drain ratio", "raw client"
		if mode == spoolOn {
			other, wantTarget, wantBaseline = spoolOff, "nats drain ratio spool on", "spool + raw client"
		}
		if !strings.Contains(text, "BRIDGE_SPOOL="+mode+"  bridge") || strings.Contains(text, "BRIDGE_SPOOL="+other+"  bridge") || !strings.Contains(text, wantBaseline) {
			t.Errorf("-spool %s: table\n%s", mode, text)
		}
		if d.MedianRatio != 0.5 || len(r.Targets) != 1 || r.Targets[0].Name != wantTarget || r.Targets[0].Value != 0.5 {
			t.Errorf("-spool %s: median ratio %v, targets %+v", mode, d.MedianRatio, r.Targets)
		}
		line := text[strings.LastIndexByte(strings.TrimRight(text, "\n"), '\n')+1:]
		var fields struct {
			Sinks map[string]map[string]json.RawMessage `json:"sinks"`
		}
		if err := json.Unmarshal([]byte(line), &fields); err != nil {
			t.Fatalf("-spool %s: %v\n%s", mode, err, line)
		}
		_, hasOff := fields.Sinks["nats"]["drain"]
		_, hasOn := fields.Sinks["nats"]["drain_spool"]
		_, hasCmp := fields.Sinks["nats"]["spool_on_off_bridge_ratio"]
		if hasOff != (mode == spoolOff) || hasOn != (mode == spoolOn) || hasCmp {
			t.Errorf("-spool %s: JSON drain %t, drain_spool %t, spool_on_off_bridge_ratio %t:\n%s", mode, hasOff, hasOn, hasCmp, line)
		}
	}
}
