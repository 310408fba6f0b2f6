package iadconfig

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Model file names.
const (
	UsersFile       = "users.conf"       // formats 1 and 2
	SubscribersFile = "subscribers.conf" // format 3 and later
	PortsFile       = "ports.conf"
	ProtocolFile    = "protocol.conf"
)

// Fields shared by several formats. Each format lists its own fields, so
// a change in one format never leaks into another.
func lineFields(file string, mapping ...Field) []Field {
	fs := []Field{
		{File: file, Key: "line.<n>.number", Type: tNumber, Required: true, Doc: "directory number of the subscriber line"},
		{File: file, Key: "line.<n>.display-name", Type: tText(64), Doc: "name shown to the called party"},
	}
	fs = append(fs, mapping...)
	return append(fs, []Field{
		{File: file, Key: "line.<n>.enabled", Type: tBool, Doc: "whether the line registers and rings (default yes)"},
		{File: file, Key: "line.<n>.sip.username", Type: tToken(64), Doc: "SIP user and authentication name"},
		{File: file, Key: "line.<n>.sip.password", Type: tSecret(128), Secret: true, Doc: "SIP authentication password (secret)"},
		{File: file, Key: "line.<n>.mgcp.endpoint", Type: tToken(64), Doc: "MGCP endpoint name, e.g. aaln/1"},
	}...)
}

var linePortField = Field{File: UsersFile, Key: "line.<n>.port", Type: tPortRef, Required: true, Doc: "FXS port the line rings; several lines may share a port"}

var lineCodecsField = Field{Key: "line.<n>.codecs", Type: tList(tCodec, 1, 6), Doc: "codec preference of the line, best first (default: codec.list of defaults.conf)"}

func portFields(gain []Field, extra ...Field) []Field {
	fs := []Field{
		{File: PortsFile, Key: "<port>.type", Type: tEnum("fxs", "fxo"), Required: true, Doc: "fxs (feeds a telephone) or fxo (takes a PSTN line); must match the port name"},
		{File: PortsFile, Key: "<port>.enabled", Type: tBool, Doc: "whether the port is in service (default yes)"},
	}
	fs = append(fs, gain...)
	fs = append(fs,
		Field{File: PortsFile, Key: "<port>.impedance", Type: tEnum("600", "900", "tbr21"), Required: true, Doc: "line impedance: 600 or 900 ohm, or the complex TBR21 network"},
		Field{File: PortsFile, Key: "<port>.ring-voltage", Type: tInt(30, 90), Doc: "FXS only: ringing voltage, Vrms"},
		Field{File: PortsFile, Key: "<port>.offhook-timeout", Type: tInt(1, 300), Doc: "FXS only: seconds off-hook without dialling before the howler tone"},
		Field{File: PortsFile, Key: "<port>.lifeline", Type: tBool, Doc: "FXO only: connect the first FXS port to this line when power or service fails"},
	)
	return append(fs, extra...)
}

func sipFields() []Field {
	return []Field{
		{File: ProtocolFile, Key: "signalling", Type: tEnum("sip", "mgcp"), Required: true, Doc: "call signalling protocol"},
		{File: ProtocolFile, Key: "sip.registrar", Type: tHost, Doc: "SIP registrar (required with signalling = sip)"},
		{File: ProtocolFile, Key: "sip.proxy", Type: tHost, Doc: "outbound SIP proxy (default: the registrar)"},
		{File: ProtocolFile, Key: "sip.port", Type: tInt(1, 65535), Doc: "SIP port of registrar and proxy (default 5060)"},
		{File: ProtocolFile, Key: "sip.transport", Type: tEnum("udp", "tcp", "tls"), Doc: "SIP transport (default udp)"},
		{File: ProtocolFile, Key: "sip.register-expires", Type: tInt(60, 86400), Doc: "registration lifetime in seconds"},
		{File: ProtocolFile, Key: "sip.t1-ms", Type: tInt(100, 5000), Doc: "SIP timer T1 (RTT estimate), ms (default 500)"},
		{File: ProtocolFile, Key: "sip.t2-ms", Type: tInt(1000, 40000), Doc: "SIP timer T2 (maximum retransmit interval), ms (default 4000)"},
		{File: ProtocolFile, Key: "mgcp.call-agent", Type: tHost, Doc: "MGCP call agent (required with signalling = mgcp)"},
		{File: ProtocolFile, Key: "mgcp.port", Type: tInt(1, 65535), Doc: "MGCP call agent port (default 2727)"},
	}
}

