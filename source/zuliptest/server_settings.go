package zuliptest

// handleServerSettings is GET /api/v1/server_settings, served without
// authentication.
func (s *Server) handleServerSettings(c *call) {
	url := s.baseURL(c.r)
	c.ok(object{
		{"authentication_methods", object{
			{"password", true}, {"dev", false}, {"email", true}, {"ldap", false}, {"remoteuser", false},
			{"github", false}, {"azuread", false}, {"gitlab", false}, {"apple", false}, {"google", false},
			{"saml", false}, {"openid connect", false},
		}},
		{"external_authentication_methods", []any{}},
		{"zulip_feature_level", s.cfg.FeatureLevel},
		{"zulip_version", s.cfg.ZulipVersion},
		{"zulip_merge_base", s.cfg.MergeBase},
		{"push_notifications_enabled", false},
		{"is_incompatible", false},
		{"email_auth_enabled", true},
		{"require_email_format_usernames", true},
		{"realm_uri", url},
		{"realm_url", url},
		{"realm_name", s.realm.Name},
		{"realm_icon", url + "/static/images/logo/zulip-icon-128x128.png"},
		{"realm_description", "<p>The Zulip simulator.</p>"},
		{"realm_web_public_access_enabled", false},
	})
}
