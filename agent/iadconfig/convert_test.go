package iadconfig_test

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/iadsafe/iad-agent/agent/iadconfig"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// loadDir reads every *.conf of dir as model files of one Doc, whatever
// their format (converters get unchecked input too).
func loadDir(t *testing.T, dir string) *iadconfig.Doc {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.conf"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no *.conf in %s: %v", dir, err)
	}
	var d *iadconfig.Doc
	for _, p := range names {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		f, err := iadconfig.ParseFile(filepath.Base(p), b)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if d == nil {
			d = iadconfig.NewDoc(f.Version)
		}
		d.Files[f.Name] = f
	}
	if f := d.File(iadconfig.DefaultsFile); f != nil {
		d.Format = f.Version
	}
	return d
}

// TestConverterGolden runs every registered converter over the cases in
// testdata/convert/<from>-<to>/<case>/in and compares the result with
// want/ (or the error with want-error.txt). Rewrite with -update.
func TestConverterGolden(t *testing.T) {
	reg := iadconfig.Default()
	for _, c := range reg.Converters() {
		step := fmt.Sprintf("%d-%d", c.From, c.To)
		cases, err := os.ReadDir(filepath.Join("testdata", "convert", step))
		if err != nil || len(cases) < 3 {
			t.Fatalf("converter %s: want at least 3 golden cases in testdata/convert/%s: %v", step, step, err)
		}
		for _, tc := range cases {
			t.Run(step+"/"+tc.Name(), func(t *testing.T) {
				dir := filepath.Join("testdata", "convert", step, tc.Name())
				in := loadDir(t, filepath.Join(dir, "in"))
				before := in.Clone()
				out, err := c.Convert(in)
				if !reflect.DeepEqual(in, before) {
					t.Errorf("converter modified its input")
				}
				errFile := filepath.Join(dir, "want-error.txt")
				if _, serr := os.Stat(errFile); serr == nil {
					if err == nil {
						t.Fatalf("converted; want the error in %s", errFile)
					}
					if !errors.Is(err, iadconfig.ErrConvert) {
						t.Errorf("error %v does not wrap ErrConvert", err)
					}
					golden(t, errFile, []byte(err.Error()+"\n"))
					return
				}
				if err != nil {
					t.Fatalf("convert: %v", err)
				}
				if out.Format != c.To {
					t.Errorf("result is format %d, want %d", out.Format, c.To)
				}
				files, err := reg.Encode(out)
				if err != nil {
					t.Fatal(err)
				}
				wantDir := filepath.Join(dir, "want")
				if *update {
					os.RemoveAll(wantDir)
					os.MkdirAll(wantDir, 0o755)
				}
				for name, b := range files {
					golden(t, filepath.Join(wantDir, name), b)
				}
				if !*update {
					got, _ := filepath.Glob(filepath.Join(wantDir, "*.conf"))
					if len(got) != len(files) {
						t.Errorf("want/ has %d files, the result %d", len(got), len(files))
					}
				}
				// A valid input must give a valid output.
				if reg.Validate(in) == nil {
					if ps := reg.Validate(out); ps != nil {
						t.Errorf("valid input, invalid result: %v", ps)
					}
				}
			})
		}
	}
}

