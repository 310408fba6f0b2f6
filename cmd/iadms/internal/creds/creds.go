// Package creds reads iadms's credentials file: the SNMP communities and
// SNMPv3 users that devices are reached with, and the logins of file
// servers. Targets and flags name an entry; the secrets themselves never
// appear on a command line.
//
// The file must not be readable or writable by other users (Load refuses
// it otherwise, as ssh does for its keys). The package must never let a
// secret reach a log, an error message, a report or a journal: Secret
// prints as "****" through every fmt verb, slog and encoding/json; only
// Reveal, called where the value goes on the wire, returns it.
//
// The format is line-oriented text, one entry per line:
//
//	# NAME   KIND  key=value …
//	lab      v2c   community=private read-community=public
//	core     v3    user=ops level=authPriv auth=SHA-256 auth-pass=… priv=AES priv-pass=…
//	files    ftp   user=iad password=…
//
// A value may be double-quoted (Go syntax) to hold spaces, '#' or '='.
// Unknown keys are errors, so a typo never silently drops a setting.
package creds

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// Errors returned by Load and Parse.
var (
	// ErrPermissions means the file is readable or writable by others, or
	// owned by another user.
	ErrPermissions = errors.New("creds: credentials file is not private")
	// ErrSyntax means a line cannot be parsed; the error names the line.
	ErrSyntax = errors.New("creds: syntax error")
	// ErrUnknown means a name that the file does not define.
	ErrUnknown = errors.New("creds: no such credentials entry")
	// ErrKind means an entry of the wrong kind for its use (an FTP login
	// where SNMP credentials are needed, or the reverse).
	ErrKind = errors.New("creds: wrong kind of credentials")
)

// Secret is a password, community or key. It prints as "****".
type Secret string

const redacted = "****"

// Reveal returns the secret itself, for the wire only.
func (s Secret) Reveal() string { return string(s) }

// String, GoString, Format, LogValue and MarshalText keep the secret out
// of every printed form.
func (s Secret) String() string                { return redacted }
func (s Secret) GoString() string              { return `creds.Secret("` + redacted + `")` }
func (s Secret) Format(f fmt.State, verb rune) { io.WriteString(f, redacted) }
func (s Secret) LogValue() slog.Value          { return slog.StringValue(redacted) }
func (s Secret) MarshalText() ([]byte, error)  { return []byte(redacted), nil }
func (s Secret) Empty() bool                   { return s == "" }

// Kind is what an entry is for.
type Kind string

const (
	KindV2c Kind = "v2c" // SNMPv2c communities
	KindV3  Kind = "v3"  // an SNMPv3 USM user
	KindFTP Kind = "ftp" // an FTP server login
)

// Level is an SNMPv3 security level.
type Level string

const (
	NoAuthNoPriv Level = "noAuthNoPriv"
	AuthNoPriv   Level = "authNoPriv"
	AuthPriv     Level = "authPriv"
)

// AuthProtocols and PrivProtocols are the names the file accepts, as
// net-snmp's tools spell them.
var (
	AuthProtocols = []string{"MD5", "SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512"}
	PrivProtocols = []string{"DES", "AES", "AES-192", "AES-256", "AES-192C", "AES-256C"}
)

// Entry is one line of the file.
type Entry struct {
	Name string
	Kind Kind

	// SNMPv2c: Community is used for everything (it must be the agent's
	// read-write community to start operations); ReadCommunity, if set, is
	// used by the read-only commands (status, watch).
	Community     Secret
	ReadCommunity Secret

	// SNMPv3 (RFC 3414): User, Level, Auth/AuthPass, Priv/PrivPass and an
	// optional Context name. FTP: User and Password.
	User     string
	Level    Level
	Auth     string
	AuthPass Secret
	Priv     string
	PrivPass Secret
	Context  string
	Password Secret
}

// LogValue shows what an entry is without any secret in it.
func (e Entry) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("name", e.Name), slog.String("kind", string(e.Kind))}
	if e.User != "" {
		attrs = append(attrs, slog.String("user", e.User))
	}
	return slog.GroupValue(attrs...)
}

// String is the same summary as LogValue.
func (e Entry) String() string {
	s := e.Name + " (" + string(e.Kind)
	if e.User != "" {
		s += " user " + e.User
	}
	return s + ")"
}

