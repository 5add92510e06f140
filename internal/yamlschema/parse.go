package yamlschema

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// parser is a minimal JSON scanner over the schema text. It builds the
// compiled schema directly (no intermediate map[string]any) and skips the
// annotations, most of a schema's bytes, without decoding them.
type parser struct {
	s   string
	pos int
}

func (p *parser) errorf(format string, args ...any) error {
	line := 1 + strings.Count(p.s[:min(p.pos, len(p.s))], "\n")
	return fmt.Errorf("schema JSON, line %d: %s", line, fmt.Sprintf(format, args...))
}

func (p *parser) ws() {
	s, i := p.s, p.pos
	for i < len(s) && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r') {
		i++
	}
	p.pos = i
}

func (p *parser) peek() byte {
	if p.pos < len(p.s) {
		return p.s[p.pos]
	}
	return 0
}

func (p *parser) expect(c byte) error {
	p.ws()
	if p.peek() != c {
		if p.pos >= len(p.s) {
			return p.errorf("unexpected end, want %q", c)
		}
		return p.errorf("found %q, want %q", p.s[p.pos], c)
	}
	p.pos++
	return nil
}

// object calls fn for each member with the parser at the member's value;
// fn must consume the value.
func (p *parser) object(fn func(key string) error) error {
	if err := p.expect('{'); err != nil {
		return err
	}
	p.ws()
	if p.peek() == '}' {
		p.pos++
		return nil
	}
	for {
		key, err := p.str()
		if err != nil {
			return err
		}
		if err := p.expect(':'); err != nil {
			return err
		}
		if err := fn(key); err != nil {
			return err
		}
		p.ws()
		switch p.peek() {
		case ',':
			p.pos++
		case '}':
			p.pos++
			return nil
		default:
			return p.errorf("want , or } in an object")
		}
	}
}

// array calls fn for each element with the parser at the element.
func (p *parser) array(fn func(i int) error) error {
	if err := p.expect('['); err != nil {
		return err
	}
	p.ws()
	if p.peek() == ']' {
		p.pos++
		return nil
	}
	for i := 0; ; i++ {
		if err := fn(i); err != nil {
			return err
		}
		p.ws()
		switch p.peek() {
		case ',':
			p.pos++
		case ']':
			p.pos++
			return nil
		default:
			return p.errorf("want , or ] in an array")
		}
	}
}

// strEnd returns the index of the closing quote of the string starting at
// p.pos (after its opening quote) and whether it has escapes.
func (p *parser) strEnd() (int, bool, error) {
	escaped := false
	for i := p.pos; ; {
		j := strings.IndexByte(p.s[i:], '"')
		if j < 0 {
			return 0, false, p.errorf("unterminated string")
		}
		b := strings.IndexByte(p.s[i:i+j], '\\')
		if b < 0 {
			return i + j, escaped, nil
		}
		escaped = true
		i += b + 2 // the backslash and the escaped byte
		if i > len(p.s) {
			return 0, false, p.errorf("unterminated string")
		}
	}
}

// str parses a string; without escapes it is a substring of the schema
// text (no copy).
func (p *parser) str() (string, error) {
	if err := p.expect('"'); err != nil {
		return "", err
	}
	end, escaped, err := p.strEnd()
	if err != nil {
		return "", err
	}
	raw := p.s[p.pos:end]
	p.pos = end + 1
	for i := 0; i < len(raw); i++ {
		if raw[i] < 0x20 {
			return "", p.errorf("control character in a string")
		}
	}
	if !escaped {
		if !utf8.ValidString(raw) {
			return "", p.errorf("invalid UTF-8 in a string")
		}
		return raw, nil
	}
	return p.unquote(raw)
}

func (p *parser) unquote(raw string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			b.WriteByte(c)
			i++
			continue
		}
		if i+1 >= len(raw) {
			return "", p.errorf("bad escape")
		}
		switch raw[i+1] {
		case '"', '\\', '/':
			b.WriteByte(raw[i+1])
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			r, n, err := p.hex4(raw[i+2:])
			if err != nil {
				return "", err
			}
			i += n
			if utf16.IsSurrogate(r) {
				r2, n2, err := rune(0), 0, error(nil)
				if strings.HasPrefix(raw[i+2:], `\u`) {
					r2, n2, err = p.hex4(raw[i+4:])
				}
				if err == nil && n2 > 0 {
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						r = d
						i += 2 + n2
					} else {
						r = utf8.RuneError
					}
				} else {
					r = utf8.RuneError
				}
			}
			b.WriteRune(r)
		default:
			return "", p.errorf("bad escape \\%c", raw[i+1])
		}
		i += 2
	}
	if !utf8.ValidString(b.String()) {
		return "", p.errorf("invalid UTF-8 in a string")
	}
	return b.String(), nil
}

func (p *parser) hex4(s string) (rune, int, error) {
	if len(s) < 4 {
		return 0, 0, p.errorf("bad \\u escape")
	}
	v, err := strconv.ParseUint(s[:4], 16, 32)
	if err != nil {
		return 0, 0, p.errorf("bad \\u escape")
	}
	return rune(v), 4, nil
}

// number returns a number literal as written.
func (p *parser) number() (string, error) {
	p.ws()
	start := p.pos
	i := p.pos
	if i < len(p.s) && p.s[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(p.s) && p.s[i] >= '0' && p.s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	intStart := i
	if digits() == 0 || (p.s[intStart] == '0' && i-intStart > 1) {
		return "", p.errorf("want a number")
	}
	if i < len(p.s) && p.s[i] == '.' {
		i++
		if digits() == 0 {
			return "", p.errorf("bad number")
		}
	}
	if i < len(p.s) && (p.s[i] == 'e' || p.s[i] == 'E') {
		i++
		if i < len(p.s) && (p.s[i] == '+' || p.s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return "", p.errorf("bad number")
		}
	}
	p.pos = i
	return p.s[start:i], nil
}

// scalar parses a string, number, boolean or null: string, numberLit,
// bool or nil.
func (p *parser) scalar() (any, error) {
	p.ws()
	switch c := p.peek(); {
	case c == '"':
		return p.str()
	case c == '-' || (c >= '0' && c <= '9'):
		lit, err := p.number()
		return numberLit(lit), err
	case strings.HasPrefix(p.s[p.pos:], "true"):
		p.pos += 4
		return true, nil
	case strings.HasPrefix(p.s[p.pos:], "false"):
		p.pos += 5
		return false, nil
	case strings.HasPrefix(p.s[p.pos:], "null"):
		p.pos += 4
		return nil, nil
	case c == '{' || c == '[':
		return nil, p.errorf("found an object or an array")
	}
	return nil, p.errorf("want a value")
}

// skip parses over any value.
func (p *parser) skip() error {
	p.ws()
	switch p.peek() {
	case '{':
		return p.object(func(string) error { return p.skip() })
	case '[':
		return p.array(func(int) error { return p.skip() })
	case '"':
		p.pos++
		end, _, err := p.strEnd()
		p.pos = end + 1
		return err
	}
	_, err := p.scalar()
	return err
}
