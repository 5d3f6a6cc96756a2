package pipeline_test

import (
	"context"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zulip-bridge/zulip-bridge/checkpoint"
	"github.com/zulip-bridge/zulip-bridge/checkpoint/natskv"
	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/source"
)

// TestSiteSpellings: every spelling of one site (case, default port,
// trailing slash, /api, no scheme) is one site: one checkpoint key, one
// dedup host, and a checkpoint written under any spelling (by this release
// or, for the file store, by an older one that stored the spelling as
// given) resumes under any other. Another site is refused.
func TestSiteSpellings(t *testing.T) {
	spellings := []string{
		"https://chat.example.com",
		"https://Chat.Example.COM",
		"https://chat.example.com:443",
		"https://chat.example.com/",
		"https://chat.example.com/api",
		"https://chat.example.com/api/",
		"chat.example.com",
		" CHAT.example.com:443/api/ ",
		"HTTPS://Chat.Example.com:443/",
	}
	const host, key = "chat.example.com", "chat.example.com/bridge"
	nc, err := nats.Connect(testutil.StartNATS(t).URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	sites := make([]source.Site, len(spellings))
	for i, raw := range spellings {
		site, err := source.ParseSite(raw)
		if err != nil {
			t.Fatalf("ParseSite(%q): %v", raw, err)
		}
		sites[i] = site
		m, err := mapping.New(mapping.Config{}, site)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := m.Map([]byte(`{"type":"heartbeat","id":7}`), "1700000000:1")
		if err != nil {
			t.Fatal(err)
		}
		if zs, _ := msg.Get(mapping.HeaderSite); m.Site() != host || zs != host || msg.DedupKey != host+"/1700000000:1/7" {
			t.Errorf("%q: mapper host %q, Zulip-Site %q, dedup key %q; want host %s", raw, m.Site(), zs, msg.DedupKey, host)
		}
		if k, err := (checkpoint.Config{}).KeyFor(site); err != nil || k != key {
			t.Errorf("%q: checkpoint key %q, %v; want %s", raw, k, err, key)
		}
	}
	ctx := context.Background()
	for i, a := range spellings {
		for j, b := range spellings {
			// The file store: what this release stores (the parsed site)
			// and what an older one stored (the spelling, trimmed).
			for _, stored := range []string{sites[i].String(), strings.TrimSpace(a)} {
				cp := checkpoint.Checkpoint{Site: stored, QueueID: "1700000000:1", LastEventID: 3}
				dir := t.TempDir()
				fs, err := checkpoint.OpenFile(dir)
				if err != nil {
					t.Fatal(err)
				}
				if err := fs.Save(ctx, cp); err != nil {
					t.Fatal(err)
				}
				got, found, err := fs.Load(ctx)
				fs.Close()
				if err != nil || !found {
					t.Fatalf("Load: %v, %v", found, err)
				}
				if err := got.BelongsTo(sites[j]); err != nil {
					t.Errorf("checkpoint of %q stored as %q, resumed as %q: %v", a, stored, b, err)
				}
			}
		}
		// nats-kv: saved under one spelling, loaded under each other.
		s, err := natskv.Open(ctx, js, checkpoint.Config{Name: "n" + string(rune('a'+i))}, sites[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Save(ctx, checkpoint.Checkpoint{Site: sites[i].String(), QueueID: "1700000000:1", LastEventID: int64(i)}); err != nil {
			t.Fatal(err)
		}
		s.Close()
		for j, b := range spellings {
			r, err := natskv.Open(ctx, js, checkpoint.Config{Name: "n" + string(rune('a'+i))}, sites[j])
			if err != nil {
				t.Fatal(err)
			}
			cp, found, err := r.Load(ctx)
			r.Close()
			if err != nil || !found || cp.LastEventID != int64(i) || cp.BelongsTo(sites[j]) != nil {
				t.Errorf("nats-kv: saved as %q, loaded as %q: %+v, %v, %v", a, b, cp, found, err)
			}
		}
	}
	for _, other := range []string{"https://chat.other.example", "https://chat.example.com:8443", "https://chat.example.org/api"} {
		cp := checkpoint.Checkpoint{Site: other, QueueID: "1700000000:1", LastEventID: 3}
		err := cp.BelongsTo(sites[0])
		if err == nil || !strings.Contains(err.Error(), other) || !strings.Contains(err.Error(), sites[0].String()) {
			t.Errorf("checkpoint of %s taken for %s's: %v", other, sites[0], err)
		}
	}
}

// TestRespelledSiteResumes runs the bridge, stops it, and runs it again with
// ZULIP_SITE spelled differently: it resumes the same queue instead of
// refusing the checkpoint or registering a new one.
func TestRespelledSiteResumes(t *testing.T) {
	w := newWorld(t)
	port := w.sim.URL[strings.LastIndex(w.sim.URL, ":")+1:]
	b := w.start(options{site: "http://localhost:" + port})
	q := b.queueID()
	w.send(3, "before")
	w.waitAcked(q)
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	respelled := "HTTP://LocalHost:" + port + "/api/"
	b = w.start(options{site: respelled})
	if got := b.queueID(); got != q {
		t.Fatalf("with ZULIP_SITE=%s the bridge uses queue %s, want the checkpoint's %s", respelled, got, q)
	}
	w.send(2, "after")
	w.waitAcked(q)
	if n := len(w.readStream()); n != 5 {
		t.Errorf("stream holds %d messages, want 5", n)
	}
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
}
