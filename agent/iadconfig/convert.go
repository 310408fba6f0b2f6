package iadconfig

import (
	"fmt"
	"strconv"
	"strings"
)

// rewrite builds file name of format version from src: each entry goes
// through fn, which emits zero or more entries for it. The header
// comments are kept.
func rewrite(src *File, name string, version uint32, fn func(e Entry, emit func(key, value string)) error) (*File, error) {
	out := &File{Name: name, Version: version, Header: append([]string(nil), src.Header...)}
	emit := func(k, v string) { out.Entries = append(out.Entries, Entry{Key: k, Value: v}) }
	for _, e := range src.Entries {
		if err := fn(e, emit); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func copyAll(e Entry, emit func(key, value string)) error { emit(e.Key, e.Value); return nil }

func need(d *Doc, names ...string) error {
	for _, n := range names {
		if d.Files[n] == nil {
			return fmt.Errorf("%w: %s is missing", ErrConvert, n)
		}
	}
	return nil
}

// ConvertV1ToV2 is the minor step 1→2:
//
//   - defaults.conf: codec.preferred and codec.fallback become
//     codec.list = preferred,fallback (fallback left out when equal);
//   - users.conf: every line gets line.<n>.codecs = that list, so each
//     line keeps the codecs it used;
//   - ports.conf: <port>.gain becomes <port>.tx-gain and <port>.rx-gain;
//   - protocol.conf: qos.tos becomes dscp.signalling and dscp.media (the
//     TOS byte's upper six bits), ntp.server becomes ntp.servers and
//     mgmt.trap-target becomes mgmt.trap-targets (lists of one).
//
// Everything else is copied.
func ConvertV1ToV2(in *Doc) (*Doc, error) {
	if err := need(in, UsersFile, PortsFile, ProtocolFile, DefaultsFile); err != nil {
		return nil, err
	}
	defs := in.Files[DefaultsFile]
	pref, ok := defs.Get("codec.preferred")
	if !ok {
		return nil, fmt.Errorf("%w: %s: codec.preferred is missing", ErrConvert, DefaultsFile)
	}
	list := pref
	if fb, ok := defs.Get("codec.fallback"); ok && fb != pref {
		list += "," + fb
	}
	out := NewDoc(2)
	var err error
	out.Files[DefaultsFile], err = rewrite(defs, DefaultsFile, 2, func(e Entry, emit func(string, string)) error {
		switch e.Key {
		case "codec.preferred":
			emit("codec.list", list)
		case "codec.fallback":
		default:
			emit(e.Key, e.Value)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	users := in.Files[UsersFile]
	out.Files[UsersFile], err = rewrite(users, UsersFile, 2, func(e Entry, emit func(string, string)) error {
		if strings.HasSuffix(e.Key, ".codecs") {
			return fmt.Errorf("%w: %s: %s is not a format 1 field", ErrConvert, UsersFile, e.Key)
		}
		emit(e.Key, e.Value)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, b := range blocks(users, 1) {
		out.Files[UsersFile].Set(b+".codecs", list)
	}
	out.Files[PortsFile], err = rewrite(in.Files[PortsFile], PortsFile, 2, func(e Entry, emit func(string, string)) error {
		if p, ok := strings.CutSuffix(e.Key, ".gain"); ok {
			emit(p+".tx-gain", e.Value)
			emit(p+".rx-gain", e.Value)
			return nil
		}
		emit(e.Key, e.Value)
		return nil
	})
	if err != nil {
		return nil, err
	}
	out.Files[ProtocolFile], err = rewrite(in.Files[ProtocolFile], ProtocolFile, 2, func(e Entry, emit func(string, string)) error {
		switch e.Key {
		case "qos.tos":
			tos, err := strconv.Atoi(e.Value)
			if err != nil || tos < 0 || tos > 255 || tos%4 != 0 {
				return fmt.Errorf("%w: %s: qos.tos %q is not a TOS byte with the ECN bits zero", ErrConvert, ProtocolFile, truncate(e.Value, 16))
			}
			emit("dscp.signalling", strconv.Itoa(tos>>2))
			emit("dscp.media", strconv.Itoa(tos>>2))
		case "ntp.server":
			emit("ntp.servers", e.Value)
		case "mgmt.trap-target":
			emit("mgmt.trap-targets", e.Value)
		default:
			emit(e.Key, e.Value)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ConvertV2ToV3 is the major step 2→3: users.conf becomes
// subscribers.conf without the line.<n>.port keys, and each port that a
// line rang gets <port>.line = <n>. Format 3 lets a port ring one line
// only, so a configuration where two lines share a port cannot be
// converted; neither can one whose line names a port that ports.conf
// does not define.
func ConvertV2ToV3(in *Doc) (*Doc, error) {
	if err := need(in, UsersFile, PortsFile, ProtocolFile, DefaultsFile); err != nil {
		return nil, err
	}
	users, ports := in.Files[UsersFile], in.Files[PortsFile]
	portLine := map[string]string{} // port → line number
	var order []string
	for _, b := range blocks(users, 1) {
		p, ok := users.Get(b + ".port")
		if !ok {
			continue
		}
		n := strings.TrimPrefix(b, "line.")
		if !hasBlock(ports, p) {
			return nil, fmt.Errorf("%w: line %s rings %q, which %s does not define", ErrConvert, n, truncate(p, 16), PortsFile)
		}
		if prev, dup := portLine[p]; dup {
			return nil, fmt.Errorf("%w: lines %s and %s both ring %s; format 3 lets a port ring one line", ErrConvert, prev, n, p)
		}
		portLine[p] = n
		order = append(order, p)
	}
	out := NewDoc(3)
	var err error
	out.Files[SubscribersFile], err = rewrite(users, SubscribersFile, 3, func(e Entry, emit func(string, string)) error {
		if strings.HasSuffix(e.Key, ".port") && strings.HasPrefix(e.Key, "line.") {
			return nil
		}
		emit(e.Key, e.Value)
		return nil
	})
	if err != nil {
		return nil, err
	}
	out.Files[PortsFile], err = rewrite(ports, PortsFile, 3, func(e Entry, emit func(string, string)) error {
		if strings.HasSuffix(e.Key, ".line") {
			return fmt.Errorf("%w: %s: %s is not a format 2 field", ErrConvert, PortsFile, e.Key)
		}
		emit(e.Key, e.Value)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, p := range order {
		out.Files[PortsFile].Set(p+".line", portLine[p])
	}
	for _, n := range []string{ProtocolFile, DefaultsFile} {
		if out.Files[n], err = rewrite(in.Files[n], n, 3, copyAll); err != nil {
			return nil, err
		}
	}
	return out, nil
}
