package mib

import (
	"fmt"
	"strconv"
	"strings"
)

// This file holds a deliberately small SMIv2 reader for the drift tests.
// It understands only what IAD-UPGRADE-MIB and the standard TCs it checks
// use: OID assignments of the form "::= { parent n ... }" and INTEGER
// enumerations. Anything it does not understand makes it fail loudly
// rather than guess.

// tokenize splits ASN.1 source into tokens. Comments are dropped; a quoted
// string, which may contain anything (even "--" or "::="), is one token.
func tokenize(src string) ([]string, error) {
	var toks []string
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f':
			i++
		case strings.HasPrefix(src[i:], "--"):
			// A comment ends at the end of the line or at the next "--".
			end := len(src)
			if nl := strings.IndexByte(src[i+2:], '\n'); nl >= 0 {
				end = i + 2 + nl
			}
			if dd := strings.Index(src[i+2:end], "--"); dd >= 0 {
				end = i + 2 + dd + 2
			}
			i = end
		case c == '"':
			j := i + 1
			for {
				k := strings.IndexByte(src[j:], '"')
				if k < 0 {
					return nil, fmt.Errorf("unterminated string at offset %d", i)
				}
				j += k + 1
				if j < len(src) && src[j] == '"' { // "" escapes a quote
					j++
					continue
				}
				break
			}
			toks = append(toks, src[i:j])
			i = j
		case c == '\'':
			k := strings.IndexByte(src[i+1:], '\'')
			if k < 0 {
				return nil, fmt.Errorf("unterminated quoted literal at offset %d", i)
			}
			j := i + 1 + k + 1
			if j < len(src) && (src[j] == 'H' || src[j] == 'h' || src[j] == 'B' || src[j] == 'b') {
				j++
			}
			toks = append(toks, src[i:j])
			i = j
		case strings.HasPrefix(src[i:], "::="):
			toks = append(toks, "::=")
			i += 3
		case strings.HasPrefix(src[i:], ".."):
			toks = append(toks, "..")
			i += 2
		case isWordByte(c):
			j := i
			for j < len(src) && isWordByte(src[j]) && !strings.HasPrefix(src[j:], "--") {
				j++
			}
			toks = append(toks, src[i:j])
			i = j
		default:
			toks = append(toks, string(c))
			i++
		}
	}
	return toks, nil
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

func isLowerIdent(s string) bool { return s != "" && s[0] >= 'a' && s[0] <= 'z' }

// nodeMacros are the macros whose instances are registered in the OID
// tree.
var nodeMacros = map[string]bool{
	"MODULE-IDENTITY":    true,
	"OBJECT-IDENTITY":    true,
	"OBJECT-TYPE":        true,
	"NOTIFICATION-TYPE":  true,
	"OBJECT-GROUP":       true,
	"NOTIFICATION-GROUP": true,
	"MODULE-COMPLIANCE":  true,
	"AGENT-CAPABILITIES": true,
}

// wellKnown are the roots that IAD-UPGRADE-MIB may hang from.
var wellKnown = map[string]OID{
	"iso":         {1},
	"org":         {1, 3},
	"dod":         {1, 3, 6},
	"internet":    {1, 3, 6, 1},
	"mib-2":       {1, 3, 6, 1, 2, 1},
	"private":     {1, 3, 6, 1, 4},
	"enterprises": {1, 3, 6, 1, 4, 1},
}

// parsedMIB is what the drift tests need from a module.
type parsedMIB struct {
	nodes map[string]OID            // every registered node, resolved
	enums map[string]map[string]int // TC or object name -> label -> value
}

type assignment struct {
	parent string
	subs   []uint32
}