// SNMP reports whether the entry can reach a device.
func (e Entry) SNMP() bool { return e.Kind == KindV2c || e.Kind == KindV3 }

// ReadOnly returns the entry to use for reading only: v2c with
// ReadCommunity in place of Community when one is set.
func (e Entry) ReadOnly() Entry {
	if e.Kind == KindV2c && !e.ReadCommunity.Empty() {
		e.Community = e.ReadCommunity
	}
	return e
}

// File is a parsed credentials file.
type File struct {
	Path    string
	entries map[string]Entry
}

// Get returns the entry called name.
func (f *File) Get(name string) (Entry, error) {
	e, ok := f.entries[name]
	if !ok {
		return Entry{}, fmt.Errorf("%w: %q in %s (defined: %s)", ErrUnknown, name, f.Path, strings.Join(f.Names(), ", "))
	}
	return e, nil
}

// SNMP returns the entry called name and checks that it is SNMP
// credentials.
func (f *File) SNMP(name string) (Entry, error) {
	e, err := f.Get(name)
	if err != nil {
		return Entry{}, err
	}
	if !e.SNMP() {
		return Entry{}, fmt.Errorf("%w: %q is %s, want v2c or v3", ErrKind, name, e.Kind)
	}
	return e, nil
}

// FTP returns the FTP login called name.
func (f *File) FTP(name string) (Entry, error) {
	e, err := f.Get(name)
	if err != nil {
		return Entry{}, err
	}
	if e.Kind != KindFTP {
		return Entry{}, fmt.Errorf("%w: %q is %s, want ftp", ErrKind, name, e.Kind)
	}
	return e, nil
}

