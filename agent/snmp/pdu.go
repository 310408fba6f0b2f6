package snmp

import (
	"bytes"
	"fmt"

	"github.com/gosnmp/gosnmp"
)

// v2cPrefix is what follows the outer SEQUENCE header of a v2c message
// with an empty community: version 1 (v2c), community "".
var v2cPrefix = []byte{0x02, 0x01, 0x01, 0x04, 0x00}

// EncodePDU marshals p's PDU alone (the TLV SNMPv3 puts in a scoped PDU)
// with gosnmp: it builds a v2c message with an empty community and cuts
// the envelope off. p's Version and Community are ignored.
func EncodePDU(p *gosnmp.SnmpPacket) ([]byte, error) {
	q := *p
	q.Version, q.Community, q.SecurityParameters = gosnmp.Version2c, "", nil
	msg, err := q.MarshalMsg()
	if err != nil {
		return nil, err
	}
	if len(msg) < 2 {
		return nil, fmt.Errorf("snmp: encoded message of %d octets", len(msg))
	}
	n, ok := berLengthSize(msg[1:])
	if !ok || !bytes.HasPrefix(msg[1+n:], v2cPrefix) {
		return nil, fmt.Errorf("snmp: unexpected v2c envelope % x", msg[:min(len(msg), 12)])
	}
	return msg[1+n+len(v2cPrefix):], nil
}

// DecodePDU decodes one PDU TLV (from a scoped PDU) with gosnmp, behind
// the same recover as every decode. The result's Version is v2c.
func DecodePDU(pdu []byte) (*gosnmp.SnmpPacket, error) {
	body := make([]byte, 0, len(v2cPrefix)+len(pdu))
	body = append(append(body, v2cPrefix...), pdu...)
	msg := append([]byte{0x30}, berLength(len(body))...)
	return decode(append(msg, body...))
}

// berLength encodes a definite BER length.
func berLength(n int) []byte {
	switch {
	case n < 0x80:
		return []byte{byte(n)}
	case n < 0x100:
		return []byte{0x81, byte(n)}
	case n < 0x10000:
		return []byte{0x82, byte(n >> 8), byte(n)}
	}
	return []byte{0x83, byte(n >> 16), byte(n >> 8), byte(n)}
}

// Decode decodes a whole SNMPv1/v2c message with gosnmp behind a recover,
// for code that receives responses (notify's informs).
func Decode(msg []byte) (*gosnmp.SnmpPacket, error) { return decode(msg) }
