package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"sort"
	"strings"

	"github.com/otelcfg/otelcfg/otelconfig"
)

// ---- --format json: the shape is a contract (issue 3) ----

type jsonReport struct {
	Files []jsonFile `json:"files"`
}

type jsonFile struct {
	File        string           `json:"file"`
	Valid       bool             `json:"valid"`
	Diagnostics []jsonDiagnostic `json:"diagnostics"`
}

// jsonDiagnostic always carries every field of the contract (zero line and
// column mean "no position"), plus env when a variable is the source.
type jsonDiagnostic struct {
	Severity string `json:"severity"`
	Code     string `json:"code"`
	Path     string `json:"path"`
	Line     int    `json:"line"`
	Column   int    `json:"column"`
	Message  string `json:"message"`
	Hint     string `json:"hint"`
	Env      string `json:"env,omitempty"`
}

func writeJSON(w io.Writer, results []fileResult) error {
	rep := jsonReport{Files: make([]jsonFile, 0, len(results))}
	for _, r := range results {
		f := jsonFile{File: r.name, Valid: r.valid, Diagnostics: make([]jsonDiagnostic, 0, len(r.diags))}
		for _, d := range r.diags {
			f.Diagnostics = append(f.Diagnostics, jsonDiagnostic{
				Severity: string(d.Severity), Code: d.Code, Path: d.Path, Line: d.Line, Column: d.Column,
				Message: d.Message, Hint: d.Hint, Env: d.Env,
			})
		}
		rep.Files = append(rep.Files, f)
	}
	return encodeJSON(w, rep)
}

func encodeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// ---- --format sarif: SARIF 2.1.0, for code-scanning uploads ----

const (
	sarifVersion = "2.1.0"
	sarifSchema  = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
	toolURI      = "https://github.com/otelcfg/otelcfg"
)

type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool    sarifTool     `json:"tool"`
	Results []sarifResult `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	InformationURI string      `json:"informationUri"`
	Rules          []sarifRule `json:"rules"`
}

type sarifRule struct {
	ID               string       `json:"id"`
	ShortDescription sarifMessage `json:"shortDescription"`
}

type sarifMessage struct {
	Text string `json:"text"`
}

type sarifResult struct {
	RuleID     string            `json:"ruleId"`
	RuleIndex  int               `json:"ruleIndex"`
	Level      string            `json:"level"`
	Message    sarifMessage      `json:"message"`
	Locations  []sarifLocation   `json:"locations"`
	Properties map[string]string `json:"properties,omitempty"`
}

type sarifLocation struct {
	PhysicalLocation sarifPhysical `json:"physicalLocation"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
	Region           *sarifRegion  `json:"region,omitempty"`
}

type sarifArtifact struct {
	URI string `json:"uri"`
}

type sarifRegion struct {
	StartLine   int `json:"startLine"`
	StartColumn int `json:"startColumn,omitempty"`
}

// ruleText describes each diagnostic code for SARIF viewers.
var ruleText = map[string]string{
	otelconfig.CodeIO:             "The file cannot be read",
	otelconfig.CodeTooLarge:       "The file is over the size limit",
	otelconfig.CodeSyntax:         "YAML syntax error",
	otelconfig.CodeEncoding:       "The file is not UTF-8 text",
	otelconfig.CodeEmpty:          "The file has no content",
	otelconfig.CodeMultiDoc:       "More than one YAML document",
	otelconfig.CodeDuplicateKey:   "The same key twice in one mapping",
	otelconfig.CodeAlias:          "YAML alias problem",
	otelconfig.CodeDepth:          "Nesting too deep",
	otelconfig.CodeSubstitution:   "Invalid ${...} reference",
	otelconfig.CodeEnvUnset:       "Referenced environment variable is unset",
	otelconfig.CodeEnvValue:       "OTEL_* variable with a malformed value",
	otelconfig.CodeEnvNoEffect:    "OTEL_* variable that cannot apply",
	otelconfig.CodeType:           "Value of the wrong type",
	otelconfig.CodeRequired:       "Required field missing",
	otelconfig.CodeFileFormat:     "Missing or unsupported file_format",
	otelconfig.CodeDecode:         "The configuration model refused the file",
	otelconfig.CodeSDK:            "The OpenTelemetry SDK refused the configuration",
	otelconfig.CodeUnknownKey:     "Key the format does not define",
	otelconfig.CodeSchema:         "JSON Schema violation",
	otelconfig.CodeBounds:         "Number out of bounds",
	otelconfig.CodeEnum:           "Value not in the allowed set",
	otelconfig.CodeEndpoint:       "OTLP endpoint that cannot work",
	otelconfig.CodeUnsupported:    "Valid, but the Go SDK ignores or refuses it",
	otelconfig.CodeSecurity:       "Security lint",
	otelconfig.CodeProfile:        "Service profile rule",
	otelconfig.CodeSettings:       "Service settings file problem",
	otelconfig.CodeExperimental:   "Development (experimental) feature",
	otelconfig.CodeUnknownVersion: "file_format newer than this build understands",
}

