package migrate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iadsafe/iad-agent/agent/iadconfig"
)

// opaque is a file the model does not know; it must travel unchanged.
var opaque = map[string][]byte{"vendor-blob.bin": []byte("\x00\x01 not a model file \xff")}

func with(files map[string][]byte, extra map[string][]byte) map[string][]byte {
	out := map[string][]byte{}
	for n, b := range files {
		out[n] = b
	}
	for n, b := range extra {
		out[n] = b
	}
	return out
}

func TestRestoreSameFormatIsVerbatim(t *testing.T) {
	e := newEnv(t)
	e.setLive(t, with(golden(t, "1-2/full/in"), opaque))
	want := e.digest(t)
	archive := e.backup(t, 1, nil)
	e.setLive(t, golden(t, "1-2/minimal/in"))
	res, err := e.restore(t, archive, nil, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Converted || !res.Applied || res.From != 1 || res.To != 1 {
		t.Errorf("result %+v", res)
	}
	if e.digest(t) != want {
		t.Error("a same-format restore is not byte-for-byte the backup")
	}
	if kept, _ := e.store.Kept(); len(kept) != 0 {
		t.Errorf("kept %v after a same-format restore", kept)
	}
	if got := e.reload.reasons(); !slices.Equal(got, []string{"restore"}) {
		t.Errorf("reloads: %v", got)
	}
	e.tidy(t)
}

func TestRestoreConverts(t *testing.T) {
	for _, tc := range []struct {
		running uint32
		force   bool
		want    string
	}{
		{2, false, "1-2/full/want"},
		{3, true, "2-3/full/want"},
	} {
		t.Run(fmt.Sprint(tc.running), func(t *testing.T) {
			e := newEnv(t)
			original := with(golden(t, "1-2/full/in"), opaque)
			e.setLive(t, original)
			archive := e.backup(t, 1, nil)
			e.setLive(t, golden(t, "2-3/minimal/want")) // the device's own, meanwhile
			res, err := e.restore(t, archive, nil, tc.running, tc.force)
			if err != nil {
				t.Fatal(err)
			}
			if !res.Converted || res.From != 1 || res.To != tc.running {
				t.Errorf("result %+v", res)
			}
			if got, want := dirFiles(t, e.store.LiveDir()), with(golden(t, tc.want), opaque); !sameFiles(got, want) {
				t.Errorf("live after restore differs from %s plus the opaque file", tc.want)
			}
			if got := e.keptFiles(t, 1); !sameFiles(got, original) {
				t.Errorf("kept format-1 configuration is not the backup as it was")
			}
			// Converted files keep the backup's modes.
			fi, err := os.Stat(filepath.Join(e.store.LiveDir(), iadconfig.DefaultsFile))
			if err != nil || fi.Mode().Perm() != 0o640 {
				t.Errorf("defaults.conf mode %v, %v; want 0640", fi.Mode(), err)
			}
			if got := e.reload.seen; !slices.Equal(got, []uint32{tc.running}) {
				t.Errorf("the reload hook saw formats %v, want [%d]", got, tc.running)
			}
			e.tidy(t)
		})
	}
}

// TestRestoreRefusals: each bad input is refused with its own error, the
// live configuration stays byte-for-byte as it was, and nothing is kept.
func TestRestoreRefusals(t *testing.T) {
	sharedPort := golden(t, "1-2/full/in")
	sharedPort["users.conf"] = []byte(strings.Replace(string(sharedPort["users.conf"]), "line.10.port = fxs3", "line.10.port = fxs1", 1))
	invalid := golden(t, "1-2/full/in")
	invalid["users.conf"] = append(invalid["users.conf"], "line.11.number = 4930123457\nline.11.port = fxs9\n"...)
	invalid["protocol.conf"] = []byte(strings.Replace(string(invalid["protocol.conf"]), "mgmt.address = 2001:db8::100", "mgmt.address = 300.1.1.1", 1))
	cases := []struct {
		name    string
		backup  map[string][]byte
		running uint32
		force   bool
		hookErr error
		want    error
		text    []string
	}{
		{"newer format", golden(t, "2-3/full/want"), 2, true, nil, iadconfig.ErrTooNew,
			[]string{"configuration is format 3, the running software uses format 2"}},
		{"major without force", golden(t, "1-2/full/in"), 3, false, nil, iadconfig.ErrMajorMismatch,
			[]string{"format 1 (compat 1.0)", "format 3 (compat 2.0)", "force"}},
		{"converter fails mid-way", sharedPort, 3, true, nil, iadconfig.ErrConvert,
			[]string{"format 2 to 3", "lines 1 and 10 both ring fxs1"}},
		{"validation errors", invalid, 2, false, nil, iadconfig.ErrInvalid,
			[]string{"backup (format 1): 3 problems", "users.conf: line.11.number: 4930123457 is also the number of line.2", "users.conf: line.11.port: fxs9 is not defined in ports.conf", `protocol.conf: mgmt.address: "300.1.1.1" is not an IP address`}},
		{"unknown format", map[string][]byte{"defaults.conf": []byte("format-version = 9\n")}, 3, true, nil, iadconfig.ErrTooNew, nil},
		{"no defaults.conf", map[string][]byte{"users.conf": []byte("format-version = 1\n")}, 1, false, nil, iadconfig.ErrUnknownFormat, nil},
		{"syntax error", with(golden(t, "1-2/full/in"), map[string][]byte{"ports.conf": []byte("format-version = 1\nfxs1.type fxs\n")}), 1, false, nil, iadconfig.ErrInvalid,
			[]string{"ports.conf: want key = value"}},
		{"reload hook fails", golden(t, "1-2/full/in"), 2, false, errors.New("exit status 3: voipd: cannot bind"), ErrReload,
			[]string{"exit status 3: voipd: cannot bind"}},
		{"reload hook fails, same format", golden(t, "1-2/full/in"), 1, false, errors.New("exit status 1"), ErrReload, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.setLive(t, tc.backup)
			archive := e.backup(t, 0, nil)
			mine := with(golden(t, "2-3/minimal/want"), opaque)
			if tc.running < 3 {
				mine = with(golden(t, "1-2/minimal/in"), opaque)
			}
			e.setLive(t, mine)
			before := e.digest(t)
			e.reload.fail = tc.hookErr
			_, err := e.restore(t, archive, nil, tc.running, tc.force)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			for _, s := range tc.text {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			if e.digest(t) != before {
				t.Error("the live configuration changed")
			}
			if kept, _ := e.store.Kept(); len(kept) != 0 {
				t.Errorf("kept %v after a refused restore", kept)
			}
			if tc.hookErr != nil {
				if got := e.reload.reasons(); !slices.Equal(got, []string{"restore", "rollback"}) {
					t.Errorf("reloads: got %v, want restore then rollback", got)
				}
			} else if len(e.reload.calls) != 0 {
				t.Errorf("reload hook ran for a refused restore: %v", e.reload.reasons())
			}
			e.tidy(t)
		})
	}
}

func TestInvalidErrorSummary(t *testing.T) {
	e := newEnv(t)
	bad := golden(t, "1-2/full/in")
	var more strings.Builder
	for i := 20; i < 40; i++ {
		fmt.Fprintf(&more, "line.%d.number = 4930123457\nline.%d.port = fxs9\n", i, i)
	}
	bad["users.conf"] = append(bad["users.conf"], more.String()...)
	e.setLive(t, bad)
	archive := e.backup(t, 1, nil)
	_, err := e.restore(t, archive, nil, 1, false)
	var inv *InvalidError
	if !errors.As(err, &inv) || len(inv.Problems) != 40 {
		t.Fatalf("got %v, want an InvalidError with 40 problems", err)
	}
	s := inv.Summary(255)
	if len(s) > 255 || !strings.HasPrefix(s, "backup (format 1): 40 problems: users.conf: line.20.number: 4930123457 is also the number of line.2") || !strings.HasSuffix(s, " more)") {
		t.Errorf("Summary(255) = %q (%d bytes)", s, len(s))
	}
	// Every problem reached the log, with file and field.
	if n := strings.Count(e.log.String(), "problem.file=users.conf"); n != 40 {
		t.Errorf("log has %d problems of users.conf, want 40:\n%s", n, e.log.String())
	}
}

// TestSecretsStayOut: a failing hook that prints the configuration's
// passwords has them scrubbed from the error and the log.
func TestSecretsStayOut(t *testing.T) {
	e := newEnv(t)
	files := golden(t, "1-2/full/in")
	e.setLive(t, files)
	archive := e.backup(t, 1, nil)
	src, _ := iadconfig.Default().Decode(func(n string) ([]byte, error) {
		if b, ok := files[n]; ok {
			return b, nil
		}
		return nil, os.ErrNotExist
	})
	secrets := src.Secrets()
	e.reload.fail = fmt.Errorf("exit status 1: bad password %s", secrets[1])
	e.reload.output = "loaded " + strings.Join(secrets, " and ")
	_, err := e.restore(t, archive, nil, 2, false)
	if !errors.Is(err, ErrReload) {
		t.Fatalf("got %v, want ErrReload", err)
	}
	for _, s := range secrets {
		if strings.Contains(err.Error(), s) || strings.Contains(e.log.String(), s) {
			t.Errorf("secret %q reached the error or the log:\n%v\n%s", "…", err, e.log.String())
		}
	}
	if !strings.Contains(err.Error(), "<redacted>") {
		t.Errorf("error %q lacks the redaction mark", err)
	}
}

func TestShellReloader(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	out, err := ShellReloader{Command: `echo "$IAD_CONFIG_REASON $IAD_CONFIG_FORMAT $IAD_CONFIG_DIR"`}.Reload(ctx, ReloadRequest{Reason: "restore", Format: 2, Dir: dir})
	if err != nil || out != "restore 2 "+dir {
		t.Errorf("got %q, %v", out, err)
	}
	_, err = ShellReloader{Command: "echo starting; echo 'voipd: bad config' >&2; exit 3"}.Reload(ctx, ReloadRequest{})
	if err == nil || err.Error() != "reload hook exit status 3: voipd: bad config" {
		t.Errorf("failing hook: got %v", err)
	}
	_, err = ShellReloader{Command: "sleep 30", Timeout: 100 * time.Millisecond}.Reload(ctx, ReloadRequest{})
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("slow hook: got %v", err)
	}
	big, err := ShellReloader{Command: "head -c 100000 /dev/zero | tr '\\0' x; echo; echo last"}.Reload(ctx, ReloadRequest{})
	if err != nil || len(big) > maxOutput || !strings.HasSuffix(big, "last") {
		t.Errorf("big output: %d bytes, %v", len(big), err)
	}
}
