// Package proctest is the scaffolding of the commands' process tests: the
// test binary doubles as the command, so tests see real exit statuses and
// real signal handling.
package proctest

import (
	"bufio"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// RunMain runs main with the arguments after "--" and reports true when
// the environment variable env is "1" (the test binary was started as the
// command); otherwise it reports false and the tests run.
func RunMain(env string, main func()) bool {
	if os.Getenv(env) != "1" {
		return false
	}
	for i, a := range os.Args {
		if a == "--" {
			os.Args = append([]string{os.Args[0]}, os.Args[i+1:]...)
			break
		}
	}
	main()
	return true
}

// Listening starts cmd and reads its stderr until a line matches listening,
// whose first group is the address. It returns the address, the lines read
// so far, and a channel that yields the rest of stderr once cmd closes it.
// The caller kills the process when done; when it never listens, the test
// fails and the process is killed here.
func Listening(t *testing.T, cmd *exec.Cmd, listening *regexp.Regexp) (addr, log string, rest <-chan string) {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stderr)
	var b strings.Builder
	for lines.Scan() {
		b.WriteString(lines.Text() + "\n")
		if m := listening.FindStringSubmatch(lines.Text()); m != nil {
			addr = m[1]
			break
		}
	}
	if addr == "" {
		_ = cmd.Process.Kill()
		t.Fatalf("never listened:\n%s", b.String())
	}
	ch := make(chan string)
	go func() {
		var b strings.Builder
		for lines.Scan() {
			b.WriteString(lines.Text() + "\n")
		}
		ch <- b.String()
	}()
	return addr, b.String(), ch
}
