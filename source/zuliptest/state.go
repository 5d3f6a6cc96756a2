package zuliptest

import (
	"strconv"
	"time"
)

// dateCreated is the creation time reported for streams and users: the
// realm has no history before the simulator starts, so a fixed instant
// keeps responses deterministic.
var dateCreated = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// initialStateLocked builds the register response's initial state for the
// fetched types the simulator models: message (max_message_id),
// realm_emoji, subscription, stream, realm_user and realm.
func (s *Server) initialStateLocked(c *call, q *queue, want func(string) bool, includeSubscribers bool) object {
	var st object
	user := c.user
	if want("message") {
		var maxID int64 = -1
		for i := len(s.messages.all) - 1; i >= 0; i-- {
			if m := s.messages.all[i]; s.canSee(user.ID, m) {
				maxID = m.id
				break
			}
		}
		st = st.with("max_message_id", maxID)
	}
	if want("realm_emoji") {
		emoji := object{}
		for _, e := range s.realm.Emoji {
			emoji = emoji.with(e.ID, object{
				{"id", e.ID},
				{"name", e.Name},
				{"source_url", "/user_avatars/" + strconv.FormatInt(s.realm.ID, 10) + "/emoji/images/" + e.ID + ".png"},
				{"deactivated", false},
				{"author_id", e.AuthorID},
				{"still_url", nil},
			})
		}
		st = st.with("realm_emoji", emoji)
	}
	if want("subscription") {
		subs, never := []object{}, []object{}
		for i := range s.realm.Streams {
			stream := &s.realm.Streams[i]
			if stream.subscribed(user.ID) {
				o := s.streamObject(stream)
				o = append(o,
					field{"color", streamColor(stream.ID)},
					field{"is_muted", false},
					field{"in_home_view", true},
					field{"pin_to_top", false},
					field{"desktop_notifications", nil},
					field{"audible_notifications", nil},
					field{"push_notifications", nil},
					field{"email_notifications", nil},
					field{"wildcard_mentions_notify", nil},
				)
				if includeSubscribers {
					o = o.with("subscribers", s.realm.subscriberIDs(stream))
				}
				subs = append(subs, o)
			} else if !stream.InviteOnly {
				o := s.streamObject(stream)
				if includeSubscribers {
					o = o.with("subscribers", s.realm.subscriberIDs(stream))
				}
				never = append(never, o)
			}
		}
		st = st.with("subscriptions", subs).with("unsubscribed", []object{}).with("never_subscribed", never)
	}
	if want("stream") {
		streams := []object{}
		for i := range s.realm.Streams {
			stream := &s.realm.Streams[i]
			if stream.canRead(user.ID) {
				streams = append(streams, s.streamObject(stream))
			}
		}
		st = st.with("streams", streams)
	}
	if want("realm_user") {
		users := make([]object, 0, len(s.realm.Users))
		for i := range s.realm.Users {
			users = append(users, s.userObject(&s.realm.Users[i], q.clientGravatar))
		}
		avatar := gravatarURL(user.Email)
		st = append(st,
			field{"realm_users", users},
			field{"realm_non_active_users", []object{}},
			field{"cross_realm_bots", []object{}},
			field{"avatar_source", "G"},
			field{"avatar_url_medium", avatar + "&s=500"},
			field{"avatar_url", avatar},
			field{"can_create_streams", user.Role <= RoleModerator},
			field{"can_subscribe_other_users", user.Role <= RoleModerator},
			field{"can_invite_others_to_realm", user.Role <= RoleAdmin},
			field{"is_admin", user.Role <= RoleAdmin},
			field{"is_owner", user.Role == RoleOwner},
			field{"is_moderator", user.Role == RoleModerator},
			field{"is_guest", user.Role == RoleGuest},
			field{"is_billing_admin", false},
			field{"user_id", user.ID},
			field{"email", user.Email},
			field{"delivery_email", user.Email},
			field{"full_name", user.FullName},
		)
	}
	if want("realm") {
		url := s.baseURL(c.r)
		st = append(st,
			field{"realm_name", s.realm.Name},
			field{"realm_description", "<p>The Zulip simulator.</p>"},
			field{"realm_uri", url},
			field{"realm_url", url},
			field{"realm_presence_disabled", false},
			field{"max_message_length", 10000},
			field{"max_topic_length", 60},
			field{"max_stream_name_length", 60},
			field{"max_stream_description_length", 1024},
			field{"server_generation", dateCreated.Unix()},
			field{"event_queue_longpoll_timeout_seconds", int64(s.cfg.LongpollTimeout / time.Second)},
		)
	}
	return st
}

// streamObject is a stream as the streams and subscriptions lists show it.
func (s *Server) streamObject(st *Stream) object {
	return object{
		{"stream_id", st.ID},
		{"name", st.Name},
		{"description", st.Description},
		{"rendered_description", renderMarkdown(st.Description)},
		{"date_created", dateCreated.Unix()},
		{"creator_id", nil},
		{"invite_only", st.InviteOnly},
		{"is_web_public", false},
		{"history_public_to_subscribers", !st.InviteOnly},
		{"first_message_id", s.firstMessageIDLocked(st.ID)},
		{"message_retention_days", nil},
		{"stream_post_policy", 1},
		{"is_announcement_only", false},
		{"can_remove_subscribers_group", 2},
		{"stream_weekly_traffic", nil},
	}
}

func (s *Server) firstMessageIDLocked(streamID int64) any {
	if list := s.messages.byStream[streamID]; len(list) > 0 {
		return list[0].id
	}
	return nil
}

// userObject is a user as realm_users shows it.
func (s *Server) userObject(u *User, clientGravatar bool) object {
	var avatar any
	if !clientGravatar {
		avatar = gravatarURL(u.Email)
	}
	o := object{
		{"user_id", u.ID},
		{"email", u.Email},
		{"delivery_email", nil},
		{"full_name", u.FullName},
		{"avatar_url", avatar},
		{"avatar_version", 1},
		{"is_admin", u.Role <= RoleAdmin},
		{"is_owner", u.Role == RoleOwner},
		{"is_guest", u.Role == RoleGuest},
		{"is_billing_admin", false},
		{"role", u.Role},
		{"is_bot", u.IsBot},
		{"timezone", ""},
		{"is_active", true},
		{"date_joined", dateCreated.Format(time.RFC3339)},
	}
	if u.IsBot {
		return append(o, field{"bot_type", 1}, field{"bot_owner_id", nil})
	}
	return o.with("profile_data", object{})
}

// streamColor picks a subscription color from Zulip's palette.
func streamColor(id int64) string {
	palette := []string{"#76ce90", "#fae589", "#a6c7e5", "#e79ab5", "#bfd56f", "#f4ae55", "#b0a5fd", "#addfe5"}
	return palette[int(id)%len(palette)]
}
