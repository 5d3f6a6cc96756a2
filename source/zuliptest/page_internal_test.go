package zuliptest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jonboulle/clockwork"
)

// referencePage is GET /messages as the simulator computed it before the
// store was indexed: every message scanned, the visible ones listed, the
// page cut from the list. The indexed walk must give the same answers.
func (s *Server) referencePage(user *User, filter messageFilter, anchorRaw string, numBefore, numAfter int64, includeAnchor bool) (ids []int64, foundAnchor, foundOldest, foundNewest bool, anchor int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var visible []*storedMessage
	for _, m := range s.messages.all {
		if s.canSee(user.ID, m) && filter(m) {
			visible = append(visible, m)
		}
	}
	var toLeft, toRight bool
	switch anchorRaw {
	case "newest":
		anchor, toRight = largerThanMaxMessageID, true
	case "oldest":
		anchor, toLeft = 0, true
	case "first_unread":
		anchor, toRight = largerThanMaxMessageID, true
		for _, m := range visible {
			if m.senderID != user.ID {
				anchor, toRight = m.id, false
				break
			}
		}
	default:
		anchor, _ = strconv.ParseInt(anchorRaw, 10, 64)
	}
	var before, anchorRows, after []*storedMessage
	if toRight {
		before = visible
		numAfter = 0
	} else {
		for _, m := range visible {
			switch {
			case m.id < anchor:
				before = append(before, m)
			case m.id == anchor && includeAnchor:
				anchorRows = append(anchorRows, m)
			case m.id > anchor:
				after = append(after, m)
			}
		}
	}
	before = before[max(len(before)-int(numBefore), 0):]
	after = after[:min(len(after), int(numAfter))]
	for _, m := range slices.Concat(before, anchorRows, after) {
		ids = append(ids, m.id)
	}
	return ids, len(anchorRows) == 1, toLeft || int64(len(before)) < numBefore, toRight || int64(len(after)) < numAfter, anchor
}

