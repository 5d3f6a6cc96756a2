package zuliptest

import (
	"fmt"
	"slices"
	"strings"
)

// Realm is the organization the simulator serves: its users, streams and
// custom emoji. It feeds the register response's initial state, decides who
// may see which message, and gives the traffic generator consistent ids.
type Realm struct {
	// ID is the realm id (default 2, as on a Zulip development server).
	ID int64
	// StringID is the subdomain-like name that messages carry in
	// sender_realm_str (default "zulip").
	StringID string
	// Name is the organization name (default "Zulip Simulator").
	Name string
	// URL is the realm's public URL reported as realm_url/realm_uri;
	// empty means the simulator's own URL.
	URL string
	// Users are the members. Every configured bot that is not listed is
	// added as a bot user with the next free id.
	Users []User
	// Streams are the channels.
	Streams []Stream
	// Emoji are the custom emoji reported as realm_emoji.
	Emoji []Emoji
}

// User is one member of the realm.
type User struct {
	ID       int64
	Email    string
	FullName string
	IsBot    bool
	// Role is Zulip's role number: 100 owner, 200 administrator,
	// 300 moderator, 400 member (the default when zero), 600 guest.
	Role int
}

// Stream is one channel of the realm.
type Stream struct {
	ID          int64
	Name        string
	Description string
	// InviteOnly makes the stream private: only subscribers see its
	// messages, and all_public_streams or a narrow does not reach it.
	InviteOnly bool
	// Subscribers are the ids of the subscribed users; nil means every
	// user of the realm, bots included.
	Subscribers []int64
}

// Emoji is one custom emoji.
type Emoji struct {
	ID       string
	Name     string
	AuthorID int64
}

// Zulip role numbers.
const (
	RoleOwner     = 100
	RoleAdmin     = 200
	RoleModerator = 300
	RoleMember    = 400
	RoleGuest     = 600
)

// DefaultRealm returns the realm used when Config.Realm has no users and no
// streams: five people, the default bot, six public streams and one private
// one (which the default bot is not subscribed to), two custom emoji. The
// stream ids and names follow Zulip's development server, whose data the
// example events use (stream 1 is "Denmark").
func DefaultRealm() Realm {
	return Realm{
		ID:       2,
		StringID: "zulip",
		Name:     "Zulip Simulator",
		Users: []User{
			{ID: 8, Email: "iago@zulip.example.com", FullName: "Iago", Role: RoleAdmin},
			{ID: 9, Email: "cordelia@zulip.example.com", FullName: "Cordelia, Lear's daughter"},
			{ID: 10, Email: "hamlet@zulip.example.com", FullName: "King Hamlet"},
			{ID: 11, Email: "othello@zulip.example.com", FullName: "Othello, the Moor of Venice"},
			{ID: 12, Email: "prospero@zulip.example.com", FullName: "Prospero from The Tempest"},
			{ID: 20, Email: DefaultBot.Email, FullName: "Bridge Bot", IsBot: true},
		},
		Streams: []Stream{
			{ID: 1, Name: "Denmark", Description: "A Scandinavian country"},
			{ID: 3, Name: "Scotland", Description: "Located in the United Kingdom"},
			{ID: 5, Name: "Verona", Description: "A city in Italy"},
			{ID: 9, Name: "test", Description: "Testing ground"},
			{ID: 11, Name: "Venice", Description: "A northeastern Italian city"},
			{ID: 13, Name: "Rome", Description: "Yet another Italian city"},
			{ID: 15, Name: "core team", Description: "Private discussions", InviteOnly: true, Subscribers: []int64{8, 10}},
		},
		Emoji: []Emoji{
			{ID: "1", Name: "green_tick", AuthorID: 8},
			{ID: "2", Name: "zulip_logo", AuthorID: 8},
		},
	}
}

// realmIndex is the realm with lookups the handlers need.
type realmIndex struct {
	Realm
	usersByID    map[int64]*User
	usersByEmail map[string]*User // lower-cased email
	streamsByID  map[int64]*Stream
	streamsByKey map[string]*Stream // lower-cased name
}

