package otelconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"sync"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v3"
)

// Limits bounds what the parser accepts, so that hostile input ends in a
// diagnostic instead of exhausting memory. The zero value means the Default
// limits.
type Limits struct {
	// MaxFileSize is the largest file read, in bytes.
	MaxFileSize int64
	// MaxDepth is the deepest nesting of mappings and sequences.
	MaxDepth int
	// MaxNodes bounds the node count of the tree after aliases are
	// expanded (this is what makes an alias bomb an error, not an OOM).
	MaxNodes int
	// MaxEnvValue bounds one environment variable's value as used by
	// substitution and the overlay.
	MaxEnvValue int
}

// DefaultLimits are far above any real configuration (the largest official
// example has a few hundred nodes and a depth of 9).
var DefaultLimits = Limits{
	MaxFileSize: 4 << 20,
	MaxDepth:    64,
	MaxNodes:    100_000,
	MaxEnvValue: 64 << 10,
}

func (l Limits) withDefaults() Limits {
	if l.MaxFileSize <= 0 {
		l.MaxFileSize = DefaultLimits.MaxFileSize
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultLimits.MaxDepth
	}
	if l.MaxNodes <= 0 {
		l.MaxNodes = DefaultLimits.MaxNodes
	}
	if l.MaxEnvValue <= 0 {
		l.MaxEnvValue = DefaultLimits.MaxEnvValue
	}
	return l
}

// Document is one YAML file parsed into a node tree whose every node keeps
// the line and column it came from. Anchors and aliases are expanded into
// copies (bounded by Limits.MaxNodes) and merge keys are applied, so later
// stages see a plain tree.
type Document struct {
	// Name is the file name used in diagnostics.
	Name string
	// Source is the file as read.
	Source []byte
	// Root is the top-level mapping, or nil when the file could not be
	// parsed into one.
	Root *yaml.Node
	// Diagnostics found so far, by every stage applied to this document.
	Diagnostics Diagnostics

	origins map[*yaml.Node]Origin
}

var yamlLineRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`) })

// Parse reads src as a single YAML document. It never panics; every problem
// is a diagnostic on the returned Document.
func Parse(name string, src []byte, lim Limits) *Document {
	lim = lim.withDefaults()
	d := &Document{Name: name, Source: src, origins: map[*yaml.Node]Origin{}}
	if int64(len(src)) > lim.MaxFileSize {
		d.errorf(CodeTooLarge, 0, 0, "", "file is %d bytes, over the limit of %d bytes", "a configuration is a few KiB; raise the limit with WithLimits if this file is really meant", len(src), lim.MaxFileSize)
		return d
	}
	body := src
	// A UTF-8 byte order mark is harmless; UTF-16/32 marks mean the file is
	// in an encoding YAML 1.2 tools rarely agree on.
	body = bytes.TrimPrefix(body, []byte("\xEF\xBB\xBF"))
	if bytes.HasPrefix(body, []byte("\xFE\xFF")) || bytes.HasPrefix(body, []byte("\xFF\xFE")) {
		d.errorf(CodeEncoding, 1, 1, "", "file is UTF-16 encoded", "save it as UTF-8")
		return d
	}
	if i := bytes.IndexByte(body, 0); i >= 0 {
		line, col := offsetPosition(src, i+len(src)-len(body))
		d.errorf(CodeEncoding, line, col, "", "NUL byte in file", "a configuration file is text; is this the right file?")
		return d
	}
	if !utf8.Valid(body) {
		off := firstInvalidUTF8(body) + len(src) - len(body)
		line, col := offsetPosition(src, off)
		d.errorf(CodeEncoding, line, col, "", "invalid UTF-8", "save the file as UTF-8")
		return d
	}
	// The YAML 1.1 parser ends lines at NEL, LS and PS too; YAML 1.2,
	// editors and this package do not, so every position after one would
	// be wrong.
	if i := bytes.IndexFunc(body, func(r rune) bool { return r == '\u0085' || r == '\u2028' || r == '\u2029' }); i >= 0 {
		r, _ := utf8.DecodeRune(body[i:])
		line, col := offsetPosition(src, i+len(src)-len(body))
		hint := fmt.Sprintf(`YAML parsers disagree on whether it ends a line; use a newline, or write it as "\u%04X" in a double-quoted string`, r)
		d.errorf(CodeEncoding, line, col, "", "Unicode line separator U+%04X in file", hint, r)
		return d
	}

	dec := yaml.NewDecoder(bytes.NewReader(body))
	var doc yaml.Node
	if err := safeDecode(dec, &doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.errorf(CodeEmpty, 0, 0, "", "file is empty", `a configuration needs at least file_format: "1.0"`)
			return d
		}
		d.syntaxError(err)
		return d
	}
	var next yaml.Node
	switch err := safeDecode(dec, &next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		d.syntaxError(err)
		return d
	default:
		d.errorf(CodeMultiDoc, next.Line, next.Column, "", "file holds more than one YAML document", "a configuration is one document; remove the '---' separator and everything after it, or split the file")
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind == 0 {
		d.errorf(CodeEmpty, 0, 0, "", "file has no content", `a configuration needs at least file_format: "1.0"`)
		return d
	}
	top := doc.Content[0]
	if top.Kind == yaml.ScalarNode && top.ShortTag() == "!!null" {
		d.errorf(CodeEmpty, top.Line, top.Column, "", "file has no content", `a configuration needs at least file_format: "1.0"`)
		return d
	}
	e := expander{doc: d, lim: lim, copies: map[*yaml.Node]bool{}}
	root := e.expand(top, 0, "")
	if e.stopped {
		return d
	}
	if root.Kind != yaml.MappingNode {
		d.errorf(CodeType, root.Line, root.Column, "", "top level must be a mapping of keys to values, found "+kindName(root), `start the file with file_format: "1.0"`)
		return d
	}
	d.Root = root
	return d
}

// safeDecode turns any panic inside the YAML library into an error: no
// input may crash a service at boot.
func safeDecode(dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: internal parser error: %v", r)
		}
	}()
	return dec.Decode(n)
}

func (d *Document) syntaxError(err error) {
	msg := err.Error()
	line := 0
	if m := yamlLineRE().FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	col := 0
	if line > 0 {
		col = firstNonBlank(d.Source, line)
	}
	hint := ""
	if bytes.Contains(lineBytes(d.Source, line), []byte("\t")) {
		hint = "YAML does not allow tabs for indentation; use spaces"
	}
	d.errorf(CodeSyntax, line, col, "", "YAML syntax error: "+msg, hint)
}

func (d *Document) errorf(code string, line, col int, path, msg, hint string, args ...any) {
	d.add(SeverityError, code, line, col, path, msg, hint, args...)
}

func (d *Document) warnf(code string, line, col int, path, msg, hint string, args ...any) {
	d.add(SeverityWarning, code, line, col, path, msg, hint, args...)
}

func (d *Document) add(sev Severity, code string, line, col int, path, msg, hint string, args ...any) {
	if len(args) > 0 {
		msg = fmt.Sprintf(msg, args...)
	}
	// The parser can place an implicit node just past the end of the
	// file; a position always points into it.
	if n := countLines(d.Source); line > n {
		line, col = n, 1
	}
	d.Diagnostics = append(d.Diagnostics, Diagnostic{
		Severity: sev, Code: code, File: d.Name, Line: line, Column: col,
		Path: path, Message: msg, Hint: hint,
	})
}

// expander copies the parsed tree, replacing aliases with copies of their
// anchors, applying merge keys, and checking duplicates and depth.
type expander struct {
	doc     *Document
	lim     Limits
	nodes   int
	stopped bool
	// copies marks anchors being expanded, to catch recursive aliases.
	copies map[*yaml.Node]bool
}

func (e *expander) expand(n *yaml.Node, depth int, path string) *yaml.Node {
	if e.stopped {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}
	}
	e.nodes++
	if e.nodes > e.lim.MaxNodes {
		e.doc.errorf(CodeAlias, n.Line, n.Column, path, "document expands to more than %d nodes", "this is what an alias bomb looks like; a real configuration has a few hundred nodes", e.lim.MaxNodes)
		e.stopped = true
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}
	}
	if depth > e.lim.MaxDepth {
		e.doc.errorf(CodeDepth, n.Line, n.Column, path, "nesting deeper than %d levels", "a real configuration nests about ten levels deep", e.lim.MaxDepth)
		e.stopped = true
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}
	}
	switch n.Kind {
	case yaml.AliasNode:
		if n.Alias == nil || e.copies[n.Alias] {
			e.doc.errorf(CodeAlias, n.Line, n.Column, path, "alias *%s refers to itself", "", n.Value)
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
		}
		e.copies[n.Alias] = true
		c := e.expand(n.Alias, depth, path)
		delete(e.copies, n.Alias)
		return c
	case yaml.ScalarNode:
		c := *n
		c.Anchor = ""
		return &c
	case yaml.SequenceNode:
		c := *n
		c.Anchor = ""
		c.Content = make([]*yaml.Node, 0, len(n.Content))
		for i, item := range n.Content {
			c.Content = append(c.Content, e.expand(item, depth+1, path+"/"+strconv.Itoa(i)))
		}
		return &c
	case yaml.MappingNode:
		c := *n
		c.Anchor = ""
		c.Content = make([]*yaml.Node, 0, len(n.Content))
		seen := map[string]*yaml.Node{}
		var merges []*yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind == yaml.AliasNode && k.Alias != nil {
				k = k.Alias
			}
			if k.Kind != yaml.ScalarNode {
				e.doc.errorf(CodeType, k.Line, k.Column, path, "mapping keys must be plain strings, found "+kindName(k), "")
				continue
			}
			if k.Tag == "!!merge" || (k.Value == "<<" && k.Style == 0) {
				merges = append(merges, v)
				continue
			}
			if first, dup := seen[k.Value]; dup {
				e.doc.errorf(CodeDuplicateKey, k.Line, k.Column, path+"/"+escapePointer(k.Value), "duplicate key %q", fmt.Sprintf("first defined at line %d; YAML keeps only one of them, so remove or merge the other", first.Line), k.Value)
				continue
			}
			kc := *k
			kc.Anchor = ""
			seen[k.Value] = &kc
			c.Content = append(c.Content, &kc, e.expand(v, depth+1, path+"/"+escapePointer(k.Value)))
		}
		// Merge keys: explicit keys win, then earlier merged maps.
		for _, m := range merges {
			srcs := []*yaml.Node{m}
			if m.Kind == yaml.SequenceNode {
				srcs = m.Content
			}
			for _, s := range srcs {
				ms := e.expand(s, depth, path)
				if ms.Kind != yaml.MappingNode {
					e.doc.errorf(CodeType, s.Line, s.Column, path, "merge key << needs a mapping or a list of mappings, found "+kindName(ms), "")
					continue
				}
				for j := 0; j+1 < len(ms.Content); j += 2 {
					if _, ok := seen[ms.Content[j].Value]; ok {
						continue
					}
					seen[ms.Content[j].Value] = ms.Content[j]
					c.Content = append(c.Content, ms.Content[j], ms.Content[j+1])
				}
			}
		}
		return &c
	default:
		c := *n
		return &c
	}
}

// KindName describes what a node is, for messages: "a mapping", "a list",
// "null", "a string", "an integer", "a number", "a boolean".
func KindName(n *yaml.Node) string { return kindName(n) }

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!str":
			return "a string"
		case "!!int":
			return "an integer"
		case "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		}
		return "a scalar"
	case yaml.AliasNode:
		return "an alias"
	}
	return "nothing"
}

// escapePointer escapes one JSON pointer reference token (RFC 6901).
func escapePointer(s string) string {
	if !bytes.ContainsAny([]byte(s), "~/") {
		return s
	}
	var b bytes.Buffer
	for _, r := range s {
		switch r {
		case '~':
			b.WriteString("~0")
		case '/':
			b.WriteString("~1")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func offsetPosition(src []byte, off int) (line, col int) {
	if off > len(src) {
		off = len(src)
	}
	before := src[:off]
	// Line ends as countLines and YAML see them: \n, \r\n, a lone \r.
	line = countLines(before)
	start := max(bytes.LastIndexByte(before, '\n'), bytes.LastIndexByte(before, '\r')) + 1
	col = utf8.RuneCount(before[start:]) + 1
	return line, col
}

func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return len(b)
}

func lineBytes(src []byte, n int) []byte {
	if n <= 0 {
		return nil
	}
	for i := 1; i < n; i++ {
		j := bytes.IndexByte(src, '\n')
		if j < 0 {
			return nil
		}
		src = src[j+1:]
	}
	if j := bytes.IndexByte(src, '\n'); j >= 0 {
		src = src[:j]
	}
	return src
}

func firstNonBlank(src []byte, n int) int {
	l := lineBytes(src, n)
	for i, c := range l {
		if c != ' ' {
			return utf8.RuneCount(l[:i]) + 1
		}
	}
	return 1
}

// countLines counts lines as YAML does: LF, CRLF and a lone CR end one.
func countLines(src []byte) int {
	n := 1
	for i := 0; i < len(src); i++ {
		switch src[i] {
		case '\n':
			n++
		case '\r':
			if i+1 < len(src) && src[i+1] == '\n' {
				i++
			}
			n++
		}
	}
	return n
}
