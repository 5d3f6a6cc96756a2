package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"reflect"
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
	args := []string{"-events", "300", "-big", "400", "-duration", "1s", "-rate", "500", "-runs", "2", "-sinks", "nats,kafka"}
	if code := run(ctx, args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr.String())
	}
	out := strings.TrimRight(stdout.String(), "\n")
	line := out[strings.LastIndexByte(out, '\n')+1:]
	for _, want := range []string{"drain 300-event backlog", "JetStream median of 2", "Kafka added by the bridge", "400-event backlog", "backfill after a queue loss"} {
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
	if !strings.HasPrefix(r.GoVersion, "go") || r.GOMAXPROCS < 1 || r.NumCPU < 1 || r.Runs != 2 || r.Events != 300 || r.Big != 400 || r.Mix != mixIssue {
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
		if len(s.Drain.Runs) != 2 {
			t.Errorf("%s: %d drain runs, want 2", name, len(s.Drain.Runs))
		}
		for i, d := range s.Drain.Runs {
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
		positive(t, name+" drain median", s.Drain.MedianRatio, s.Drain.MedianBridgeEPS, s.Drain.MedianRawEPS)

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
		if bf.Messages != 30 || bf.Pages != 1 {
			t.Errorf("%s backfill: %d messages in %d pages, want 30 in 1", name, bf.Messages, bf.Pages)
		}
		positive(t, name+" backfill", bf.BridgeSeconds, bf.BridgeMPS, bf.BaselineSeconds, bf.BaselineMPS, bf.Ratio)
	}
	if len(r.Targets) != 12 {
		t.Errorf("%d targets, want 6 per sink: %+v", len(r.Targets), r.Targets)
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
		{[]string{"extra"}, "unexpected arguments: extra"},
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
		cfg.duration != 10*time.Second || !reflect.DeepEqual(cfg.sinks, []string{"nats", "kafka"}) || cfg.mix != mixIssue {
		t.Errorf("defaults %+v", cfg)
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
