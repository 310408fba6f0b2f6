package iadconfigtest

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/iadsafe/iad-agent/agent/iadconfig"
)

// loc is where a value of the source must appear in the result.
type loc struct{ file, key, value string }

// expectV2 says, key by key and independently of the converters, where
// each value of a format-1 configuration lives in format 2.
func expectV2(src *iadconfig.Doc) []loc {
	var out []loc
	defs := src.File(iadconfig.DefaultsFile)
	pref, _ := defs.Get("codec.preferred")
	codecList := pref
	if fb, ok := defs.Get("codec.fallback"); ok && fb != pref {
		codecList = pref + "," + fb
	}
	for _, name := range src.Names() {
		for _, e := range src.Files[name].Entries {
			switch {
			case name == iadconfig.UsersFile && strings.HasSuffix(e.Key, ".number"):
				// Each line also gets the codecs it used.
				out = append(out, loc{name, e.Key, e.Value}, loc{name, strings.TrimSuffix(e.Key, ".number") + ".codecs", codecList})
			case name == iadconfig.PortsFile && strings.HasSuffix(e.Key, ".gain"):
				p := strings.TrimSuffix(e.Key, ".gain")
				out = append(out, loc{name, p + ".tx-gain", e.Value}, loc{name, p + ".rx-gain", e.Value})
			case name == iadconfig.ProtocolFile && e.Key == "qos.tos":
				tos, _ := strconv.Atoi(e.Value)
				out = append(out, loc{name, "dscp.signalling", strconv.Itoa(tos / 4)}, loc{name, "dscp.media", strconv.Itoa(tos / 4)})
			case name == iadconfig.ProtocolFile && e.Key == "ntp.server":
				out = append(out, loc{name, "ntp.servers", e.Value})
			case name == iadconfig.ProtocolFile && e.Key == "mgmt.trap-target":
				out = append(out, loc{name, "mgmt.trap-targets", e.Value})
			case name == iadconfig.DefaultsFile && e.Key == "codec.preferred":
				out = append(out, loc{name, "codec.list", codecList})
			case name == iadconfig.DefaultsFile && e.Key == "codec.fallback":
				// Part of codec.list, checked with codec.preferred.
				if !slices.Contains(strings.Split(codecList, ","), e.Value) {
					out = append(out, loc{name, "codec.list", "(missing " + e.Value + ")"})
				}
			default:
				out = append(out, loc{name, e.Key, e.Value})
			}
		}
	}
	return out
}

// expectV3 applies the 2→3 layout to expectV2's locations.
func expectV3(src *iadconfig.Doc) []loc {
	var out []loc
	for _, l := range expectV2(src) {
		if l.file != iadconfig.UsersFile {
			out = append(out, l)
			continue
		}
		if line, ok := strings.CutSuffix(l.key, ".port"); ok {
			out = append(out, loc{iadconfig.PortsFile, l.value + ".line", strings.TrimPrefix(line, "line.")})
			continue
		}
		out = append(out, loc{iadconfig.SubscribersFile, l.key, l.value})
	}
	return out
}

// Lost compares a converted configuration with its format-1 source and
// returns every value of the source that is missing or changed in dst,
// and every entry of dst that did not come from the source. An empty
// result means nothing was lost and nothing invented.
func Lost(src, dst *iadconfig.Doc) []string {
	var want []loc
	switch dst.Format {
	case 1:
		for _, name := range src.Names() {
			for _, e := range src.Files[name].Entries {
				want = append(want, loc{name, e.Key, e.Value})
			}
		}
	case 2:
		want = expectV2(src)
	case 3:
		want = expectV3(src)
	default:
		return []string{fmt.Sprintf("no expectation for format %d", dst.Format)}
	}
	var lost []string
	expected := map[string]bool{}
	for _, l := range want {
		expected[l.file+" "+l.key] = true
		got, ok := dst.Get(l.file, l.key)
		switch {
		case !ok:
			lost = append(lost, fmt.Sprintf("%s: %s missing", l.file, l.key))
		case got != l.value:
			v, g := strconv.Quote(l.value), strconv.Quote(got)
			if iadconfig.IsSecretKey(l.key) {
				v, g = "<secret>", "<another secret>"
			}
			lost = append(lost, fmt.Sprintf("%s: %s is %s, want %s", l.file, l.key, g, v))
		}
	}
	for _, name := range dst.Names() {
		f := dst.Files[name]
		if f.Version != dst.Format {
			lost = append(lost, fmt.Sprintf("%s: format-version %d in a format %d configuration", name, f.Version, dst.Format))
		}
		for _, e := range f.Entries {
			if !expected[name+" "+e.Key] {
				lost = append(lost, fmt.Sprintf("%s: %s was not in the source", name, e.Key))
			}
		}
	}
	return lost
}

// SharesPorts reports whether two lines of a format-1 or -2
// configuration ring the same port.
func SharesPorts(d *iadconfig.Doc) bool {
	users := d.File(iadconfig.UsersFile)
	if users == nil {
		return false
	}
	seen := map[string]bool{}
	for _, e := range users.Entries {
		if strings.HasPrefix(e.Key, "line.") && strings.HasSuffix(e.Key, ".port") {
			if seen[e.Value] {
				return true
			}
			seen[e.Value] = true
		}
	}
	return false
}