func defaultsFields(codec ...Field) []Field {
	fs := []Field{
		{File: DefaultsFile, Key: "net.wan.mode", Type: tEnum("dhcp", "static", "pppoe"), Required: true, Doc: "how the WAN side gets its address"},
		{File: DefaultsFile, Key: "net.lan.address", Type: tIPv4, Required: true, Doc: "LAN address of the device (the way in when all else fails)"},
		{File: DefaultsFile, Key: "net.lan.netmask", Type: tNetmask, Required: true, Doc: "LAN netmask"},
	}
	fs = append(fs, codec...)
	return append(fs,
		Field{File: DefaultsFile, Key: "voice.jitter-buffer-ms", Type: tInt(10, 500), Doc: "jitter buffer, ms"},
		Field{File: DefaultsFile, Key: "log.level", Type: tEnum("debug", "info", "warn", "error"), Doc: "log level of the voice software"},
		Field{File: DefaultsFile, Key: "watchdog.enabled", Type: tBool, Doc: "hardware watchdog"},
	)
}

func withFile(f Field, file string) Field { f.File = file; return f }

// V1 is the factory format.
func V1() Format {
	fields := lineFields(UsersFile, linePortField)
	fields = append(fields, portFields([]Field{
		{File: PortsFile, Key: "<port>.gain", Type: tInt(-12, 12), Doc: "gain in dB, both directions (default 0)"},
	})...)
	fields = append(fields, sipFields()...)
	fields = append(fields,
		Field{File: ProtocolFile, Key: "qos.tos", Type: tTOS, Doc: "IP TOS byte of signalling and media packets"},
		Field{File: ProtocolFile, Key: "ntp.server", Type: tHost, Doc: "time server"},
		Field{File: ProtocolFile, Key: "ntp.interval", Type: tInt(60, 86400), Doc: "seconds between time synchronisations"},
		Field{File: ProtocolFile, Key: "mgmt.address", Type: tUnicast, Doc: "address the device is managed at"},
		Field{File: ProtocolFile, Key: "mgmt.trap-target", Type: tUnicast, Doc: "where the device sends notifications"},
		Field{File: ProtocolFile, Key: "mgmt.snmp-port", Type: tInt(1, 65535), Doc: "SNMP port of the device"},
	)
	fields = append(fields, defaultsFields(
		Field{File: DefaultsFile, Key: "codec.preferred", Type: tCodec, Required: true, Doc: "codec offered first"},
		Field{File: DefaultsFile, Key: "codec.fallback", Type: tCodec, Doc: "codec offered second"},
	)...)
	return Format{
		Version: 1, Compat: Compat{1, 0},
		Files:   []string{UsersFile, PortsFile, ProtocolFile, DefaultsFile},
		Fields:  fields,
		Checks:  []Check{checkLines(UsersFile, true), checkPorts(false, ""), checkProtocol, checkDefaults(true)},
		Summary: "the factory format: lines name their port, one gain per port, one NTP server and trap target, a TOS byte, a global codec pair",
	}
}