func writeSARIF(w io.Writer, results []fileResult) error {
	codes := map[string]bool{}
	for _, r := range results {
		for _, d := range r.diags {
			codes[d.Code] = true
		}
	}
	ids := make([]string, 0, len(codes))
	for c := range codes {
		ids = append(ids, c)
	}
	sort.Strings(ids)
	index := map[string]int{}
	rules := make([]sarifRule, 0, len(ids))
	for i, id := range ids {
		index[id] = i
		text := ruleText[id]
		if text == "" {
			text = id
		}
		rules = append(rules, sarifRule{ID: id, ShortDescription: sarifMessage{Text: text}})
	}
	run := sarifRun{
		Tool:    sarifTool{Driver: sarifDriver{Name: "otelcfg", InformationURI: toolURI, Rules: rules}},
		Results: []sarifResult{},
	}
	for _, r := range results {
		for _, d := range r.diags {
			file := d.File
			if file == "" {
				file = r.name
			}
			loc := sarifLocation{PhysicalLocation: sarifPhysical{ArtifactLocation: sarifArtifact{URI: fileURI(file)}}}
			if d.Line > 0 {
				loc.PhysicalLocation.Region = &sarifRegion{StartLine: d.Line, StartColumn: d.Column}
			}
			props := map[string]string{}
			if d.Path != "" {
				props["jsonPointer"] = d.Path
			}
			if d.Env != "" {
				props["env"] = d.Env
			}
			if d.Hint != "" {
				props["hint"] = d.Hint
			}
			if len(props) == 0 {
				props = nil
			}
			level := "error"
			if d.Severity == otelconfig.SeverityWarning {
				level = "warning"
			}
			run.Results = append(run.Results, sarifResult{
				RuleID: d.Code, RuleIndex: index[d.Code], Level: level,
				Message:   sarifMessage{Text: messageWithHint(d)},
				Locations: []sarifLocation{loc}, Properties: props,
			})
		}
	}
	return encodeJSON(w, sarifLog{Schema: sarifSchema, Version: sarifVersion, Runs: []sarifRun{run}})
}

// fileURI turns a file name into a SARIF artifact URI: relative paths stay
// relative (resolved against the repository root by code-scanning
// services), absolute ones become file:// URIs.
func fileURI(name string) string {
	if filepath.IsAbs(name) {
		p := filepath.ToSlash(name)
		if !strings.HasPrefix(p, "/") {
			p = "/" + p // C:/x on Windows
		}
		return (&url.URL{Scheme: "file", Path: p}).String()
	}
	return (&url.URL{Path: filepath.ToSlash(name)}).String()
}

func messageWithHint(d otelconfig.Diagnostic) string {
	if d.Hint == "" {
		return d.Message
	}
	return d.Message + "\nhint: " + d.Hint
}

// ---- --format github: workflow commands that annotate a pull request ----

// writeGitHub prints one ::error or ::warning command per diagnostic
// (https://docs.github.com/actions/reference/workflow-commands-for-github-actions).
func writeGitHub(w io.Writer, results []fileResult) error {
	var b strings.Builder
	for _, r := range results {
		for _, d := range r.diags {
			cmd := "error"
			if d.Severity == otelconfig.SeverityWarning {
				cmd = "warning"
			}
			file := d.File
			if file == "" {
				file = r.name
			}
			props := []string{"file=" + escapeGitHubProperty(filepath.ToSlash(file))}
			if d.Line > 0 {
				props = append(props, fmt.Sprintf("line=%d", d.Line))
				if d.Column > 0 {
					props = append(props, fmt.Sprintf("col=%d", d.Column))
				}
			}
			props = append(props, "title="+escapeGitHubProperty(d.Code))
			msg := messageWithHint(d)
			if d.Path != "" {
				msg += "\nat " + d.Path
			}
			fmt.Fprintf(&b, "::%s %s::%s\n", cmd, strings.Join(props, ","), escapeGitHubData(msg))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

var (
	githubData     = strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A")
	githubProperty = strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C")
)

func escapeGitHubData(s string) string     { return githubData.Replace(s) }
func escapeGitHubProperty(s string) string { return githubProperty.Replace(s) }
