package snmpconf

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iadsafe/iad-agent/agent/snmp/usm"
)

func TestLoadFull(t *testing.T) {
	src := filepath.Join("testdata", "full.conf")
	path := filepath.Join(t.TempDir(), "snmp.conf")
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.EngineID) != 13 || c.EngineID[0] != 0x80 || !c.AuthenTraps {
		t.Errorf("engine ID %x, authentication traps %v", c.EngineID, c.AuthenTraps)
	}
	if len(c.Communities) != 2 || c.Communities[0].Name != "public" || c.Communities[0].Write || c.Communities[1].Name != "the private one" || !c.Communities[1].Write {
		t.Errorf("communities: %+v", c.Communities)
	}
	if len(c.Users) != 5 {
		t.Fatalf("got %d users, want 5", len(c.Users))
	}
	admin, ops, keyed, guest := c.Users[0], c.Users[2], c.Users[3], c.Users[4]
	if admin.Credentials == nil || admin.Credentials.Auth != usm.SHA512 || admin.Credentials.Priv != usm.AES256 || !admin.Write {
		t.Errorf("admin: %+v", admin)
	}
	if c.Users[1].Write || c.Users[1].Credentials.Priv != usm.NoPriv {
		t.Errorf("monitor: %+v", c.Users[1])
	}
	if ops.MinLevel != usm.AuthNoPriv || ops.WriteLevel != usm.AuthPriv {
		t.Errorf("ops levels: %v %v", ops.MinLevel, ops.WriteLevel)
	}
	if keyed.Keys == nil || keyed.Keys.Auth != usm.MD5 || len(keyed.Keys.AuthKey) != 16 || keyed.Keys.Priv != usm.DES || len(keyed.Keys.PrivKey) != 16 {
		t.Errorf("keyed: %+v", keyed.Keys)
	}
	if guest.Credentials != nil || guest.Keys != nil || guest.Write {
		t.Errorf("guest: %+v", guest)
	}
	if len(c.Notify) != 4 {
		t.Fatalf("got %d destinations, want 4", len(c.Notify))
	}
	if d := c.Notify[1]; d.Addr != "[::1]:10162" || !d.Inform || d.Version != 2 || d.Retries != 3 || d.Timeout != 500*time.Millisecond {
		t.Errorf("v2c inform: %+v", d)
	}
	if d := c.Notify[3]; d.Version != 3 || !d.Inform || d.User != "admin" || d.Credentials == nil {
		t.Errorf("v3 inform: %+v", d)
	}
}

func TestWorldReadable(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret.conf")
	os.WriteFile(secret, []byte("community public ro\n"), 0o644)
	if _, err := Load(secret); !errors.Is(err, ErrWorldReadable) {
		t.Errorf("world-readable file with a community: got %v, want ErrWorldReadable", err)
	}
	harmless := filepath.Join(dir, "harmless.conf")
	os.WriteFile(harmless, []byte("authentication-traps on\nuser guest\n"), 0o644)
	if _, err := Load(harmless); err != nil {
		t.Errorf("world-readable file without secrets: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	const secret = "s3cr3t-pass-phrase"
	for _, tt := range []struct{ name, conf string }{
		{"unknown directive", "frobnicate on"},
		{"bad engine id", "engine-id 0x1234"},
		{"engine id not hex", "engine-id zz"},
		{"traps value", "authentication-traps maybe"},
		{"community access", "community public admin"},
		{"community twice", "community a ro\ncommunity a rw"},
		{"user twice", "user a\nuser a"},
		{"unknown auth", "user a auth SHA3 " + secret},
		{"short pass phrase", "user a auth SHA short"},
		{"priv without auth", "user a priv AES " + secret},
		{"unquoted spaces", "user a auth SHA " + secret + " more words"},
		{"missing pass phrase", "user a auth SHA"},
		{"keys and phrases", "user a auth-key MD5 526f5eed9fcce26f8964c2930787d82b priv AES " + secret},
		{"short key", "user a auth-key SHA 526f5eed9fcce26f8964c2930787d82b"},
		{"min level above keys", "user a auth SHA " + secret + " min-level authPriv"},
		{"unterminated quote", `user a auth SHA "` + secret},
		{"notify bad addr", "notify localhost v2c trap public"},
		{"notify bad version", "notify 127.0.0.1:162 v1 trap public"},
		{"notify unknown user", "notify 127.0.0.1:162 v3 trap nobody"},
		{"notify user without priv", "user a auth SHA " + secret + "\nnotify 127.0.0.1:162 v3 trap a"},
		{"inform with localized keys", "user a auth-key MD5 526f5eed9fcce26f8964c2930787d82b priv-key AES 526f5eed9fcce26f8964c2930787d82b\nnotify 127.0.0.1:162 v3 inform a"},
		{"trap retries", "notify 127.0.0.1:162 v2c trap public retries 3"},
		{"bad timeout", "notify 127.0.0.1:162 v2c inform public timeout forever"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tt.conf), "test.conf")
			if err == nil {
				t.Fatalf("accepted %q", tt.conf)
			}
			if !errors.Is(err, ErrSyntax) {
				t.Errorf("got %v, want ErrSyntax", err)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error shows the pass phrase: %v", err)
			}
			if !strings.Contains(err.Error(), "test.conf:") {
				t.Errorf("error does not say where: %v", err)
			}
		})
	}
}
