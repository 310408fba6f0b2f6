package iadconfig_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/iadsafe/iad-agent/agent/iadconfig"
)

func TestParseFile(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		want    []iadconfig.Entry // nil with wantErr
		header  []string
		wantErr string
	}{
		{"plain", "format-version = 2\na = 1\nb.c-d_e = x y\n", []iadconfig.Entry{{"a", "1", 2}, {"b.c-d_e", "x y", 3}}, nil, ""},
		{"comments and blanks", "# head\n\nformat-version=1\n# more head\n  a=  1  \n# body\n\r\nb = 2\r\n", []iadconfig.Entry{{"a", "1", 5}, {"b", "2", 8}}, []string{" head", " more head"}, ""},
		{"value keeps inner =, #", "format-version = 1\nk = a=b # c\n", []iadconfig.Entry{{"k", "a=b # c", 2}}, nil, ""},
		{"quoted", "format-version = 1\nk = \"  x\\ty \\\"q\\\" \"\n", []iadconfig.Entry{{"k", "  x\ty \"q\" ", 2}}, nil, ""},
		{"empty value", "format-version = 1\nk =\nl = \"\"\n", []iadconfig.Entry{{"k", "", 2}, {"l", "", 3}}, nil, ""},
		{"no version", "a = 1\n", nil, nil, "t.conf:1: first entry must be format-version"},
		{"empty", "\n# only a comment\n", nil, nil, "t.conf: no format-version"},
		{"bad version", "format-version = one\n", nil, nil, `t.conf:1: format-version "one" is not a number 1..4294967295`},
		{"version zero", "format-version = 0\n", nil, nil, `t.conf:1: format-version "0" is not a number 1..4294967295`},
		{"version twice", "format-version = 1\nformat-version = 1\n", nil, nil, "t.conf:2: format-version given twice"},
		{"no =", "format-version = 1\njust words\n", nil, nil, "t.conf:2: want key = value"},
		{"bad key", "format-version = 1\nKey = 1\n", nil, nil, `t.conf:2: bad key "Key" (want lowercase letters, digits, '.', '-', '_')`},
		{"empty key", "format-version = 1\n = 1\n", nil, nil, `t.conf:2: bad key "" (want lowercase letters, digits, '.', '-', '_')`},
		{"duplicate", "format-version = 1\na = 1\na = 2\n", nil, nil, "t.conf:3: a given twice (first on line 2)"},
		{"bad quote hides the value", "format-version = 1\npw = \"s3cret\n", nil, nil, "t.conf:2: pw: bad quoted value"},
		{"junk after quote", "format-version = 1\npw = \"a\" b\n", nil, nil, "t.conf:2: pw: bad quoted value"},
		{"not utf-8", "format-version = 1\na = \xff\n", nil, nil, "t.conf:2: not valid UTF-8"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := iadconfig.ParseFile("t.conf", []byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("got error %v, want %q", err, tc.wantErr)
				}
				if !errors.Is(err, iadconfig.ErrInvalid) {
					t.Errorf("error does not match ErrInvalid")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(f.Entries, tc.want) {
				t.Errorf("entries: got %+v, want %+v", f.Entries, tc.want)
			}
			if !reflect.DeepEqual(f.Header, tc.header) {
				t.Errorf("header: got %q, want %q", f.Header, tc.header)
			}
		})
	}
	if _, err := iadconfig.ParseFile("big.conf", make([]byte, iadconfig.MaxFileSize+1)); err == nil {
		t.Error("a file above MaxFileSize parsed")
	}
}

func TestMarshalQuotesWhatNeedsIt(t *testing.T) {
	f := &iadconfig.File{Name: "x.conf", Version: 3, Header: []string{" hi"}, Entries: []iadconfig.Entry{
		{Key: "plain", Value: "a b=c#d"},
		{Key: "empty", Value: ""},
		{Key: "spaces", Value: " x "},
		{Key: "quote", Value: `"q`},
		{Key: "tab", Value: "a\tb"},
		{Key: "nl", Value: "a\nb"},
		{Key: "utf8", Value: "Süd 日本"},
	}}
	want := "format-version = 3\n# hi\nplain = a b=c#d\nempty = \"\"\nspaces = \" x \"\nquote = \"\\\"q\"\ntab = \"a\\tb\"\nnl = \"a\\nb\"\nutf8 = Süd 日本\n"
	if got := string(f.Marshal()); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	back, err := iadconfig.ParseFile("x.conf", f.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range back.Entries {
		if e.Key != f.Entries[i].Key || e.Value != f.Entries[i].Value {
			t.Errorf("entry %d: got %q=%q, want %q=%q", i, e.Key, e.Value, f.Entries[i].Key, f.Entries[i].Value)
		}
	}
}

func TestReadVersion(t *testing.T) {
	for in, want := range map[string]uint32{"format-version = 7\n": 7, "# c\n\nformat-version=12\na=b": 12} {
		if got, err := iadconfig.ReadVersion("d.conf", []byte(in)); err != nil || got != want {
			t.Errorf("ReadVersion(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "a = 1\nformat-version = 1\n", "format-version = x\n"} {
		if _, err := iadconfig.ReadVersion("d.conf", []byte(in)); err == nil {
			t.Errorf("ReadVersion(%q) succeeded", in)
		}
	}
}

// FuzzParseFile: whatever parses survives Marshal and ParseFile again
// unchanged, and ParseFile never panics.
func FuzzParseFile(f *testing.F) {
	f.Add("format-version = 1\na = 1\n")
	f.Add("# h\nformat-version = 2\nk = \"  \\x00 \"\n")
	f.Add("format-version = 1\nline.1.sip.password = \"a\\\"b\"\n")
	f.Fuzz(func(t *testing.T, in string) {
		file, err := iadconfig.ParseFile("f.conf", []byte(in))
		if err != nil {
			return
		}
		out := file.Marshal()
		back, err := iadconfig.ParseFile("f.conf", out)
		if err != nil {
			t.Fatalf("Marshal wrote what ParseFile rejects: %v\n%s", err, out)
		}
		if back.Version != file.Version || len(back.Entries) != len(file.Entries) || strings.Join(back.Header, "\n") != strings.Join(file.Header, "\n") {
			t.Fatalf("round trip changed the file:\n%q\n%q", in, out)
		}
		for i := range back.Entries {
			if back.Entries[i].Key != file.Entries[i].Key || back.Entries[i].Value != file.Entries[i].Value {
				t.Fatalf("entry %d changed: %q -> %q", i, file.Entries[i].Value, back.Entries[i].Value)
			}
		}
	})
}
