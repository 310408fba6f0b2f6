package iadconfig_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/iadsafe/iad-agent/agent/iadconfig"
)

func fullDoc(t *testing.T, format uint32) *iadconfig.Doc {
	t.Helper()
	dir := map[uint32]string{1: "1-2/full/in", 2: "2-3/full/in", 3: "2-3/full/want"}[format]
	return loadDir(t, filepath.Join("testdata", "convert", dir))
}

type edit func(d *iadconfig.Doc)

func set(file, key, value string) edit {
	return func(d *iadconfig.Doc) { d.Files[file].Set(key, value) }
}

func del(file, key string) edit {
	return func(d *iadconfig.Doc) { d.Files[file].Delete(key) }
}

// TestValidateRules covers every validation rule, per format: each case
// edits a valid configuration and lists exactly the problems expected.
func TestValidateRules(t *testing.T) {
	reg := iadconfig.Default()
	const u, p, pr, df = "users.conf", "ports.conf", "protocol.conf", "defaults.conf"
	cases := []struct {
		name   string
		format uint32
		edits  []edit
		want   []string
	}{
		{"valid v1", 1, nil, nil},
		{"valid v2", 2, nil, nil},
		{"valid v3", 3, nil, nil},
		// Files and versions.
		{"missing file", 1, []edit{func(d *iadconfig.Doc) { delete(d.Files, p) }},
			[]string{"users.conf: line.1.port: fxs1 is not defined in ports.conf", "users.conf: line.2.port: fxs2 is not defined in ports.conf", "users.conf: line.10.port: fxs3 is not defined in ports.conf", "ports.conf: missing"}},
		{"file of another version", 1, []edit{func(d *iadconfig.Doc) { d.Files[pr].Version = 2 }},
			[]string{"protocol.conf: format-version: is 2, the configuration is format 1"}},
		{"unknown field", 1, []edit{set(u, "line.1.colour", "red"), set(df, "net.wan.mtu", "1500")},
			[]string{"users.conf: line.1.colour: unknown field", "defaults.conf: net.wan.mtu: unknown field"}},
		{"field of a later format", 1, []edit{set(p, "fxs1.tx-gain", "1")}, []string{"ports.conf: fxs1.tx-gain: unknown field"}},
		{"line number out of range", 1, []edit{set(u, "line.65.number", "1")}, []string{"users.conf: line.65.number: unknown field"}},
		// Required fields.
		{"required global", 1, []edit{del(pr, "signalling"), del(df, "net.lan.netmask")},
			[]string{"protocol.conf: signalling: missing (required)", "defaults.conf: net.lan.netmask: missing (required)"}},
		{"required in a block", 1, []edit{del(u, "line.2.number"), del(p, "fxo1.impedance")},
			[]string{"users.conf: line.2.number: missing (required)", "ports.conf: fxo1.impedance: missing (required)"}},
		{"required mapping v1", 1, []edit{del(u, "line.10.port")}, []string{"users.conf: line.10.port: missing (required)"}},
		// Ranges and types.
		{"integer range", 1, []edit{set(p, "fxs1.gain", "20"), set(pr, "sip.port", "0"), set(df, "voice.jitter-buffer-ms", "x")},
			[]string{"ports.conf: fxs1.gain: 20 is out of range -12..12", "protocol.conf: sip.port: 0 is out of range 1..65535", `defaults.conf: voice.jitter-buffer-ms: "x" is not an integer`}},
		{"enum", 1, []edit{set(pr, "sip.transport", "sctp"), set(u, "line.1.enabled", "true")},
			[]string{`users.conf: line.1.enabled: "true" is not one of yes, no`, `protocol.conf: sip.transport: "sctp" is not one of udp, tcp, tls`}},
		{"directory number", 1, []edit{set(u, "line.1.number", "12-34")}, []string{`users.conf: line.1.number: "12-34" is not a directory number`}},
		{"display name control char", 1, []edit{set(u, "line.1.display-name", "a\tb")}, []string{"users.conf: line.1.display-name: contains a control character"}},
		{"display name too long", 1, []edit{set(u, "line.1.display-name", strings.Repeat("x", 65))}, []string{"users.conf: line.1.display-name: longer than 64 bytes"}},
		{"token with space", 1, []edit{set(u, "line.1.sip.username", "a b")}, []string{`users.conf: line.1.sip.username: "a b" has a character other than printable ASCII`}},
		{"port name", 1, []edit{set(u, "line.1.port", "fxs0")}, []string{`users.conf: line.1.port: "fxs0" is not a port name (fxs1..fxs16, fxo1..fxo16)`}},
		{"bad address", 1, []edit{set(pr, "mgmt.address", "300.1.1.1"), set(pr, "sip.registrar", "300.1.1.1"), set(pr, "mgmt.trap-target", "224.0.0.1")},
			[]string{`protocol.conf: sip.registrar: "300.1.1.1" is not an IP address`, `protocol.conf: mgmt.address: "300.1.1.1" is not an IP address`, "protocol.conf: mgmt.trap-target: 224.0.0.1 is not a unicast address"}},
		{"bad host name", 1, []edit{set(pr, "ntp.server", "-ntp.example")}, []string{`protocol.conf: ntp.server: "-ntp.example" is not an IP address or DNS name`}},
		{"ipv4 only", 1, []edit{set(df, "net.lan.address", "fe80::1")}, []string{`defaults.conf: net.lan.address: "fe80::1" is not an IPv4 address`}},
		{"netmask", 1, []edit{set(df, "net.lan.netmask", "255.0.255.0")}, []string{"defaults.conf: net.lan.netmask: 255.0.255.0 is not a contiguous netmask"}},
		{"netmask too wide", 1, []edit{set(df, "net.lan.netmask", "255.255.255.255")}, []string{"defaults.conf: net.lan.netmask: 255.255.255.255 (/32) is outside /8../30"}},
		{"tos", 1, []edit{set(pr, "qos.tos", "185")}, []string{"protocol.conf: qos.tos: 185 is not 0..252 with the two ECN bits zero"}},
		{"codec", 1, []edit{set(df, "codec.preferred", "amr")}, []string{`defaults.conf: codec.preferred: "amr" is not one of g711a, g711u, g722, g726, g729, ilbc, opus`}},
		{"codec list", 2, []edit{set(u, "line.1.codecs", "g729,g729"), set(df, "codec.list", "")},
			[]string{"users.conf: line.1.codecs: lists g729 twice", "defaults.conf: codec.list: has 0 entries, want 1..6"}},
		{"dscp", 2, []edit{set(pr, "dscp.media", "64")}, []string{"protocol.conf: dscp.media: 64 is out of range 0..63"}},
		{"secret too long", 1, []edit{set(u, "line.1.sip.password", strings.Repeat("s", 129))}, []string{"users.conf: line.1.sip.password: longer than 128 bytes"}},
		// Cross-checks.
		{"duplicate numbers", 1, []edit{set(u, "line.10.number", "4930123457")}, []string{"users.conf: line.10.number: 4930123457 is also the number of line.2"}},
		{"duplicate sip users", 2, []edit{set(u, "line.10.sip.username", "fax-line")}, []string{"users.conf: line.10.sip.username: fax-line is also the SIP user of line.2"}},
		{"password without user", 1, []edit{del(u, "line.2.sip.username")}, []string{"users.conf: line.2.sip.password: set without line.2.sip.username"}},
		{"line mapped to unknown port", 1, []edit{set(u, "line.2.port", "fxs9")}, []string{"users.conf: line.2.port: fxs9 is not defined in ports.conf"}},
		{"line mapped to fxo port", 2, []edit{set(u, "line.2.port", "fxo1")}, []string{"users.conf: line.2.port: fxo1 is an FXO port; a subscriber line rings an FXS port"}},
		{"shared port is fine before v3", 1, []edit{set(u, "line.2.port", "fxs1")}, nil},
		{"type does not match name", 1, []edit{set(p, "fxs2.type", "fxo")}, []string{"ports.conf: fxs2.type: fxo does not match the port name fxs2"}},
		{"fxs setting on fxo", 1, []edit{set(p, "fxo1.ring-voltage", "40"), set(p, "fxs1.lifeline", "yes")},
			[]string{"ports.conf: fxs1.lifeline: is an FXO setting on FXS port fxs1", "ports.conf: fxo1.ring-voltage: is an FXS setting on FXO port fxo1"}},
		{"signalling server", 1, []edit{del(pr, "sip.registrar")}, []string{"protocol.conf: sip.registrar: missing (required with signalling = sip)"}},
		{"mgcp server", 2, []edit{set(pr, "signalling", "mgcp"), del(pr, "mgcp.call-agent")}, []string{"protocol.conf: mgcp.call-agent: missing (required with signalling = mgcp)"}},
		{"timers", 1, []edit{set(pr, "sip.t1-ms", "5000"), set(pr, "sip.t2-ms", "1000")}, []string{"protocol.conf: sip.t2-ms: 1000 is below sip.t1-ms 5000"}},
		{"lan network address", 1, []edit{set(df, "net.lan.address", "192.168.1.0")}, []string{"defaults.conf: net.lan.address: 192.168.1.0 is the network address of 192.168.1.0/24"}},
		{"lan broadcast address", 3, []edit{set(df, "net.lan.address", "192.168.1.255")}, []string{"defaults.conf: net.lan.address: 192.168.1.255 is the broadcast address of 192.168.1.0/24"}},
		{"same codec twice", 1, []edit{set(df, "codec.fallback", "g722")}, []string{"defaults.conf: codec.fallback: same as codec.preferred"}},
		{"v3 port mapped to unknown user", 3, []edit{set(p, "fxs2.line", "7")},
			[]string{"ports.conf: fxs2.line: line 7 is not defined in subscribers.conf"}},
		{"v3 remapped enabled line", 3, []edit{set(p, "fxs1.line", "10"), del(p, "fxs3.line")},
			[]string{"subscribers.conf: line.1: enabled, but no port in ports.conf rings it"}},
		{"v3 enabled line unmapped", 3, []edit{del(p, "fxs3.line")}, []string{"subscribers.conf: line.10: enabled, but no port in ports.conf rings it"}},
		{"v3 disabled line may be unmapped", 3, []edit{del(p, "fxs2.line")}, nil},
		{"v3 line reference", 3, []edit{set(p, "fxs2.line", "0")}, []string{`ports.conf: fxs2.line: "0" is not a line number 1..64`}},
		{"v3 line on fxo port", 3, []edit{set(p, "fxo1.line", "2")}, []string{"ports.conf: fxo1.line: is an FXS setting on FXO port fxo1"}},
		{"v3 has no users.conf mapping", 3, []edit{set("subscribers.conf", "line.1.port", "fxs1")}, []string{"subscribers.conf: line.1.port: unknown field"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := fullDoc(t, tc.format)
			for _, e := range tc.edits {
				e(d)
			}
			ps := reg.Validate(d)
			var got []string
			for _, p := range ps {
				got = append(got, p.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("problems:\ngot  %q\nwant %q", got, tc.want)
			}
			if len(tc.want) > 0 && ps == nil {
				t.Errorf("Validate returned nil for an invalid configuration")
			}
			for _, s := range d.Secrets() {
				if strings.Contains(ps.Error(), s) {
					t.Errorf("problems quote a secret: %v", ps)
				}
			}
		})
	}
}

// TestFactoryDefaultsValid: the configuration a device ships with is a
// valid format-1 configuration and converts to valid later formats.
func TestFactoryDefaultsValid(t *testing.T) {
	reg := iadconfig.Default()
	d, err := reg.Decode(readDir(filepath.Join("..", "config", "defaults")))
	if err != nil {
		t.Fatal(err)
	}
	if d.Format != 1 {
		t.Fatalf("factory defaults are format %d, want 1", d.Format)
	}
	if ps := reg.Validate(d); ps != nil {
		t.Fatalf("factory defaults: %v", ps)
	}
	for _, to := range []uint32{2, 3} {
		got, err := reg.Convert(d, to, true)
		if err != nil {
			t.Fatalf("convert to %d: %v", to, err)
		}
		if ps := reg.Validate(got); ps != nil {
			t.Errorf("factory defaults in format %d: %v", to, ps)
		}
	}
}

func TestProblemsSummary(t *testing.T) {
	ps := iadconfig.Problems{
		{File: "users.conf", Field: "line.2.number", Msg: "2001 is also the number of line.1"},
		{File: "ports.conf", Field: "fxs2.line", Msg: "line 7 is not defined in subscribers.conf"},
		{File: "protocol.conf", Field: "mgmt.address", Msg: `"300.1.1.1" is not an IP address`},
	}
	cases := []struct {
		max  int
		want string
	}{
		{255, `3 problems: users.conf: line.2.number: 2001 is also the number of line.1; ports.conf: fxs2.line: line 7 is not defined in subscribers.conf; protocol.conf: mgmt.address: "300.1.1.1" is not an IP address`},
		{120, `3 problems: users.conf: line.2.number: 2001 is also the number of line.1 (+2 more)`},
		{40, `3 problems: users.conf: lin… (+2 more)`},
	}
	for _, tc := range cases {
		got := ps.Summary(tc.max)
		if got != tc.want {
			t.Errorf("Summary(%d):\ngot  %q\nwant %q", tc.max, got, tc.want)
		}
		if len(got) > tc.max {
			t.Errorf("Summary(%d) is %d bytes", tc.max, len(got))
		}
	}
	many := make(iadconfig.Problems, 100)
	for i := range many {
		many[i] = iadconfig.Problem{File: "ports.conf", Field: "fxs1.gain", Msg: "20 is out of range -12..12"}
	}
	if s := many.Summary(255); len(s) > 255 || !strings.HasSuffix(s, " more)") {
		t.Errorf("Summary of 100 problems: %q (%d bytes)", s, len(s))
	}
}
