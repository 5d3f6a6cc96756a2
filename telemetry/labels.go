package telemetry

import "net/http"

// otherLabel replaces every label value outside an allow-list, so that no
// input (a new Zulip event type, a hostile server's paths) can grow the
// number of series.
const otherLabel = "other"

// eventTypes are the event types Zulip servers send, from the server's
// event schema (zerver/lib/event_types.py) and the API documentation's
// GET /events, plus "bridge" for the bridge's own control events. A type
// added by a later Zulip release is counted as "other" until it is listed.
var eventTypes = []string{
	"alert_words",
	"attachment",
	"bridge",
	"channel_folder",
	"custom_profile_fields",
	"default_stream_groups",
	"default_streams",
	"delete_message",
	"device",
	"drafts",
	"has_webex_token",
	"has_zoom_token",
	"heartbeat",
	"invites_changed",
	"message",
	"muted_topics",
	"muted_users",
	"navigation_view",
	"onboarding_steps",
	"one_time_notice",
	"presence",
	"reaction",
	"realm",
	"realm_bot",
	"realm_domains",
	"realm_emoji",
	"realm_export",
	"realm_export_consent",
	"realm_filters",
	"realm_linkifiers",
	"realm_playgrounds",
	"realm_user",
	"realm_user_settings_defaults",
	"reminders",
	"restart",
	"saved_snippets",
	"scheduled_messages",
	"stream",
	"submessage",
	"subscription",
	"typing",
	"typing_edit_message",
	"update_display_settings",
	"update_global_notifications",
	"update_message",
	"update_message_flags",
	"user_group",
	"user_settings",
	"user_status",
	"user_topic",
	"web_reload_client",
}

// Skip reasons the pipeline reports (pipeline.Observer.OnSkipped).
var skipReasons = []string{"heartbeat", "duplicate"}

// initialSkips are the {type, reason} series of
// zulip_bridge_events_skipped_total that exist at 0 from the start, one per
// skip reason, so that rate(...{reason="duplicate"}[5m]) is 0, not empty,
// before the first skip.
var initialSkips = [][2]string{{"heartbeat", "heartbeat"}, {"message", "duplicate"}}

// zulipEndpoints are the API paths, below /api/v1/, that the bridge and
// `bridge check` call. Anything else is counted as "other": a path may hold
// ids (/messages/42) and a label must not.
var zulipEndpoints = []string{
	"register",
	"events",
	"messages",
	"server_settings",
	"users/me",
}

// httpMethods are the request methods counted by name.
var httpMethods = []string{
	http.MethodGet, http.MethodPost, http.MethodDelete, http.MethodPut, http.MethodPatch, http.MethodHead,
}

// Publish error kinds (zulip_bridge_publish_errors_total's "kind").
const (
	errPartial  = "partial"  // a *sink.PublishError: part of the batch was confirmed
	errTimeout  = "timeout"  // a deadline passed
	errCanceled = "canceled" // the context was cancelled (shutdown)
	errOther    = "error"    // nothing of the batch may be taken as confirmed
)

var publishErrorKinds = []string{errPartial, errTimeout, errCanceled, errOther}

// Queue registration reasons (zulip_bridge_queue_registrations_total).
const (
	regInitial   = "initial"
	regQueueLost = "queue_lost"
)
