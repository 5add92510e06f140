package cli

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// TestJSONShape pins the keys of --format json: they are a contract.
func TestJSONShape(t *testing.T) {
	t.Parallel()
	env := []string{"OTEL_EXPORTER_OTLP_PROTOCOL=carrier-pigeon"}
	stdout, _, _ := run(t, env, "", "validate", "--format", "json", "testdata/three-mistakes.bad.yaml")
	var raw map[string][]map[string]any
	if err := json.Unmarshal([]byte(stdout), &raw); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout)
	}
	f := raw["files"][0]
	if got := sortedKeys(f); !slices.Equal(got, []string{"diagnostics", "file", "valid"}) {
		t.Errorf("file keys %v", got)
	}
	sawEnv := false
	for _, d := range f["diagnostics"].([]any) {
		keys := sortedKeys(d.(map[string]any))
		want := []string{"code", "column", "hint", "line", "message", "path", "severity"}
		if slices.Contains(keys, "env") {
			sawEnv = true
			want = []string{"code", "column", "env", "hint", "line", "message", "path", "severity"}
		}
		if !slices.Equal(keys, want) {
			t.Errorf("diagnostic keys %v, want %v", keys, want)
		}
	}
	if !sawEnv {
		t.Error("no diagnostic carries env although OTEL_EXPORTER_OTLP_PROTOCOL is malformed")
	}
	// A clean file still has an (empty) diagnostics array, never null.
	stdout, _, _ = run(t, nil, "", "validate", "--format", "json", "testdata/minimal.good.yaml")
	if !strings.Contains(stdout, `"diagnostics": []`) {
		t.Errorf("clean file: %s", stdout)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func TestSARIF(t *testing.T) {
	t.Parallel()
	env := []string{"OTEL_BSP_SCHEDULE_DELAY=-5"}
	stdout, _, code := run(t, env, "", "validate", "--format", "sarif", "testdata/three-mistakes.bad.yaml", "testdata/warnings.good.yaml")
	if code != ExitInvalid {
		t.Errorf("exit %d, want 1", code)
	}
	var log struct {
		Schema  string `json:"$schema"`
		Version string `json:"version"`
		Runs    []struct {
			Tool struct {
				Driver struct {
					Name  string `json:"name"`
					Rules []struct {
						ID               string `json:"id"`
						ShortDescription struct {
							Text string `json:"text"`
						} `json:"shortDescription"`
					} `json:"rules"`
				} `json:"driver"`
			} `json:"tool"`
			Results []struct {
				RuleID    string `json:"ruleId"`
				RuleIndex int    `json:"ruleIndex"`
				Level     string `json:"level"`
				Message   struct {
					Text string `json:"text"`
				} `json:"message"`
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct {
							URI string `json:"uri"`
						} `json:"artifactLocation"`
						Region *struct {
							StartLine   int `json:"startLine"`
							StartColumn int `json:"startColumn"`
						} `json:"region"`
					} `json:"physicalLocation"`
				} `json:"locations"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal([]byte(stdout), &log); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout)
	}
	if log.Version != "2.1.0" || !strings.Contains(log.Schema, "sarif-schema-2.1.0.json") {
		t.Errorf("version %q schema %q", log.Version, log.Schema)
	}
	if len(log.Runs) != 1 || log.Runs[0].Tool.Driver.Name != "otelcfg" {
		t.Fatalf("runs: %+v", log.Runs)
	}
	r := log.Runs[0]
	levels := map[string]bool{}
	noRegion := false
	for _, res := range r.Results {
		levels[res.Level] = true
		if res.RuleIndex >= len(r.Tool.Driver.Rules) || r.Tool.Driver.Rules[res.RuleIndex].ID != res.RuleID {
			t.Errorf("result %s: ruleIndex %d does not point at its rule", res.RuleID, res.RuleIndex)
		}
		if len(res.Locations) != 1 || res.Message.Text == "" {
			t.Fatalf("result %+v", res)
		}
		loc := res.Locations[0].PhysicalLocation
		if !strings.HasPrefix(loc.ArtifactLocation.URI, "testdata/") {
			t.Errorf("uri %q", loc.ArtifactLocation.URI)
		}
		if loc.Region == nil {
			noRegion = true // the environment diagnostic: no position
		} else if loc.Region.StartLine < 1 {
			t.Errorf("region %+v", loc.Region)
		}
	}
	if !levels["error"] || !levels["warning"] {
		t.Errorf("levels %v, want error and warning", levels)
	}
	if !noRegion {
		t.Error("the OTEL_BSP_SCHEDULE_DELAY diagnostic should have a location without region")
	}
	for _, rule := range r.Tool.Driver.Rules {
		if rule.ShortDescription.Text == "" {
			t.Errorf("rule %s has no description", rule.ID)
		}
	}
}

func TestGitHubEscaping(t *testing.T) {
	t.Parallel()
	if got, want := escapeGitHubData("100% done\r\nnext: a,b"), "100%25 done%0D%0Anext: a,b"; got != want {
		t.Errorf("data: %q, want %q", got, want)
	}
	if got, want := escapeGitHubProperty("C:/dir,x%\n"), "C%3A/dir%2Cx%25%0A"; got != want {
		t.Errorf("property: %q, want %q", got, want)
	}
	stdout, _, _ := run(t, nil, "", "validate", "--format", "github", "testdata/three-mistakes.bad.yaml", "testdata/warnings.good.yaml")
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	var errs, warns int
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "::error file=testdata/three-mistakes.bad.yaml,line="):
			errs++
		case strings.HasPrefix(l, "::warning file=testdata/warnings.good.yaml,line="):
			warns++
		default:
			t.Errorf("unexpected line %q", l)
		}
		if !strings.Contains(l, ",title=") {
			t.Errorf("no title: %q", l)
		}
	}
	if errs != 3 || warns == 0 {
		t.Errorf("%d errors, %d warnings:\n%s", errs, warns, stdout)
	}
}

func TestFileURI(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"otel.yaml":             "otel.yaml",
		"conf/my otel.yaml":     "conf/my%20otel.yaml",
		"/etc/otel/otel.yaml":   "file:///etc/otel/otel.yaml",
		"testdata/a:b.bad.yaml": "testdata/a:b.bad.yaml",
	} {
		if got := fileURI(in); got != want {
			t.Errorf("fileURI(%q) = %q, want %q", in, got, want)
		}
	}
}