// V2 adds per-line codec lists, separate transmit and receive gains,
// DSCP values, and lists of NTP servers and trap targets. It keeps every
// key of V1 that kept its meaning, so it is a minor step.
func V2() Format {
	fields := append(lineFields(UsersFile, linePortField), withFile(lineCodecsField, UsersFile))
	fields = append(fields, portFields([]Field{
		{File: PortsFile, Key: "<port>.tx-gain", Type: tInt(-12, 12), Doc: "transmit gain (towards the network) in dB (default 0)"},
		{File: PortsFile, Key: "<port>.rx-gain", Type: tInt(-12, 12), Doc: "receive gain (towards the telephone) in dB (default 0)"},
	})...)
	fields = append(fields, sipFields()...)
	fields = append(fields, laterProtocolFields()...)
	fields = append(fields, defaultsFields(
		Field{File: DefaultsFile, Key: "codec.list", Type: tList(tCodec, 1, 6), Required: true, Doc: "codecs offered, best first, for lines without their own list"},
	)...)
	return Format{
		Version: 2, Compat: Compat{1, 1},
		Files:   []string{UsersFile, PortsFile, ProtocolFile, DefaultsFile},
		Fields:  fields,
		Checks:  []Check{checkLines(UsersFile, true), checkPorts(false, ""), checkProtocol, checkDefaults(false)},
		Summary: "per-line codec lists (line.<n>.codecs), tx-gain/rx-gain per port, dscp.signalling/dscp.media instead of qos.tos, ntp.servers and mgmt.trap-targets lists, codec.list in defaults",
	}
}

func laterProtocolFields() []Field {
	return []Field{
		{File: ProtocolFile, Key: "dscp.signalling", Type: tDSCP, Doc: "DSCP of signalling packets (26 = AF31)"},
		{File: ProtocolFile, Key: "dscp.media", Type: tDSCP, Doc: "DSCP of media packets (46 = EF)"},
		{File: ProtocolFile, Key: "ntp.servers", Type: tList(tHost, 1, 4), Doc: "time servers, in order of preference"},
		{File: ProtocolFile, Key: "ntp.interval", Type: tInt(60, 86400), Doc: "seconds between time synchronisations"},
		{File: ProtocolFile, Key: "mgmt.address", Type: tUnicast, Doc: "address the device is managed at"},
		{File: ProtocolFile, Key: "mgmt.trap-targets", Type: tList(tUnicast, 1, 8), Doc: "where the device sends notifications"},
		{File: ProtocolFile, Key: "mgmt.snmp-port", Type: tInt(1, 65535), Doc: "SNMP port of the device"},
	}
}

// V3 moves the line-to-port mapping into ports.conf (each port names the
// one line it rings) and renames users.conf to subscribers.conf. Software
// of format 1 or 2 would find no lines at all, so it is a major step.
func V3() Format {
	fields := append(lineFields(SubscribersFile), withFile(lineCodecsField, SubscribersFile))
	fields = append(fields, portFields([]Field{
		{File: PortsFile, Key: "<port>.tx-gain", Type: tInt(-12, 12), Doc: "transmit gain (towards the network) in dB (default 0)"},
		{File: PortsFile, Key: "<port>.rx-gain", Type: tInt(-12, 12), Doc: "receive gain (towards the telephone) in dB (default 0)"},
	}, Field{File: PortsFile, Key: "<port>.line", Type: tLineRef, Doc: "FXS only: the subscriber line this port rings"})...)
	fields = append(fields, sipFields()...)
	fields = append(fields, laterProtocolFields()...)
	fields = append(fields, defaultsFields(
		Field{File: DefaultsFile, Key: "codec.list", Type: tList(tCodec, 1, 6), Required: true, Doc: "codecs offered, best first, for lines without their own list"},
	)...)
	return Format{
		Version: 3, Compat: Compat{2, 0},
		Files:   []string{SubscribersFile, PortsFile, ProtocolFile, DefaultsFile},
		Fields:  fields,
		Checks:  []Check{checkLines(SubscribersFile, false), checkPorts(true, SubscribersFile), checkProtocol, checkDefaults(false)},
		Summary: "users.conf renamed subscribers.conf; the line-to-port mapping moves to ports.conf as <port>.line, one line per port",
	}
}

