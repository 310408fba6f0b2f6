// Package snmpconf reads the agent's SNMP access configuration file
// (iad-agent -snmp-config FILE): communities, SNMPv3 users, notification
// destinations, the engine ID and snmpEnableAuthenTraps.
//
// The format, one directive per line ('#' starts a comment, a value with
// spaces goes in double quotes, \" and \\ escape inside them):
//
//	engine-id 0x80007ed90501020304050607       # optional; default: generated once, kept in the journal
//	authentication-traps on                    # snmpEnableAuthenTraps; default off
//	community NAME ro|rw
//	user NAME [auth PROTO PASSPHRASE | auth-key PROTO HEX]
//	          [priv PROTO PASSPHRASE | priv-key PROTO HEX]
//	          [ro|rw] [min-level LEVEL] [write-level LEVEL]
//	notify HOST:PORT v2c trap|inform COMMUNITY [retries N] [timeout DURATION]
//	notify HOST:PORT v3 trap|inform USER [retries N] [timeout DURATION]
//
// PROTO is MD5, SHA, SHA-224, SHA-256, SHA-384 or SHA-512 for auth and
// DES, AES, AES-192 or AES-256 for priv; LEVEL is noAuthNoPriv, authNoPriv
// or authPriv. Keys given as HEX are localized to the engine ID (so
// engine-id should be set with them). A user is read-only unless rw; it
// is served only at min-level or above (default: the strongest its keys
// allow) and may SET only at write-level or above (default: min-level).
//
// It must never put a pass phrase, key or community into an error, a log
// line or a String: they are passwords. Pass phrases are hashed into
// master keys while parsing and not kept. A file that holds secrets and
// is readable by everyone is refused.
package snmpconf

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/iadsafe/iad-agent/agent/snmp"
	"github.com/iadsafe/iad-agent/agent/snmp/usm"
)

var (
	// ErrSyntax reports a line that is not a valid directive.
	ErrSyntax = errors.New("snmpconf: syntax error")
	// ErrWorldReadable reports a file holding secrets that anyone may read.
	ErrWorldReadable = errors.New("snmpconf: file holding secrets is world-readable")
)

// Destination is one notification destination.
type Destination struct {
	Addr      string // HOST:PORT
	Version   int    // 2 (v2c) or 3
	Inform    bool   // acknowledged inform instead of a trap
	Community string // v2c
	// User names an SNMPv3 user defined in the same file; Credentials are
	// its master keys (informs localize them to the receiver's engine).
	User        string
	Credentials *usm.Credentials
	Retries     int           // informs: tries after the first; 0 = default
	Timeout     time.Duration // informs: first wait for the ack; 0 = default
}

// String never shows the community.
func (d Destination) String() string {
	kind := "trap"
	if d.Inform {
		kind = "inform"
	}
	if d.Version == 3 {
		return fmt.Sprintf("%s v3 %s user %s", d.Addr, kind, d.User)
	}
	return fmt.Sprintf("%s v2c %s", d.Addr, kind)
}

// Config is the parsed file.
type Config struct {
	EngineID    []byte // nil: generated and persisted by the agent
	AuthenTraps bool
	Communities []snmp.Community
	Users       []snmp.User
	Notify      []Destination
}

// HasSecrets reports whether the configuration holds communities or keys.
func (c *Config) HasSecrets() bool {
	if len(c.Communities) > 0 {
		return true
	}
	for _, u := range c.Users {
		if u.Credentials != nil || u.Keys != nil {
			return true
		}
	}
	for _, d := range c.Notify {
		if d.Community != "" {
			return true
		}
	}
	return false
}

// Load reads and parses path, refusing it if it holds secrets and is
// world-readable.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("snmpconf: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("snmpconf: %w", err)
	}
	c, err := Parse(f, path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o004 != 0 && c.HasSecrets() {
		return nil, fmt.Errorf("%w: %s (mode %v): chmod o-r it", ErrWorldReadable, path, fi.Mode().Perm())
	}
	return c, nil
}