func parseMIB(src string) (*parsedMIB, error) {
	toks, err := tokenize(src)
	if err != nil {
		return nil, err
	}
	p := &parsedMIB{nodes: map[string]OID{}, enums: map[string]map[string]int{}}
	assigns := map[string]assignment{}
	for i := 0; i+1 < len(toks); i++ {
		name, kw := toks[i], toks[i+1]
		switch {
		case name == "::=" && kw == "TEXTUAL-CONVENTION" && i > 0:
			// "Name ::= TEXTUAL-CONVENTION ... SYNTAX INTEGER { ... }"
			tc := toks[i-1]
			e, err := enumAfterSyntax(toks, i+2, len(toks))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", tc, err)
			}
			if e != nil {
				p.enums[tc] = e
			}
		case !isLowerIdent(name):
		case nodeMacros[kw]:
			end := indexFrom(toks, i+2, "::=")
			if end < 0 {
				return nil, fmt.Errorf("%s %s: no ::=", name, kw)
			}
			a, err := parseAssignment(toks, end+1)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			if _, dup := assigns[name]; dup {
				return nil, fmt.Errorf("%s: assigned twice", name)
			}
			assigns[name] = a
			if kw == "OBJECT-TYPE" {
				e, err := enumAfterSyntax(toks, i+2, end)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", name, err)
				}
				if e != nil {
					p.enums[name] = e
				}
			}
			i = end
		case kw == "OBJECT" && i+3 < len(toks) && toks[i+2] == "IDENTIFIER" && toks[i+3] == "::=":
			a, err := parseAssignment(toks, i+4)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			if _, dup := assigns[name]; dup {
				return nil, fmt.Errorf("%s: assigned twice", name)
			}
			assigns[name] = a
			i += 3
		}
	}
	var resolve func(name string, depth int) (OID, error)
	resolve = func(name string, depth int) (OID, error) {
		if o, ok := p.nodes[name]; ok {
			return o, nil
		}
		a, ok := assigns[name]
		if !ok {
			if o, ok := wellKnown[name]; ok {
				return o, nil
			}
			return nil, fmt.Errorf("unknown parent %q", name)
		}
		if depth > 64 {
			return nil, fmt.Errorf("%s: assignment loop", name)
		}
		po, err := resolve(a.parent, depth+1)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		o := po.Append(a.subs...)
		p.nodes[name] = o
		return o, nil
	}
	for name := range assigns {
		if _, err := resolve(name, 0); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func indexFrom(toks []string, from int, want string) int {
	for i := from; i < len(toks); i++ {
		if toks[i] == want {
			return i
		}
	}
	return -1
}

// parseAssignment reads "{ parent n ... }" starting at toks[i].
func parseAssignment(toks []string, i int) (assignment, error) {
	if i+3 >= len(toks) || toks[i] != "{" || !isLowerIdent(toks[i+1]) {
		return assignment{}, fmt.Errorf("want { parent n }, got %q", strings.Join(toks[i:min(i+4, len(toks))], " "))
	}
	a := assignment{parent: toks[i+1]}
	for j := i + 2; j < len(toks); j++ {
		if toks[j] == "}" {
			if len(a.subs) == 0 {
				return assignment{}, fmt.Errorf("no sub-identifier after %q", a.parent)
			}
			return a, nil
		}
		v, err := strconv.ParseUint(toks[j], 10, 32)
		if err != nil {
			return assignment{}, fmt.Errorf("sub-identifier %q: %w", toks[j], err)
		}
		a.subs = append(a.subs, uint32(v))
	}
	return assignment{}, fmt.Errorf("unterminated { %s", a.parent)
}

// enumAfterSyntax finds the first SYNTAX in toks[from:to] and, if it is an
// enumerated INTEGER, returns its labels. It returns nil for any other
// syntax.
func enumAfterSyntax(toks []string, from, to int) (map[string]int, error) {
	i := indexFrom(toks[:to], from, "SYNTAX")
	if i < 0 || i+2 >= to || toks[i+1] != "INTEGER" || toks[i+2] != "{" {
		return nil, nil
	}
	e := map[string]int{}
	for j := i + 3; j < to; {
		// label ( n ) followed by "," or "}"
		if j+4 >= to || !isLowerIdent(toks[j]) || toks[j+1] != "(" || toks[j+3] != ")" {
			return nil, fmt.Errorf("bad enumeration near %q", strings.Join(toks[j:min(j+5, to)], " "))
		}
		v, err := strconv.Atoi(toks[j+2])
		if err != nil {
			return nil, fmt.Errorf("enumeration value %q: %w", toks[j+2], err)
		}
		if _, dup := e[toks[j]]; dup {
			return nil, fmt.Errorf("label %q twice", toks[j])
		}
		e[toks[j]] = v
		switch toks[j+4] {
		case ",":
			j += 5
		case "}":
			return e, nil
		default:
			return nil, fmt.Errorf("want , or } after %s(%s), got %q", toks[j], toks[j+2], toks[j+4])
		}
	}
	return nil, fmt.Errorf("unterminated enumeration")
}
