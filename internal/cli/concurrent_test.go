package cli

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestManyFilesInOrder: validate checks files concurrently, yet its output
// is each file's output in the order given, every time.
func TestManyFilesInOrder(t *testing.T) {
	t.Parallel()
	var files []string
	for _, c := range fileCases {
		if c.env == nil {
			files = append(files, filepath.Join("testdata", c.file))
		}
	}
	files = append(files, files...) // the same file twice is two results
	var want strings.Builder
	for _, f := range files {
		out, _, _ := run(t, nil, "", "validate", f)
		want.WriteString(out)
	}
	for range 5 {
		out, _, code := run(t, nil, "", append([]string{"validate"}, files...)...)
		if out != want.String() {
			t.Fatalf("output of one run over %d files differs from the files' outputs one by one:\n%s\nwant:\n%s", len(files), out, want.String())
		}
		if code != ExitInvalid {
			t.Fatalf("exit %d, want %d", code, ExitInvalid)
		}
	}
}
