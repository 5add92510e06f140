package otelconfig

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"go.opentelemetry.io/contrib/otelconf"
	yaml "go.yaml.in/yaml/v3"
)

var typeErrRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^line (\d+): (.*)$`) })

// decode turns the effective tree into otelconf's model. otelconf's own
// checks run here (its UnmarshalYAML methods); their errors become
// diagnostics, positioned where the error says.
func (d *Document) decode() (*otelconf.OpenTelemetryConfiguration, bool) {
	if d.Root == nil {
		return nil, false
	}
	var m otelconf.OpenTelemetryConfiguration
	err := safeNodeDecode(d.Root, &m)
	if err == nil {
		return &m, true
	}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		for _, msg := range te.Errors {
			line := 0
			if mm := typeErrRE().FindStringSubmatch(msg); mm != nil {
				line, _ = strconv.Atoi(mm[1])
				msg = mm[2]
			}
			path, col := d.pathAtLine(line)
			d.errorf(CodeType, line, col, path, "%s", "", friendlyTypeError(msg))
		}
		return nil, false
	}
	d.errorf(CodeDecode, 0, 0, "", "the OpenTelemetry configuration model refused the file: %s", "", strings.ReplaceAll(err.Error(), "\n", "; "))
	return nil, false
}

func safeNodeDecode(n *yaml.Node, v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("decoder panic: %v", r)
		}
	}()
	return n.Decode(v)
}

var unmarshalRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile("cannot unmarshal !!(\\w+) `(.*)` into (.*)$") })

func friendlyTypeError(msg string) string {
	if m := unmarshalRE().FindStringSubmatch(msg); m != nil {
		want := m[3]
		switch {
		case strings.Contains(want, "int"):
			want = "an integer"
		case strings.Contains(want, "float"):
			want = "a number"
		case strings.Contains(want, "bool"):
			want = "true or false"
		case strings.Contains(want, "string"):
			want = "a string"
		case strings.HasPrefix(want, "[]"):
			want = "a list"
		case strings.Contains(want, "map"), strings.Contains(want, "otelconf."):
			want = "a mapping"
		}
		return fmt.Sprintf("expected %s, found %s %q", want, tagName(m[1]), truncate(m[2], 40))
	}
	return msg
}

func tagName(t string) string {
	switch t {
	case "str":
		return "string"
	case "int":
		return "integer"
	case "seq":
		return "list"
	case "map":
		return "mapping"
	}
	return t
}

// pathAtLine finds the JSON pointer and column of the first value node on
// a line, to place decoder errors that only carry a line.
func (d *Document) pathAtLine(line int) (string, int) {
	if line == 0 {
		return "", 0
	}
	path, col := "", 0
	Walk(d.Root, func(p string, key, n *yaml.Node) {
		if col != 0 {
			return
		}
		if n.Line == line && n.Kind == yaml.ScalarNode {
			path, col = p, n.Column
		}
	})
	return path, col
}
