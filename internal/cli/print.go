package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/otelcfg/otelcfg/otelconfig"
	yaml "go.yaml.in/yaml/v3"
)

const printSynopsis = "otelcfg print [--explain] [--format yaml|json] [--no-env] FILE"

const printHelp = `
Prints the effective configuration a service would run with: FILE after
${VAR} substitution and the OTEL_* overlay, with every secret replaced by
[REDACTED] (header values, headers_list, keys, and anything that came from
a variable whose name suggests a secret).

--explain says where each value came from: file:line, a ${VAR}
substitution, an OTEL_* variable, or a default. In YAML it is a comment
after the value; in JSON, {"config": ..., "origins": {JSON pointer: origin}}.

Problems found while loading are printed on standard error; the exit status
is 1 when any is an error, 2 when FILE cannot be read.`

func runPrint(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet("print")
	format := &enumFlag{value: "yaml", allowed: []string{"yaml", "json"}}
	fs.Var(format, "format", "output `format`: yaml or json")
	explain := fs.Bool("explain", false, "annotate every value with where it came from")
	noEnv := fs.Bool("no-env", false, "print the file as written: no OTEL_* overlay; ${VAR} takes its default or null")
	files, code, ok := parseArgs(e, fs, printSynopsis, printHelp, args)
	if !ok {
		return code
	}
	switch {
	case len(files) > 1:
		return usageError(e, "print", "one FILE at a time (got %d)\nusage: %s", len(files), printSynopsis)
	case len(files) == 0:
		p, set := e.lookup("OTEL_CONFIG_FILE")
		if !set || strings.TrimSpace(p) == "" || *noEnv {
			return usageError(e, "print", "no FILE given (and OTEL_CONFIG_FILE is not set)\nusage: %s", printSynopsis)
		}
		files = []string{strings.TrimSpace(p)}
	}

	l := e.load(ctx, files[0], loadOptions{noEnv: *noEnv})
	// Diagnostics go to stderr so that stdout stays a clean document.
	_ = otelconfig.FormatText(e.stderr, l.diags, otelconfig.TextOptions{Sources: map[string][]byte{l.name: l.src}})
	switch {
	case l.ioErr:
		return ExitUsage
	case l.doc == nil || l.doc.Root == nil:
		return ExitInvalid
	}

	root := l.doc.Root
	stripComments(root)
	redact(l.doc)
	var err error
	if format.value == "json" {
		err = printJSON(e, l.doc, *explain)
	} else {
		err = printYAML(e, l.doc, *explain)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "otelcfg print: %v\n", err)
		return ExitUsage
	}
	if l.diags.HasErrors() {
		return ExitInvalid
	}
	return ExitOK
}

// redact replaces every secret scalar (and everything below a secret
// collection) with [REDACTED]. The library decides what is secret, so
// print and the services' logs agree.
func redact(doc *otelconfig.Document) {
	var secrets []string
	otelconfig.Walk(doc.Root, func(p string, _, n *yaml.Node) {
		under := false
		for _, s := range secrets {
			if strings.HasPrefix(p, s+"/") {
				under = true
				break
			}
		}
		if !under && !doc.IsSecret(p, n) {
			return
		}
		if !under {
			secrets = append(secrets, p)
		}
		if n.Kind == yaml.ScalarNode && n.ShortTag() != "!!null" {
			n.Value, n.Tag, n.Style = otelconfig.Redacted, "!!str", yaml.DoubleQuotedStyle
		}
	})
}

// stripComments drops the file's comments: after substitution and the
// overlay they may describe values that are no longer there.
func stripComments(n *yaml.Node) {
	if n == nil {
		return
	}
	n.HeadComment, n.LineComment, n.FootComment = "", "", ""
	for _, c := range n.Content {
		stripComments(c)
	}
}

// originText is the --explain annotation of one node, or "" when there is
// nothing useful to say (a node a stage created without a position).
func originText(doc *otelconfig.Document, n *yaml.Node) string {
	o := doc.OriginOf(n)
	switch o.Kind {
	case otelconfig.OriginFile:
		if o.Line == 0 {
			return ""
		}
	case otelconfig.OriginEnv:
		return "from " + o.String()
	}
	return o.String()
}

func printYAML(e *env, doc *otelconfig.Document, explain bool) error {
	if explain {
		otelconfig.Walk(doc.Root, func(p string, key, n *yaml.Node) {
			if p == "" {
				return
			}
			text := originText(doc, n)
			if text == "" {
				return
			}
			switch {
			case n.Kind == yaml.ScalarNode || len(n.Content) == 0:
				n.LineComment = text
			case key != nil && doc.OriginOf(n).Kind != otelconfig.OriginFile:
				// A mapping or list a stage put there: say so on its key;
				// its values carry their own comments.
				key.LineComment = text
			}
		})
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(doc.Root); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	_, err := e.stdout.Write(b.Bytes())
	return err
}

func printJSON(e *env, doc *otelconfig.Document, explain bool) error {
	var b bytes.Buffer
	if explain {
		b.WriteString(`{"config":`)
		writeNodeJSON(&b, doc.Root)
		b.WriteString(`,"origins":{`)
		first := true
		otelconfig.Walk(doc.Root, func(p string, _, n *yaml.Node) {
			text := originText(doc, n)
			if p == "" || text == "" {
				return
			}
			if !first {
				b.WriteByte(',')
			}
			first = false
			b.WriteString(jsonString(p) + ":" + jsonString(text))
		})
		b.WriteString("}}")
	} else {
		writeNodeJSON(&b, doc.Root)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b.Bytes(), "", "  "); err != nil {
		return fmt.Errorf("internal error rendering JSON: %w", err)
	}
	out.WriteByte('\n')
	_, err := e.stdout.Write(out.Bytes())
	return err
}

// writeNodeJSON renders a YAML tree as JSON, keeping the file's key order
// (a map would sort it) and the type the YAML tags give each scalar.
func writeNodeJSON(b *bytes.Buffer, n *yaml.Node) {
	switch n.Kind {
	case yaml.MappingNode:
		b.WriteByte('{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(jsonString(n.Content[i].Value) + ":")
			writeNodeJSON(b, n.Content[i+1])
		}
		b.WriteByte('}')
	case yaml.SequenceNode:
		b.WriteByte('[')
		for i, c := range n.Content {
			if i > 0 {
				b.WriteByte(',')
			}
			writeNodeJSON(b, c)
		}
		b.WriteByte(']')
	case yaml.ScalarNode:
		b.WriteString(scalarJSON(n))
	default:
		b.WriteString("null")
	}
}

func scalarJSON(n *yaml.Node) string {
	switch n.ShortTag() {
	case "!!null":
		return "null"
	case "!!bool":
		var v bool
		if n.Decode(&v) == nil {
			return strconv.FormatBool(v)
		}
	case "!!int":
		var v int64
		if n.Decode(&v) == nil {
			return strconv.FormatInt(v, 10)
		}
	case "!!float":
		var v float64
		if n.Decode(&v) == nil && !math.IsInf(v, 0) && !math.IsNaN(v) {
			return strconv.FormatFloat(v, 'g', -1, 64)
		}
	}
	return jsonString(n.Value)
}

func jsonString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}