// Names lists the entries, sorted.
func (f *File) Names() []string {
	n := make([]string, 0, len(f.entries))
	for k := range f.entries {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// Load checks the file's ownership and permissions, then parses it.
func Load(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("creds: %w", err)
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("creds: %w", err)
	}
	if err := checkPrivate(path, fi); err != nil {
		return nil, err
	}
	f, err := Parse(fh)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f.Path = path
	return f, nil
}

// checkPrivate refuses a file that others can read or write (any "other"
// permission bit, or group write), or that belongs to another user (root
// excepted).
func checkPrivate(path string, fi os.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is not a regular file", ErrPermissions, path)
	}
	if perm := fi.Mode().Perm(); perm&0o027 != 0 {
		return fmt.Errorf("%w: %s has mode %04o; it must not be accessible to others or writable by the group (chmod 600 %s)",
			ErrPermissions, path, perm, path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if uid := os.Geteuid(); int(st.Uid) != uid && st.Uid != 0 {
			return fmt.Errorf("%w: %s is owned by uid %d, not by you (uid %d) or root", ErrPermissions, path, st.Uid, uid)
		}
	}
	return nil
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Parse reads the file format without any permission check.
func Parse(r io.Reader) (*File, error) {
	f := &File{entries: map[string]Entry{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64<<10)
	for n := 1; sc.Scan(); n++ {
		fields, err := splitLine(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %w", ErrSyntax, n, err)
		}
		if len(fields) == 0 {
			continue
		}
		e, err := parseEntry(fields)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %w", ErrSyntax, n, err)
		}
		if _, dup := f.entries[e.Name]; dup {
			return nil, fmt.Errorf("%w: line %d: %q defined twice", ErrSyntax, n, e.Name)
		}
		f.entries[e.Name] = e
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSyntax, err)
	}
	return f, nil
}

// errValue never quotes the offending value: it may be a secret.
func parseEntry(fields []string) (Entry, error) {
	if len(fields) < 2 {
		return Entry{}, errors.New("want NAME KIND key=value…")
	}
	e := Entry{Name: fields[0], Kind: Kind(fields[1])}
	if !nameRE.MatchString(e.Name) {
		return Entry{}, fmt.Errorf("bad name %q: letters, digits, '.', '_' and '-' only", e.Name)
	}
	kv := map[string]string{}
	for _, f := range fields[2:] {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" {
			return Entry{}, fmt.Errorf("entry %q: want key=value, got a field without '='", e.Name)
		}
		if _, dup := kv[k]; dup {
			return Entry{}, fmt.Errorf("entry %q: key %q given twice", e.Name, k)
		}
		kv[k] = v
	}
	take := func(k string) string { v := kv[k]; delete(kv, k); return v }
	switch e.Kind {
	case KindV2c:
		e.Community = Secret(take("community"))
		e.ReadCommunity = Secret(take("read-community"))
		if e.Community.Empty() {
			return Entry{}, fmt.Errorf("entry %q: v2c needs community=", e.Name)
		}
	case KindV3:
		e.User = take("user")
		e.Level = Level(take("level"))
		e.Auth, e.AuthPass = take("auth"), Secret(take("auth-pass"))
		e.Priv, e.PrivPass = take("priv"), Secret(take("priv-pass"))
		e.Context = take("context")
		if err := e.checkV3(); err != nil {
			return Entry{}, fmt.Errorf("entry %q: %w", e.Name, err)
		}
	case KindFTP:
		e.User = take("user")
		e.Password = Secret(take("password"))
		if e.User == "" {
			return Entry{}, fmt.Errorf("entry %q: ftp needs user=", e.Name)
		}
	default:
		return Entry{}, fmt.Errorf("entry %q: kind %q, want v2c, v3 or ftp", e.Name, e.Kind)
	}
	if len(kv) > 0 {
		keys := make([]string, 0, len(kv))
		for k := range kv {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return Entry{}, fmt.Errorf("entry %q: unknown keys for %s: %s", e.Name, e.Kind, strings.Join(keys, ", "))
	}
	return e, nil
}

func (e *Entry) checkV3() error {
	if e.User == "" {
		return errors.New("v3 needs user=")
	}
	if e.Level == "" {
		switch {
		case e.Priv != "":
			e.Level = AuthPriv
		case e.Auth != "":
			e.Level = AuthNoPriv
		default:
			e.Level = NoAuthNoPriv
		}
	}
	needAuth, needPriv := false, false
	switch e.Level {
	case NoAuthNoPriv:
	case AuthNoPriv:
		needAuth = true
	case AuthPriv:
		needAuth, needPriv = true, true
	default:
		return fmt.Errorf("level %q, want noAuthNoPriv, authNoPriv or authPriv", e.Level)
	}
	if needAuth {
		if !contains(AuthProtocols, e.Auth) {
			return fmt.Errorf("auth %q, want one of %s", e.Auth, strings.Join(AuthProtocols, ", "))
		}
		if len(e.AuthPass) < 8 {
			return errors.New("auth-pass must be at least 8 characters (RFC 3414)")
		}
	} else if e.Auth != "" || !e.AuthPass.Empty() {
		return fmt.Errorf("auth settings given for level %s", e.Level)
	}
	if needPriv {
		if !contains(PrivProtocols, e.Priv) {
			return fmt.Errorf("priv %q, want one of %s", e.Priv, strings.Join(PrivProtocols, ", "))
		}
		if len(e.PrivPass) < 8 {
			return errors.New("priv-pass must be at least 8 characters (RFC 3414)")
		}
	} else if e.Priv != "" || !e.PrivPass.Empty() {
		return fmt.Errorf("priv settings given for level %s", e.Level)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// splitLine splits on blanks, honours double-quoted values (anywhere after
// '=' or as a whole field) and drops a '#' comment outside quotes.
func splitLine(line string) ([]string, error) {
	var out []string
	i := 0
	for {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		if i >= len(line) || line[i] == '#' {
			return out, nil
		}
		var b strings.Builder
		for i < len(line) && line[i] != ' ' && line[i] != '\t' {
			if line[i] == '"' {
				q, n, err := quoted(line[i:])
				if err != nil {
					return nil, err
				}
				b.WriteString(q)
				i += n
				continue
			}
			b.WriteByte(line[i])
			i++
		}
		out = append(out, b.String())
	}
}

// quoted unquotes the Go string literal at the start of s and returns it
// with its length in s.
func quoted(s string) (string, int, error) {
	for j := 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case '"':
			v, err := strconv.Unquote(s[:j+1])
			if err != nil {
				return "", 0, errors.New("bad quoted value")
			}
			return v, j + 1, nil
		}
	}
	return "", 0, errors.New("unterminated quoted value")
}