// TestGoldenChain keeps the cases of consecutive steps in step: the
// input of a 2-3 case with the name of a 1-2 case is that case's output.
func TestGoldenChain(t *testing.T) {
	for _, name := range []string{"factory", "full"} {
		a, _ := filepath.Glob(filepath.Join("testdata", "convert", "1-2", name, "want", "*.conf"))
		if len(a) == 0 {
			t.Fatalf("no 1-2/%s/want files", name)
		}
		for _, p := range a {
			want, _ := os.ReadFile(p)
			got, err := os.ReadFile(filepath.Join("testdata", "convert", "2-3", name, "in", filepath.Base(p)))
			if err != nil || string(got) != string(want) {
				t.Errorf("2-3/%s/in/%s differs from 1-2/%s/want (copy it over): %v", name, filepath.Base(p), name, err)
			}
		}
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs:\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// TestConvertersTable covers what the golden files do not: missing files
// and fields, and values a converter cannot carry over.
func TestConvertersTable(t *testing.T) {
	base := func() *iadconfig.Doc { return loadDir(t, filepath.Join("testdata", "convert", "1-2", "full", "in")) }
	base2 := func() *iadconfig.Doc { return loadDir(t, filepath.Join("testdata", "convert", "2-3", "full", "in")) }
	cases := []struct {
		name    string
		conv    func(*iadconfig.Doc) (*iadconfig.Doc, error)
		doc     func() *iadconfig.Doc
		wantErr string // "" = success
	}{
		{"1-2 ok", iadconfig.ConvertV1ToV2, base, ""},
		{"1-2 no users.conf", iadconfig.ConvertV1ToV2, func() *iadconfig.Doc { d := base(); delete(d.Files, "users.conf"); return d }, "users.conf is missing"},
		{"1-2 no codec.preferred", iadconfig.ConvertV1ToV2, func() *iadconfig.Doc { d := base(); d.Files["defaults.conf"].Delete("codec.preferred"); return d }, "codec.preferred is missing"},
		{"1-2 codecs already there", iadconfig.ConvertV1ToV2, func() *iadconfig.Doc { d := base(); d.Files["users.conf"].Set("line.1.codecs", "g711a"); return d }, "line.1.codecs is not a format 1 field"},
		{"1-2 tos not a number", iadconfig.ConvertV1ToV2, func() *iadconfig.Doc { d := base(); d.Files["protocol.conf"].Set("qos.tos", "ef"); return d }, `qos.tos "ef" is not a TOS byte`},
		{"2-3 ok", iadconfig.ConvertV2ToV3, base2, ""},
		{"2-3 shared port", iadconfig.ConvertV2ToV3, func() *iadconfig.Doc { d := base2(); d.Files["users.conf"].Set("line.2.port", "fxs1"); return d }, "lines 1 and 2 both ring fxs1"},
		{"2-3 unknown port", iadconfig.ConvertV2ToV3, func() *iadconfig.Doc { d := base2(); d.Files["users.conf"].Set("line.10.port", "fxs9"); return d }, `line 10 rings "fxs9", which ports.conf does not define`},
		{"2-3 line field already there", iadconfig.ConvertV2ToV3, func() *iadconfig.Doc { d := base2(); d.Files["ports.conf"].Set("fxs1.line", "1"); return d }, "fxs1.line is not a format 2 field"},
		{"2-3 no protocol.conf", iadconfig.ConvertV2ToV3, func() *iadconfig.Doc { d := base2(); delete(d.Files, "protocol.conf"); return d }, "protocol.conf is missing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.conv(tc.doc())
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("got %v, want success", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("got success, want an error containing %q", tc.wantErr)
			case tc.wantErr != "" && (!strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, iadconfig.ErrConvert)):
				t.Fatalf("got %v, want ErrConvert containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestConvertNeverLeaksSecrets: converter errors name fields, never the
// value of a secret.
func TestConvertNeverLeaksSecrets(t *testing.T) {
	d := loadDir(t, filepath.Join("testdata", "convert", "1-2", "full", "in"))
	d.Files["users.conf"].Set("line.2.port", "fxs1") // will fail at 2→3
	_, err := iadconfig.Default().Convert(d, 3, true)
	if err == nil {
		t.Fatal("converted a configuration with a shared port to format 3")
	}
	for _, s := range d.Secrets() {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q contains a secret", err)
		}
	}
	if got := slices.Sorted(slices.Values(d.Secrets())); len(got) != 2 {
		t.Errorf("Secrets: got %d, want 2", len(got))
	}
}

// TestReferenceDoc keeps the tables of docs/config-format.md in step with
// the registered formats and converters.
func TestReferenceDoc(t *testing.T) {
	path := filepath.Join("..", "..", "docs", "config-format.md")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- BEGIN GENERATED", "<!-- END GENERATED -->"
	doc := string(b)
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	if i < 0 || j < i {
		t.Fatalf("%s has no generated section", path)
	}
	i += strings.Index(doc[i:], "\n") + 1
	want := iadconfig.Default().Reference()
	if *update {
		doc = doc[:i] + want + doc[j:]
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if got := doc[i:j]; got != want {
		t.Errorf("%s is out of date with the registry; rerun with -update", path)
	}
}
