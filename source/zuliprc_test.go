package source

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The official client (python-zulip-api, zulip/__init__.py): with no config
// file given and ZULIP_CONFIG unset, $HOME/.zuliprc; ZULIP_CONFIG set, even
// empty, names the file and disables the default.
func TestHomeZuliprc(t *testing.T) {
	home := t.TempDir()
	tests := []struct {
		environ []string
		want    string
	}{
		{[]string{"HOME=" + home}, filepath.Join(home, ".zuliprc")},
		{[]string{"HOME=" + home, "ZULIP_CONFIG=/etc/zulip/zuliprc"}, ""},
		{[]string{"HOME=" + home, "ZULIP_CONFIG="}, ""},
		{[]string{"ZULIP_SITE=chat.example.com"}, ""},
		{[]string{"HOME="}, ""},
	}
	for _, tt := range tests {
		if got := HomeZuliprc(tt.environ); got != tt.want {
			t.Errorf("HomeZuliprc(%q) = %q, want %q", tt.environ, got, tt.want)
		}
	}
}

// homeConfig is a Config as the bridge builds it from environ: the
// variables, then DefaultConfigFile from HomeZuliprc. HOME is a temporary
// directory, never the developer's.
func homeConfig(t *testing.T, rc string, cfg Config) (Config, string) {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home) // in case anything reads the process's HOME
	path := filepath.Join(home, ".zuliprc")
	if rc != "" {
		if err := os.WriteFile(path, []byte(rc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg.DefaultConfigFile = HomeZuliprc([]string{"HOME=" + home})
	return cfg, path
}

func TestHomeZuliprcFallback(t *testing.T) {
	const rc = "[api]\nemail=home-bot@example.com\nkey=" + testKey + "\nsite=localhost:9991\n"

	t.Run("read when ZULIP_CONFIG is unset", func(t *testing.T) {
		c, path := homeConfig(t, rc, Config{})
		if err := c.Resolve(); err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		if c.Site != "localhost:9991" || c.Email != "home-bot@example.com" || c.APIKey != testKey {
			t.Errorf("site, email = %q, %q (key from file: %v)", c.Site, c.Email, c.APIKey == testKey)
		}
		want := "site, email, key from " + path + " ($HOME/.zuliprc, read as ZULIP_CONFIG is unset)"
		if got := c.CredentialsOrigin(); got != want {
			t.Errorf("origin = %q, want %q", got, want)
		}
		// The official client's localhost rule: http, not https.
		site, _ := ParseSite(c.Site)
		if site.String() != "http://localhost:9991" {
			t.Errorf("site = %s, want http://localhost:9991", site)
		}
	})

	t.Run("variables win over it", func(t *testing.T) {
		c, path := homeConfig(t, rc, Config{Site: "https://chat.example.com", Email: "env-bot@example.com"})
		if err := c.Resolve(); err != nil {
			t.Fatal(err)
		}
		if c.Site != "https://chat.example.com" || c.Email != "env-bot@example.com" || c.APIKey != testKey {
			t.Errorf("site, email = %q, %q (key from file: %v)", c.Site, c.Email, c.APIKey == testKey)
		}
		want := "ZULIP_SITE, ZULIP_EMAIL from the environment; key from " + path + " ($HOME/.zuliprc, read as ZULIP_CONFIG is unset)"
		if got := c.CredentialsOrigin(); got != want {
			t.Errorf("origin = %q, want %q", got, want)
		}
	})

	t.Run("ZULIP_CONFIG wins over it", func(t *testing.T) {
		other := writeFile(t, "zuliprc", "[api]\nemail=etc-bot@example.com\nkey="+testKey+"\nsite=chat.example.com\n")
		c, _ := homeConfig(t, rc, Config{ConfigFile: other})
		if err := c.Resolve(); err != nil {
			t.Fatal(err)
		}
		if c.Email != "etc-bot@example.com" {
			t.Errorf("email = %q, want ZULIP_CONFIG's", c.Email)
		}
		want := "site, email, key from " + other + " (named by ZULIP_CONFIG)"
		if got := c.CredentialsOrigin(); got != want {
			t.Errorf("origin = %q, want %q", got, want)
		}
	})

	t.Run("missing is no error", func(t *testing.T) {
		c, path := homeConfig(t, "", Config{Site: "chat.example.com", Email: "bot@example.com", APIKey: testKey})
		if err := c.Resolve(); err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		want := "ZULIP_SITE, ZULIP_EMAIL, ZULIP_API_KEY from the environment; no zuliprc: ZULIP_CONFIG is unset and " + path + " does not exist"
		if got := c.CredentialsOrigin(); got != want {
			t.Errorf("origin = %q, want %q", got, want)
		}
	})

	t.Run("missing, nothing set: the errors say where they looked", func(t *testing.T) {
		c, path := homeConfig(t, "", Config{})
		if err := c.Resolve(); err != nil {
			t.Fatal(err)
		}
		err := c.Validate()
		if err == nil {
			t.Fatal("Validate succeeded without credentials")
		}
		for _, w := range []string{"ZULIP_SITE: is not set (nor site in a zuliprc: ZULIP_CONFIG is unset and " + path + " does not exist)",
			"ZULIP_EMAIL: is not set (nor email in a zuliprc", "ZULIP_API_KEY: is not set (nor ZULIP_API_KEY_FILE, nor key in a zuliprc"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q lacks %q", err, w)
			}
		}
	})

	t.Run("incomplete: the errors name the file", func(t *testing.T) {
		c, path := homeConfig(t, "[api]\nsite=chat.example.com\n", Config{})
		if err := c.Resolve(); err != nil {
			t.Fatal(err)
		}
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), "ZULIP_EMAIL: is not set (nor email in "+path+")") {
			t.Errorf("Validate = %v, want the missing email in %s", err, path)
		}
	})

	t.Run("broken is an error naming it", func(t *testing.T) {
		c, path := homeConfig(t, "[api]\n"+testKey+"\n", Config{})
		err := c.Resolve()
		if err == nil {
			t.Fatal("Resolve read a broken ~/.zuliprc")
		}
		for _, w := range []string{"ZULIP_CONFIG: is unset, so " + path + ": line 2", "(example: ZULIP_CONFIG=/etc/zulip/zuliprc)"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q lacks %q", err, w)
			}
		}
		if strings.Contains(err.Error(), testKey) {
			t.Errorf("error shows the key: %v", err)
		}
	})

	t.Run("a directory is an error", func(t *testing.T) {
		c, path := homeConfig(t, "", Config{})
		if err := os.Mkdir(path, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := c.Resolve(); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("Resolve = %v, want an error naming %s", err, path)
		}
	})

	t.Run("not read without DefaultConfigFile", func(t *testing.T) {
		// A Config built in code reads no home directory's file.
		c, _ := homeConfig(t, rc, Config{})
		c.DefaultConfigFile = ""
		if err := c.Resolve(); err != nil {
			t.Fatal(err)
		}
		if c.Site != "" || c.Email != "" || c.APIKey != "" {
			t.Errorf("read $HOME/.zuliprc without DefaultConfigFile: site %q, email %q", c.Site, c.Email)
		}
	})

	t.Run("Validate before Resolve", func(t *testing.T) {
		c, _ := homeConfig(t, rc, Config{})
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "Resolve") {
			t.Errorf("Validate before Resolve = %v, want a call-Resolve error", err)
		}
	})
}

// The official client's scheme rule: a site without a scheme gets
// "http://" if it starts with "localhost" (case-sensitive, any such prefix),
// else "https://".
func TestSiteLocalhostRule(t *testing.T) {
	tests := []struct{ in, want string }{
		{"localhost:9991", "http://localhost:9991"},
		{"localhost", "http://localhost"},
		{"localhost:9991/", "http://localhost:9991"},
		{"localhost.localdomain:9991", "http://localhost.localdomain:9991"},
		{"chat.example.com", "https://chat.example.com"},
		{"127.0.0.1:9991", "https://127.0.0.1:9991"},
		{"LOCALHOST:9991", "https://localhost:9991"},
		{"https://localhost:9991", "https://localhost:9991"},
		{"http://chat.example.com", "http://chat.example.com"},
	}
	for _, tt := range tests {
		s, err := ParseSite(tt.in)
		if err != nil {
			t.Errorf("ParseSite(%q): %v", tt.in, err)
			continue
		}
		if s.String() != tt.want {
			t.Errorf("ParseSite(%q) = %s, want %s", tt.in, s, tt.want)
		}
	}
}
