package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestParseTopLevel(t *testing.T) {
	for _, tt := range []struct {
		name, body string
		ok         bool
		want       map[string]string // key → raw value
	}{
		{"simple", `{"model":"a","n":1}`, true, map[string]string{"model": `"a"`, "n": "1"}},
		{"spaces everywhere", " \r\n{ \"model\" :\t\"a\" , \"x\" : [ 1 , {\"y\":\"}\"} ] }\n", true, map[string]string{"model": `"a"`, "x": `[ 1 , {"y":"}"} ]`}},
		{"strings with quotes, brackets and escapes", `{"m":"a\"b}]\\","o":{"k":"[\"{"},"z":null}`, true, map[string]string{"m": `"a\"b}]\\"`, "o": `{"k":"[\"{"}`, "z": "null"}},
		{"escaped key", `{"mod\u0065l":"a"}`, true, map[string]string{"model": `"a"`}},
		{"literals and numbers", `{"a":true,"b":false,"c":-1.5e3,"d":null}`, true, map[string]string{"a": "true", "b": "false", "c": "-1.5e3", "d": "null"}},
		{"empty", `{}`, true, map[string]string{}},
		{"null", `null`, false, nil},
		{"array", `[1]`, false, nil},
		{"cut off", `{"model":"a"`, false, nil},
		{"trailing garbage", `{"model":"a"} x`, false, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseTopLevel([]byte(tt.body))
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if len(got.members) != len(tt.want) {
				t.Fatalf("%d members, want %d", len(got.members), len(tt.want))
			}
			for k, v := range tt.want {
				if raw, _ := got.get(k); string(raw) != v {
					t.Errorf("%s = %q, want %q", k, raw, v)
				}
			}
		})
	}
}

func TestReplaceKeepsEverythingElse(t *testing.T) {
	body := []byte("{\"stream\":false, \"model\" : \"gpt\",\n \"messages\":[{\"role\":\"user\",\"content\":\"<b>&</b>\"}]}")
	req, ok := parseTopLevel(body)
	if !ok {
		t.Fatal("not parsed")
	}
	got := string(req.replace("model", []byte(`"upstream-1"`)))
	want := "{\"stream\":false, \"model\" : \"upstream-1\",\n \"messages\":[{\"role\":\"user\",\"content\":\"<b>&</b>\"}]}"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// TestUpstreamGetsTheBodyAsSent: the client's bytes (key order, spacing,
// characters encoding/json would escape) reach the upstream unchanged but
// for the model; a key sent twice reaches it once, with the value the
// proxy acted on.
func TestUpstreamGetsTheBodyAsSent(t *testing.T) {
	f := newFixture(t, nil, nil)
	body := "{\"messages\": [{\"role\":\"user\",\"content\":\"a <tag> & more\"}],\n  \"model\": \"gpt-test\", \"temperature\": 0.5}"
	if code, _, b := f.chat(t, body, nil); code != http.StatusOK {
		t.Fatalf("status %d: %s", code, b)
	}
	want := "{\"messages\": [{\"role\":\"user\",\"content\":\"a <tag> & more\"}],\n  \"model\": \"upstream-gpt\", \"temperature\": 0.5}"
	if got := string(f.up.last(t).Raw); got != want {
		t.Errorf("upstream got  %s\nwant          %s", got, want)
	}

	if code, _, b := f.chat(t, `{"model":"gpt-test","stream":true,"stream":false,"messages":[{"role":"user","content":"x"}]}`, nil); code != http.StatusOK {
		t.Fatalf("status %d: %s", code, b)
	}
	var sent map[string]json.RawMessage
	raw := f.up.last(t).Raw
	if err := json.Unmarshal(raw, &sent); err != nil {
		t.Fatal(err)
	}
	if string(sent["stream"]) != "false" || bytes.Count(raw, []byte(`"stream"`)) != 1 || string(sent["model"]) != `"upstream-gpt"` {
		t.Errorf("upstream got %s, want stream false once and the upstream model", raw)
	}
}

// FuzzParseTopLevel: whatever the body, parseTopLevel agrees with
// encoding/json on whether it is an object and on every member, and
// replacing the model changes nothing else.
func FuzzParseTopLevel(f *testing.F) {
	for _, s := range []string{`{"model":"a","messages":[{"role":"user","content":"hi"}]}`, `{"a":{"b":[1,"]"]},"model":null}`,
		`{"mod\u0065l":"x","model":"y"}`, `null`, `[]`, `{`, ` {"a" : "\"\\" } `, `{"a":1e5,"b":true}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, ok := parseTopLevel(body)
		var want map[string]json.RawMessage
		err := json.Unmarshal(body, &want)
		if ok != (err == nil && want != nil) {
			t.Fatalf("parseTopLevel ok=%v, encoding/json: %v (%v)", ok, err, want)
		}
		if !ok {
			return
		}
		for k, v := range want {
			if raw, found := got.get(k); !found || !bytes.Equal(raw, v) {
				t.Fatalf("%q: got %q, encoding/json %q", k, raw, v)
			}
		}
		if len(want) != len(got.members) && !got.hasDuplicates() {
			t.Fatalf("%d members, encoding/json %d", len(got.members), len(want))
		}
		out := got.replace("model", []byte(`"M"`))
		var after map[string]json.RawMessage
		if err := json.Unmarshal(out, &after); err != nil {
			t.Fatalf("replaced body is not JSON: %v: %s", err, out)
		}
		if _, had := want["model"]; had {
			want["model"] = json.RawMessage(`"M"`)
		}
		if len(after) != len(want) {
			t.Fatalf("replace changed the keys: %s", out)
		}
		for k, v := range want {
			if !bytes.Equal(after[k], v) {
				t.Fatalf("after replace %q = %q, want %q", k, after[k], v)
			}
		}
	})
}

// TestHasDuplicates covers both ways of looking: pairwise for a few keys,
// a set for many.
func TestHasDuplicates(t *testing.T) {
	for _, n := range []int{3, 16, 17, 5000} {
		var b bytes.Buffer
		b.WriteString("{")
		for i := range n {
			fmt.Fprintf(&b, `"k%d":%d,`, i, i)
		}
		unique := strings.TrimSuffix(b.String(), ",") + "}"
		withDup := b.String() + `"k0":1}`
		for body, want := range map[string]bool{unique: false, withDup: true} {
			req, ok := parseTopLevel([]byte(body))
			if !ok {
				t.Fatalf("n=%d: not parsed", n)
			}
			if got := req.hasDuplicates(); got != want {
				t.Errorf("n=%d: hasDuplicates = %v, want %v", n, got, want)
			}
		}
	}
}
