package otelconfig

import (
	"fmt"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// OriginKind says which stage produced an effective value.
type OriginKind string

// Where an effective value can come from, lowest precedence first.
const (
	OriginDefault      OriginKind = "default"      // a service's built-in default
	OriginFile         OriginKind = "file"         // written literally in the file
	OriginSubstitution OriginKind = "substitution" // a ${VAR} reference in the file
	OriginEnv          OriginKind = "env"          // an OTEL_* overlay variable
	OriginOption       OriginKind = "option"       // an explicit programmatic option
)

// Origin says where one effective value came from.
type Origin struct {
	Kind OriginKind `json:"kind"`
	// File, Line and Column locate the value in the file (file and
	// substitution origins).
	File   string `json:"file,omitempty"`
	Line   int    `json:"line,omitempty"`
	Column int    `json:"column,omitempty"`
	// Vars are the variables a substitution read, or the one OTEL_*
	// variable of an overlay.
	Vars []string `json:"vars,omitempty"`
	// Detail is a short free-form note (for example "default name of the
	// service").
	Detail string `json:"detail,omitempty"`
}

func (o Origin) String() string {
	switch o.Kind {
	case OriginFile:
		return fmt.Sprintf("%s:%d", o.File, o.Line)
	case OriginSubstitution:
		refs := make([]string, len(o.Vars))
		for i, v := range o.Vars {
			refs[i] = "${" + v + "}"
		}
		return fmt.Sprintf("%s at %s:%d", strings.Join(refs, ", "), o.File, o.Line)
	case OriginEnv:
		return strings.Join(o.Vars, ", ")
	case OriginDefault, OriginOption:
		if o.Detail != "" {
			return string(o.Kind) + " (" + o.Detail + ")"
		}
		return string(o.Kind)
	}
	return string(o.Kind)
}

// OriginOf returns where node n's value came from. Nodes that no stage
// changed come from the file.
func (d *Document) OriginOf(n *yaml.Node) Origin {
	if o, ok := d.origins[n]; ok {
		return o
	}
	return Origin{Kind: OriginFile, File: d.Name, Line: n.Line, Column: n.Column}
}

func (d *Document) setOrigin(n *yaml.Node, o Origin) {
	if d.origins == nil {
		d.origins = map[*yaml.Node]Origin{}
	}
	d.origins[n] = o
}

// setOriginTree marks n and everything below it.
func (d *Document) setOriginTree(n *yaml.Node, o Origin) {
	d.setOrigin(n, o)
	for _, c := range n.Content {
		d.setOriginTree(c, o)
	}
}