// TestMessagesPagesMatchReference compares GET /messages pages around
// random anchors, in random narrows, with the reference scan, on a store
// mixing streams (one the bot cannot read), senders and direct messages
// (some the bot is not in).
func TestMessagesPagesMatchReference(t *testing.T) {
	srv := NewServer(Config{Clock: clockwork.NewFakeClock()})
	defer srv.Close()
	rng := rand.New(rand.NewPCG(7, 13))
	senders := []string{"iago@zulip.example.com", "hamlet@zulip.example.com", "othello@zulip.example.com", DefaultBot.Email}
	streams := []string{"Denmark", "Verona", "Rome", "core team"}
	for range 600 {
		req := SendRequest{Sender: senders[rng.IntN(len(senders))], Content: "hi", Topic: []string{"a", "b", "B"}[rng.IntN(3)]}
		if rng.IntN(4) == 0 {
			req.Type = "private"
			req.To = []string{DefaultBot.Email, "cordelia@zulip.example.com", "prospero@zulip.example.com"}[rng.IntN(3)]
		} else {
			req.To = streams[rng.IntN(len(streams))]
		}
		if _, err := srv.SendMessage(req); err != nil && !strings.Contains(err.Error(), "Not authorized") {
			t.Fatal(err)
		}
	}
	maxID := srv.Messages()[len(srv.Messages())-1].ID
	narrows := []string{
		"",
		`[["stream","Verona"]]`,
		`[["stream","core team"]]`,
		`[["sender","hamlet@zulip.example.com"]]`,
		`[["stream","Denmark"],["sender","iago@zulip.example.com"]]`,
		`[["stream","Denmark"],["topic","b"]]`,
		`[["topic","a"]]`,
		`[["is","dm"]]`,
		`[["dm","prospero@zulip.example.com"]]`,
		`[["is","starred"]]`,
		`[["id","42"]]`,
		`[["id","100000"]]`,
		`[{"operator":"stream","operand":"Rome","negated":true}]`,
		`[{"operator":"sender","operand":"iago@zulip.example.com","negated":true},["stream","Rome"]]`,
	}
	user := srv.realm.userByEmail(DefaultBot.Email)
	client := srv.Client()
	for i := range 700 {
		narrow := narrows[i%len(narrows)]
		var anchor string
		switch rng.IntN(8) {
		case 0:
			anchor = "newest"
		case 1:
			anchor = "oldest"
		case 2:
			anchor = "first_unread"
		default:
			anchor = strconv.FormatInt(rng.Int64N(maxID+20)-10, 10)
		}
		numBefore, numAfter := rng.Int64N(40), rng.Int64N(40)
		includeAnchor := rng.IntN(2) == 0
		terms, err := parseNarrow(json.RawMessage(orDefault(narrow, "[]")))
		if err != nil {
			t.Fatal(err)
		}
		filter, _, aerr := srv.compileMessagesNarrow(terms, user)
		if aerr != nil {
			t.Fatalf("narrow %s: %s", narrow, aerr.msg)
		}
		wantIDs, wantAnchor, wantOldest, wantNewest, wantAnchorID := srv.referencePage(user, filter, anchor, numBefore, numAfter, includeAnchor)

		q := url.Values{"anchor": {anchor}, "num_before": {fmt.Sprint(numBefore)}, "num_after": {fmt.Sprint(numAfter)},
			"include_anchor": {strconv.FormatBool(includeAnchor)}}
		if narrow != "" {
			q.Set("narrow", narrow)
		}
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/messages?"+q.Encode(), nil)
		req.SetBasicAuth(DefaultBot.Email, DefaultBot.APIKey)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var page struct {
			Messages []struct {
				ID int64 `json:"id"`
			} `json:"messages"`
			FoundAnchor bool  `json:"found_anchor"`
			FoundOldest bool  `json:"found_oldest"`
			FoundNewest bool  `json:"found_newest"`
			Anchor      int64 `json:"anchor"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %v", q.Encode(), resp.StatusCode, err)
		}
		var gotIDs []int64
		for _, m := range page.Messages {
			gotIDs = append(gotIDs, m.ID)
		}
		if !slices.Equal(gotIDs, wantIDs) || page.FoundAnchor != wantAnchor || page.FoundOldest != wantOldest ||
			page.FoundNewest != wantNewest || page.Anchor != wantAnchorID {
			t.Fatalf("%s:\n got %v anchor %v/%d oldest %v newest %v\nwant %v anchor %v/%d oldest %v newest %v", q.Encode(),
				gotIDs, page.FoundAnchor, page.Anchor, page.FoundOldest, page.FoundNewest,
				wantIDs, wantAnchor, wantAnchorID, wantOldest, wantNewest)
		}
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// TestAppendValueMatchesEncodingJSON checks the fast encoder against
// encoding/json without HTML escaping, which it stands in for.
func TestAppendValueMatchesEncodingJSON(t *testing.T) {
	values := []any{
		nil, true, false, 0, -7, int64(1) << 62, 3.5, "", "plain", `quote " and \ backslash`, "<b>&amp;</b>",
		"tab\tnewline\ncr\rbell\x07 nul\x00 \b\f", "é ü 日本 🎉", "\u2028\u2029", "bad \xff utf-8",
		[]any{}, []any{1, "a", nil, []any{true}}, []string{}, []string(nil), []string{"x", "<y>"},
		[]int64{}, []int64{1, 2}, []int64(nil), []any(nil),
		map[string]any{"b": 1, "a": []any{"z"}},
		object{{"k", "v"}, {"n", object{{"deep", []object{{{"x", 1}}}}}}},
		[]object{{{"a", "<"}}, {}},
		json.RawMessage(`{"raw":true}`),
	}
	for _, v := range values {
		got, err := marshal(v)
		if err != nil {
			t.Fatalf("%#v: %v", v, err)
		}
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
		if want := bytes.TrimSuffix(b.Bytes(), []byte("\n")); !bytes.Equal(got, want) {
			t.Fatalf("%#v: got %s, want %s", v, got, want)
		}
	}
	// A key with characters to escape.
	got, _ := object{{"a\"b<", 1}}.MarshalJSON()
	if string(got) != `{"a\"b<":1}` {
		t.Fatalf("key: %s", got)
	}
}