func newRealmIndex(r Realm, bots []Bot) (*realmIndex, error) {
	if len(r.Users) == 0 && len(r.Streams) == 0 {
		def := DefaultRealm()
		def.URL = r.URL
		if r.Name != "" {
			def.Name = r.Name
		}
		r = def
	}
	if r.ID == 0 {
		r.ID = 2
	}
	if r.StringID == "" {
		r.StringID = "zulip"
	}
	if r.Name == "" {
		r.Name = "Zulip Simulator"
	}
	r.Users = slices.Clone(r.Users)
	r.Streams = slices.Clone(r.Streams)
	r.Emoji = slices.Clone(r.Emoji)
	ix := &realmIndex{
		usersByID:    map[int64]*User{},
		usersByEmail: map[string]*User{},
		streamsByID:  map[int64]*Stream{},
		streamsByKey: map[string]*Stream{},
	}
	var maxID int64
	for _, u := range r.Users {
		maxID = max(maxID, u.ID)
	}
	for _, b := range bots {
		if !slices.ContainsFunc(r.Users, func(u User) bool { return strings.EqualFold(u.Email, b.Email) }) {
			maxID++
			name, _, _ := strings.Cut(b.Email, "@")
			r.Users = append(r.Users, User{ID: maxID, Email: b.Email, FullName: name, IsBot: true})
		}
	}
	for i := range r.Users {
		u := &r.Users[i]
		if u.ID <= 0 || u.Email == "" {
			return nil, fmt.Errorf("realm user %d %q: a user needs a positive id and an email", u.ID, u.Email)
		}
		if u.Role == 0 {
			u.Role = RoleMember
		}
		if u.FullName == "" {
			u.FullName = u.Email
		}
		key := strings.ToLower(u.Email)
		if _, dup := ix.usersByEmail[key]; dup {
			return nil, fmt.Errorf("realm user %q: duplicate email", u.Email)
		}
		if _, dup := ix.usersByID[u.ID]; dup {
			return nil, fmt.Errorf("realm user %q: duplicate id %d", u.Email, u.ID)
		}
		ix.usersByEmail[key] = u
		ix.usersByID[u.ID] = u
	}
	for i := range r.Streams {
		s := &r.Streams[i]
		if s.ID <= 0 || s.Name == "" {
			return nil, fmt.Errorf("realm stream %d %q: a stream needs a positive id and a name", s.ID, s.Name)
		}
		key := strings.ToLower(s.Name)
		if _, dup := ix.streamsByKey[key]; dup {
			return nil, fmt.Errorf("realm stream %q: duplicate name", s.Name)
		}
		if _, dup := ix.streamsByID[s.ID]; dup {
			return nil, fmt.Errorf("realm stream %q: duplicate id %d", s.Name, s.ID)
		}
		for _, id := range s.Subscribers {
			if _, ok := ix.usersByID[id]; !ok {
				return nil, fmt.Errorf("realm stream %q: subscriber %d is not a realm user", s.Name, id)
			}
		}
		ix.streamsByKey[key] = s
		ix.streamsByID[s.ID] = s
	}
	ix.Realm = r
	return ix, nil
}

func (ix *realmIndex) userByEmail(email string) *User {
	return ix.usersByEmail[strings.ToLower(strings.TrimSpace(email))]
}

func (ix *realmIndex) streamByName(name string) *Stream {
	return ix.streamsByKey[strings.ToLower(name)]
}

// subscribed reports whether the user is subscribed to the stream.
func (s *Stream) subscribed(userID int64) bool {
	return s.Subscribers == nil || slices.Contains(s.Subscribers, userID)
}

// subscriberIDs lists the stream's subscribers in ascending order.
func (ix *realmIndex) subscriberIDs(s *Stream) []int64 {
	if s.Subscribers != nil {
		ids := slices.Clone(s.Subscribers)
		slices.Sort(ids)
		return ids
	}
	ids := make([]int64, 0, len(ix.Users))
	for _, u := range ix.Users {
		ids = append(ids, u.ID)
	}
	slices.Sort(ids)
	return ids
}

// canRead reports whether the user may read the stream's messages: Zulip
// shows public streams' history to every member, private ones to
// subscribers only.
func (s *Stream) canRead(userID int64) bool {
	return !s.InviteOnly || s.subscribed(userID)
}
