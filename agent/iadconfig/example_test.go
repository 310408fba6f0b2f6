package iadconfig_test

import (
	"fmt"
	"os"

	"github.com/iadsafe/iad-agent/agent/iadconfig"
)

// A format-1 configuration is read, validated, and converted for software
// of format 2; the result is validated again and written out.
func Example() {
	files := map[string]string{
		"users.conf":    "format-version = 1\nline.1.number = 2001\nline.1.port = fxs1\nline.1.sip.username = 2001\nline.1.sip.password = s3cret\n",
		"ports.conf":    "format-version = 1\nfxs1.type = fxs\nfxs1.impedance = 600\nfxs1.gain = -2\n",
		"protocol.conf": "format-version = 1\nsignalling = sip\nsip.registrar = sip.example.net\nntp.server = 192.0.2.1\n",
		"defaults.conf": "format-version = 1\nnet.wan.mode = dhcp\nnet.lan.address = 192.168.1.1\nnet.lan.netmask = 255.255.255.0\ncodec.preferred = g722\ncodec.fallback = g711a\n",
	}
	read := func(name string) ([]byte, error) {
		if s, ok := files[name]; ok {
			return []byte(s), nil
		}
		return nil, os.ErrNotExist
	}
	reg := iadconfig.Default()
	doc, err := reg.Decode(read)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("format", doc.Format, "valid:", reg.Validate(doc) == nil)
	v2, err := reg.Convert(doc, 2, false)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("format", v2.Format, "valid:", reg.Validate(v2) == nil)
	out, _ := reg.Encode(v2)
	fmt.Print(string(out["users.conf"]), string(out["ports.conf"]))
	_, err = reg.Convert(doc, 3, false)
	fmt.Println(err)
	// Output:
	// format 1 valid: true
	// format 2 valid: true
	// format-version = 2
	// line.1.number = 2001
	// line.1.port = fxs1
	// line.1.sip.username = 2001
	// line.1.sip.password = s3cret
	// line.1.codecs = g722,g711a
	// format-version = 2
	// fxs1.type = fxs
	// fxs1.tx-gain = -2
	// fxs1.rx-gain = -2
	// fxs1.impedance = 600
	// iadconfig: configuration format differs in major version: configuration is format 1 (compat 1.0), the running software uses format 3 (compat 2.0); force to convert anyway
}