// Parse reads a configuration; name labels errors ("FILE:LINE: …").
func Parse(r io.Reader, name string) (*Config, error) {
	c := &Config{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64<<10)
	line := 0
	seenUser := map[string]bool{}
	seenCommunity := map[string]bool{}
	type pendingNotify struct {
		line int
		d    Destination
	}
	var pending []pendingNotify
	for sc.Scan() {
		line++
		words, err := split(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("%w: %s:%d: %v", ErrSyntax, name, line, err)
		}
		if len(words) == 0 {
			continue
		}
		fail := func(format string, args ...any) error {
			return fmt.Errorf("%w: %s:%d: %s: %s", ErrSyntax, name, line, words[0], fmt.Sprintf(format, args...))
		}
		switch words[0] {
		case "engine-id":
			if len(words) != 2 {
				return nil, fail("want engine-id HEX")
			}
			id, err := parseHex(words[1])
			if err != nil || len(id) < 5 || len(id) > 32 {
				return nil, fail("want 5 to 32 octets in hex")
			}
			c.EngineID = id
		case "authentication-traps":
			if len(words) != 2 || (words[1] != "on" && words[1] != "off") {
				return nil, fail("want on or off")
			}
			c.AuthenTraps = words[1] == "on"
		case "community":
			if len(words) != 3 || (words[2] != "ro" && words[2] != "rw") {
				return nil, fail("want community NAME ro|rw")
			}
			if seenCommunity[words[1]] {
				return nil, fail("community defined twice")
			}
			seenCommunity[words[1]] = true
			c.Communities = append(c.Communities, snmp.Community{Name: words[1], Write: words[2] == "rw"})
		case "user":
			u, err := parseUser(words)
			if err != nil {
				return nil, fail("%v", err)
			}
			if seenUser[u.Name] {
				return nil, fail("user %q defined twice", u.Name)
			}
			seenUser[u.Name] = true
			c.Users = append(c.Users, u)
		case "notify":
			d, err := parseNotify(words)
			if err != nil {
				return nil, fail("%v", err)
			}
			pending = append(pending, pendingNotify{line, d})
		default:
			return nil, fmt.Errorf("%w: %s:%d: unknown directive %q", ErrSyntax, name, line, words[0])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("snmpconf: %s: %w", name, err)
	}
	// Users may be defined after the destinations that name them.
	for _, p := range pending {
		d := p.d
		if d.Version == 3 {
			u, ok := findUser(c.Users, d.User)
			if !ok {
				return nil, fmt.Errorf("%w: %s:%d: notify: no user %q in this file", ErrSyntax, name, p.line, d.User)
			}
			if u.Credentials == nil && u.Keys == nil {
				return nil, fmt.Errorf("%w: %s:%d: notify: user %q has no keys; v3 notifications are sent authPriv", ErrSyntax, name, p.line, d.User)
			}
			if lvl := userLevel(u); lvl != usm.AuthPriv {
				return nil, fmt.Errorf("%w: %s:%d: notify: user %q has no privacy key; v3 notifications are sent authPriv", ErrSyntax, name, p.line, d.User)
			}
			if d.Inform && u.Credentials == nil {
				return nil, fmt.Errorf("%w: %s:%d: notify: informs to user %q need pass phrases (auth/priv), not localized keys: they are localized to the receiver's engine", ErrSyntax, name, p.line, d.User)
			}
			d.Credentials = u.Credentials
		}
		c.Notify = append(c.Notify, d)
	}
	return c, nil
}

func findUser(users []snmp.User, name string) (snmp.User, bool) {
	for _, u := range users {
		if u.Name == name {
			return u, true
		}
	}
	return snmp.User{}, false
}

func userLevel(u snmp.User) usm.Level {
	switch {
	case u.Credentials != nil:
		return (&usm.Keys{Auth: u.Credentials.Auth, Priv: u.Credentials.Priv}).Level()
	case u.Keys != nil:
		return u.Keys.Level()
	}
	return usm.NoAuthNoPriv
}

// parseUser reads a user line. Errors name positions, never values, as
// a mistyped pass phrase would otherwise end up in the log.
func parseUser(w []string) (snmp.User, error) {
	if len(w) < 2 || w[1] == "" || len(w[1]) > 32 {
		return snmp.User{}, errors.New("want user NAME (1..32 octets) …")
	}
	u := snmp.User{Name: w[1]}
	auth, priv := usm.NoAuth, usm.NoPriv
	var authPass, privPass string
	var authKey, privKey []byte
	haveAuth, havePriv := false, false
	for i := 2; i < len(w); i++ {
		arg := func(n int) ([]string, error) {
			if i+n >= len(w) {
				return nil, fmt.Errorf("word %d (%s) needs %d values", i+1, w[i], n)
			}
			a := w[i+1 : i+1+n]
			i += n
			return a, nil
		}
		switch kw := w[i]; kw {
		case "auth", "auth-key":
			if haveAuth {
				return u, errors.New("authentication given twice")
			}
			haveAuth = true
			a, err := arg(2)
			if err != nil {
				return u, err
			}
			if auth, err = usm.ParseAuthProtocol(a[0]); err != nil || auth == usm.NoAuth {
				return u, fmt.Errorf("word %d: unknown authentication protocol (want MD5, SHA, SHA-224, SHA-256, SHA-384, SHA-512)", i)
			}
			if kw == "auth" {
				authPass = a[1]
			} else if authKey, err = parseHex(a[1]); err != nil {
				return u, fmt.Errorf("word %d: auth-key is not hex", i+1)
			}
		case "priv", "priv-key":
			if havePriv {
				return u, errors.New("privacy given twice")
			}
			havePriv = true
			a, err := arg(2)
			if err != nil {
				return u, err
			}
			if priv, err = usm.ParsePrivProtocol(a[0]); err != nil || priv == usm.NoPriv {
				return u, fmt.Errorf("word %d: unknown privacy protocol (want DES, AES, AES-192, AES-256)", i)
			}
			if kw == "priv" {
				privPass = a[1]
			} else if privKey, err = parseHex(a[1]); err != nil {
				return u, fmt.Errorf("word %d: priv-key is not hex", i+1)
			}
		case "ro", "rw":
			u.Write = kw == "rw"
		case "min-level", "write-level":
			a, err := arg(1)
			if err != nil {
				return u, err
			}
			l, err := usm.ParseLevel(a[0])
			if err != nil {
				return u, fmt.Errorf("word %d: %v", i+1, err)
			}
			if kw == "min-level" {
				u.MinLevel = l
			} else {
				u.WriteLevel = l
			}
		default:
			return u, fmt.Errorf("word %d is not auth, auth-key, priv, priv-key, ro, rw, min-level or write-level (a pass phrase with spaces needs double quotes)", i+1)
		}
	}
	if havePriv && !haveAuth {
		return u, errors.New("privacy needs authentication")
	}
	keyForm, passForm := authKey != nil || privKey != nil, authPass != "" || privPass != ""
	if keyForm && passForm {
		return u, errors.New("give pass phrases or localized keys, not both")
	}
	switch {
	case keyForm:
		u.Keys = &usm.Keys{Auth: auth, AuthKey: authKey, Priv: priv, PrivKey: privKey}
		if priv != usm.NoPriv && len(privKey) > priv.KeyLen() {
			// net-snmp prints DES keys as the whole localized key.
			u.Keys.PrivKey = privKey[:priv.KeyLen()]
		}
		if err := u.Keys.Validate(); err != nil {
			return u, err
		}
	case haveAuth:
		c, err := usm.CredentialsFromPasswords(auth, authPass, priv, privPass)
		if err != nil {
			return u, err
		}
		u.Credentials = c
	}
	lvl := userLevel(u)
	if u.MinLevel > lvl {
		return u, fmt.Errorf("min-level %v needs keys the user does not have", u.MinLevel)
	}
	if u.WriteLevel > lvl || (u.WriteLevel != 0 && u.WriteLevel < u.MinLevel) {
		return u, fmt.Errorf("write-level %v outside the levels the user is served at", u.WriteLevel)
	}
	return u, nil
}

func parseNotify(w []string) (Destination, error) {
	if len(w) < 5 {
		return Destination{}, errors.New("want notify HOST:PORT v2c|v3 trap|inform COMMUNITY|USER [retries N] [timeout DURATION]")
	}
	d := Destination{Addr: w[1]}
	host, port, err := net.SplitHostPort(d.Addr)
	if err != nil || host == "" {
		return d, errors.New("destination is not HOST:PORT")
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return d, errors.New("destination port is not 1..65535")
	}
	switch w[2] {
	case "v2c":
		d.Version = 2
	case "v3":
		d.Version = 3
	default:
		return d, errors.New("version is not v2c or v3")
	}
	switch w[3] {
	case "trap":
	case "inform":
		d.Inform = true
	default:
		return d, errors.New("kind is not trap or inform")
	}
	if d.Version == 2 {
		d.Community = w[4]
	} else {
		d.User = w[4]
	}
	for i := 5; i < len(w); i += 2 {
		if i+1 >= len(w) {
			return d, fmt.Errorf("word %d needs a value", i+1)
		}
		switch w[i] {
		case "retries":
			n, err := strconv.Atoi(w[i+1])
			if err != nil || n < 0 || n > 100 {
				return d, errors.New("retries is not 0..100")
			}
			d.Retries = n
		case "timeout":
			t, err := time.ParseDuration(w[i+1])
			if err != nil || t < 10*time.Millisecond || t > 5*time.Minute {
				return d, errors.New("timeout is not a duration in 10ms..5m")
			}
			d.Timeout = t
		default:
			return d, fmt.Errorf("word %d is not retries or timeout", i+1)
		}
	}
	if !d.Inform && (d.Retries != 0 || d.Timeout != 0) {
		return d, errors.New("retries and timeout apply to informs only")
	}
	return d, nil
}

func parseHex(s string) ([]byte, error) {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	s = strings.ReplaceAll(s, ":", "")
	b, err := hex.DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil, errors.New("not hex")
	}
	return b, nil
}

// split cuts a line into words: blanks separate them, "…" quotes (with \"
// and \\ inside), # outside quotes starts a comment.
func split(line string) ([]string, error) {
	var words []string
	var cur bytes.Buffer
	inWord, quoted := false, false
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case quoted && ch == '\\' && i+1 < len(line) && (line[i+1] == '"' || line[i+1] == '\\'):
			i++
			cur.WriteByte(line[i])
		case quoted && ch == '"':
			quoted = false
		case quoted:
			cur.WriteByte(ch)
		case ch == '"':
			quoted, inWord = true, true
		case ch == '#':
			i = len(line)
		case ch == ' ' || ch == '\t' || ch == '\r':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	if quoted {
		return nil, errors.New("unterminated quote")
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}