// blocks returns the block instances of a file whose keys start with a
// placeholder segment at position pos (0 for "<port>.x", 1 for
// "line.<n>.x"), in canonical order.
func blocks(f *File, pos int) []string {
	if f == nil {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, e := range f.Entries {
		segs := strings.SplitN(e.Key, ".", pos+2)
		if len(segs) < pos+2 {
			continue
		}
		b := strings.Join(segs[:pos+1], ".")
		ok := false
		if pos == 0 {
			_, _, ok = portName(segs[0])
		} else {
			_, ok = lineNumber(segs[pos])
			ok = ok && segs[0] == "line"
		}
		if ok && !seen[b] {
			seen[b] = true
			out = append(out, b)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return blockOrder(a) - blockOrder(b) })
	return out
}

func lineOf(f *File, key string) int {
	if f == nil {
		return 0
	}
	if i := f.index(key); i >= 0 {
		return f.Entries[i].Line
	}
	return 0
}

// checkLines: unique numbers and SIP user names, a password only with a
// user name, and (when lines carry the mapping) a port that exists and
// is an FXS port.
func checkLines(file string, mapOnLines bool) Check {
	return func(d *Doc) []Problem {
		users := d.File(file)
		ports := d.File(PortsFile)
		var ps []Problem
		add := func(key, format string, args ...any) {
			ps = append(ps, Problem{File: file, Field: key, Line: lineOf(users, key), Msg: fmt.Sprintf(format, args...)})
		}
		numbers := map[string]string{}
		sipUsers := map[string]string{}
		for _, b := range blocks(users, 1) {
			if n, ok := users.Get(b + ".number"); ok && tNumber.Check(n) == nil {
				if other, dup := numbers[n]; dup {
					add(b+".number", "%s is also the number of %s", n, other)
				} else {
					numbers[n] = b
				}
			}
			user, hasUser := users.Get(b + ".sip.username")
			if hasUser && user != "" {
				if other, dup := sipUsers[user]; dup {
					add(b+".sip.username", "%s is also the SIP user of %s", user, other)
				} else {
					sipUsers[user] = b
				}
			}
			if pw, ok := users.Get(b + ".sip.password"); ok && pw != "" && !hasUser {
				add(b+".sip.password", "set without %s.sip.username", b)
			}
			if !mapOnLines {
				continue
			}
			p, ok := users.Get(b + ".port")
			kind, _, valid := portName(p)
			if !ok || !valid {
				continue // reported by the field checks
			}
			switch {
			case !hasBlock(ports, p):
				add(b+".port", "%s is not defined in %s", p, PortsFile)
			case kind != "fxs":
				add(b+".port", "%s is an FXO port; a subscriber line rings an FXS port", p)
			}
		}
		return ps
	}
}

func hasBlock(f *File, block string) bool {
	return f != nil && slices.Contains(blocks(f, 0), block)
}

// checkPorts: the type matches the name, FXS and FXO settings stay on
// their kind of port, and (when ports carry the mapping) each mapped line
// exists and every enabled line is mapped.
func checkPorts(mapOnPorts bool, usersFile string) Check {
	return func(d *Doc) []Problem {
		ports := d.File(PortsFile)
		var ps []Problem
		add := func(key, format string, args ...any) {
			ps = append(ps, Problem{File: PortsFile, Field: key, Line: lineOf(ports, key), Msg: fmt.Sprintf(format, args...)})
		}
		mapped := map[string]bool{}
		for _, p := range blocks(ports, 0) {
			kind, _, _ := portName(p)
			if t, ok := ports.Get(p + ".type"); ok && (t == "fxs" || t == "fxo") && t != kind {
				add(p+".type", "%s does not match the port name %s", t, p)
			}
			only := map[string]string{"ring-voltage": "fxs", "offhook-timeout": "fxs", "lifeline": "fxo", "line": "fxs"}
			for _, e := range ports.Entries {
				rest, ok := strings.CutPrefix(e.Key, p+".")
				if !ok {
					continue
				}
				if want, ok := only[rest]; ok && want != kind && (rest != "line" || mapOnPorts) {
					add(e.Key, "is an %s setting on %s port %s", strings.ToUpper(want), strings.ToUpper(kind), p)
				}
			}
			if !mapOnPorts || kind != "fxs" {
				continue
			}
			if l, ok := ports.Get(p + ".line"); ok {
				if _, valid := lineNumber(l); valid {
					if !hasLine(d.File(usersFile), "line."+l) {
						add(p+".line", "line %s is not defined in %s", l, usersFile)
					}
					mapped["line."+l] = true
				}
			}
		}
		if mapOnPorts {
			users := d.File(usersFile)
			for _, b := range blocks(users, 1) {
				if en, _ := users.Get(b + ".enabled"); en != "no" && !mapped[b] {
					ps = append(ps, Problem{File: usersFile, Field: b, Line: lineOf(users, b+".number"),
						Msg: fmt.Sprintf("enabled, but no port in %s rings it", PortsFile)})
				}
			}
		}
		return ps
	}
}

func hasLine(f *File, block string) bool {
	return f != nil && slices.Contains(blocks(f, 1), block)
}

// checkProtocol: the signalling protocol has its server, and T2 is not
// below T1.
func checkProtocol(d *Doc) []Problem {
	f := d.File(ProtocolFile)
	if f == nil {
		return nil
	}
	var ps []Problem
	switch sig, _ := f.Get("signalling"); sig {
	case "sip":
		if _, ok := f.Get("sip.registrar"); !ok {
			ps = append(ps, Problem{File: ProtocolFile, Field: "sip.registrar", Msg: "missing (required with signalling = sip)"})
		}
	case "mgcp":
		if _, ok := f.Get("mgcp.call-agent"); !ok {
			ps = append(ps, Problem{File: ProtocolFile, Field: "mgcp.call-agent", Msg: "missing (required with signalling = mgcp)"})
		}
	}
	t1, err1 := strconv.Atoi(get(f, "sip.t1-ms", "500"))
	t2, err2 := strconv.Atoi(get(f, "sip.t2-ms", "4000"))
	if err1 == nil && err2 == nil && t2 < t1 {
		ps = append(ps, Problem{File: ProtocolFile, Field: "sip.t2-ms", Line: lineOf(f, "sip.t2-ms"), Msg: fmt.Sprintf("%d is below sip.t1-ms %d", t2, t1)})
	}
	return ps
}

func get(f *File, key, def string) string {
	if v, ok := f.Get(key); ok {
		return v
	}
	return def
}

// checkDefaults: the LAN address is a host address of its subnet, and
// (format 1) the fallback codec differs from the preferred one.
func checkDefaults(codecPair bool) Check {
	return func(d *Doc) []Problem {
		f := d.File(DefaultsFile)
		if f == nil {
			return nil
		}
		var ps []Problem
		addr, err := netip.ParseAddr(get(f, "net.lan.address", ""))
		bits, merr := maskBits(get(f, "net.lan.netmask", ""))
		if err == nil && addr.Is4() && merr == nil {
			pfx := netip.PrefixFrom(addr, bits).Masked()
			b := pfx.Addr().As4()
			for i := bits; i < 32; i++ {
				b[i/8] |= 0x80 >> (i % 8)
			}
			switch addr {
			case pfx.Addr():
				ps = append(ps, Problem{File: DefaultsFile, Field: "net.lan.address", Line: lineOf(f, "net.lan.address"), Msg: fmt.Sprintf("%s is the network address of %s", addr, pfx)})
			case netip.AddrFrom4(b):
				ps = append(ps, Problem{File: DefaultsFile, Field: "net.lan.address", Line: lineOf(f, "net.lan.address"), Msg: fmt.Sprintf("%s is the broadcast address of %s", addr, pfx)})
			}
		}
		if codecPair {
			p, ok1 := f.Get("codec.preferred")
			fb, ok2 := f.Get("codec.fallback")
			if ok1 && ok2 && p == fb {
				ps = append(ps, Problem{File: DefaultsFile, Field: "codec.fallback", Line: lineOf(f, "codec.fallback"), Msg: "same as codec.preferred"})
			}
		}
		return ps
	}
}
