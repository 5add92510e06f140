package portreg

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(helperMain())
	}
	goleak.VerifyTestMain(m)
}

// newRegistry returns a registry in a fresh directory whose ports are all
// free unless busy says otherwise.
func newRegistry(t *testing.T, lo, hi int, busy ...int) *Registry {
	t.Helper()
	b := map[int]bool{}
	for _, p := range busy {
		b[p] = true
	}
	return &Registry{
		Path:    filepath.Join(t.TempDir(), "cfg", "port_registry.json"),
		MinPort: lo, MaxPort: hi,
		IsFree: func(p int) bool { return !b[p] },
		Now:    func() time.Time { return time.Date(2026, 11, 25, 20, 56, 44, 0, time.UTC) },
	}
}

func mkdirs(t *testing.T, n int) []string {
	t.Helper()
	root := t.TempDir()
	dirs := make([]string, n)
	for i := range dirs {
		dirs[i] = filepath.Join(root, fmt.Sprintf("project-%02d", i))
		if err := os.Mkdir(dirs[i], 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dirs
}

func TestAllocateIsStable(t *testing.T) {
	t.Parallel()
	r := newRegistry(t, DefaultMinPort, DefaultMaxPort)
	dirs := mkdirs(t, 2)
	first, _, err := r.Allocate(dirs[0])
	if err != nil {
		t.Fatal(err)
	}
	if first.Port < DefaultMinPort || first.Port > DefaultMaxPort {
		t.Fatalf("port %d outside %d-%d", first.Port, DefaultMinPort, DefaultMaxPort)
	}
	other, _, err := r.Allocate(dirs[1])
	if err != nil {
		t.Fatal(err)
	}
	// A fresh Registry value over the same file, even with a different
	// range and every port busy, must return the registered port.
	again := &Registry{Path: r.Path, MinPort: 20000, MaxPort: 20001, IsFree: func(int) bool { return false }}
	for range 3 {
		e, _, err := again.Allocate(dirs[0])
		if err != nil {
			t.Fatal(err)
		}
		if e.Port != first.Port {
			t.Fatalf("second allocation gave %d, first gave %d", e.Port, first.Port)
		}
	}
	if other.Port == first.Port {
		t.Fatalf("two directories share port %d", first.Port)
	}
	e, ok, _, err := r.Lookup(dirs[0] + string(filepath.Separator))
	if err != nil || !ok || e.Port != first.Port {
		t.Fatalf("Lookup = %+v, %v, %v; want port %d", e, ok, err, first.Port)
	}
}

func TestAllocateIsUniqueAndExhausts(t *testing.T) {
	t.Parallel()
	const lo, hi = 9000, 9015
	r := newRegistry(t, lo, hi)
	dirs := mkdirs(t, hi-lo+2)
	seen := map[int]string{}
	for _, d := range dirs[:hi-lo+1] {
		e, _, err := r.Allocate(d)
		if err != nil {
			t.Fatalf("Allocate(%s): %v", d, err)
		}
		if prev, dup := seen[e.Port]; dup {
			t.Fatalf("port %d given to %s and %s", e.Port, prev, d)
		}
		seen[e.Port] = d
	}
	_, _, err := r.Allocate(dirs[len(dirs)-1])
	if !errors.Is(err, ErrNoFreePort) {
		t.Fatalf("allocation beyond the range: err = %v, want ErrNoFreePort", err)
	}
	list, _, err := r.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != hi-lo+1 {
		t.Fatalf("List has %d entries, want %d", len(list), hi-lo+1)
	}
	for i := 1; i < len(list); i++ {
		if list[i-1].Port >= list[i].Port {
			t.Fatalf("List not sorted by port: %v", list)
		}
	}
}

func TestBusyPortIsSkipped(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		lo, hi   int
		busy     []int
		allocate int
		want     []int // the set of ports handed out
		wantErr  error
	}{
		{name: "only free port", lo: 9100, hi: 9102, busy: []int{9100, 9101}, allocate: 1, want: []int{9102}},
		{name: "all busy", lo: 9100, hi: 9101, busy: []int{9100, 9101}, allocate: 1, wantErr: ErrNoFreePort},
		{name: "busy in the middle", lo: 9100, hi: 9102, busy: []int{9101}, allocate: 2, want: []int{9100, 9102}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRegistry(t, tt.lo, tt.hi, tt.busy...)
			got := map[int]bool{}
			var err error
			for _, d := range mkdirs(t, tt.allocate) {
				var e Entry
				if e, _, err = r.Allocate(d); err != nil {
					break
				}
				got[e.Port] = true
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			for _, p := range tt.want {
				if !got[p] {
					t.Errorf("port %d not allocated; got %v", p, got)
				}
			}
			if len(got) != len(tt.want) {
				t.Errorf("allocated %v, want %v", got, tt.want)
			}
		})
	}
}

// TestBusyPortIsSkippedForReal occupies a port with a real listener and
// uses the default probe (listening on 127.0.0.1).
func TestBusyPortIsSkippedForReal(t *testing.T) {
	t.Parallel()
	ln, lo := threeFreePorts(t)
	defer ln.Close()
	busy := lo + 1
	r := &Registry{Path: filepath.Join(t.TempDir(), "reg.json"), MinPort: lo, MaxPort: lo + 2}
	dirs := mkdirs(t, 3)
	for _, d := range dirs[:2] {
		e, _, err := r.Allocate(d)
		if err != nil {
			t.Fatal(err)
		}
		if e.Port == busy {
			t.Fatalf("allocated busy port %d", busy)
		}
	}
	if _, _, err := r.Allocate(dirs[2]); !errors.Is(err, ErrNoFreePort) {
		t.Fatalf("third allocation: err = %v, want ErrNoFreePort", err)
	}
}

// threeFreePorts finds p, p+1, p+2 free on loopback and returns a listener
// holding p+1.
func threeFreePorts(t *testing.T) (net.Listener, int) {
	t.Helper()
	for range 50 {
		probe, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := probe.Addr().(*net.TCPAddr).Port
		probe.Close()
		if p+2 > 65535 || !PortFree(p) || !PortFree(p+2) {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p+1)))
		if err != nil {
			continue
		}
		return ln, p
	}
	t.Skip("no three consecutive free loopback ports")
	return nil, 0
}

func TestRemove(t *testing.T) {
	t.Parallel()
	r := newRegistry(t, 9200, 9200)
	dirs := mkdirs(t, 2)
	e, _, err := r.Allocate(dirs[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Allocate(dirs[1]); !errors.Is(err, ErrNoFreePort) {
		t.Fatalf("want the range full, got %v", err)
	}
	got, ok, _, err := r.Remove(dirs[0])
	if err != nil || !ok || got.Port != e.Port {
		t.Fatalf("Remove = %+v, %v, %v", got, ok, err)
	}
	if _, ok, _, _ := r.Remove(dirs[0]); ok {
		t.Fatal("second Remove found an entry")
	}
	if _, ok, _, _ := r.Lookup(dirs[0]); ok {
		t.Fatal("Lookup after Remove found an entry")
	}
	if e2, _, err := r.Allocate(dirs[1]); err != nil || e2.Port != 9200 {
		t.Fatalf("freed port not reused: %+v, %v", e2, err)
	}
}

func TestFileFormat(t *testing.T) {
	t.Parallel()
	r := newRegistry(t, 9300, 9300)
	dir := mkdirs(t, 1)[0]
	if _, _, err := r.Allocate(dir); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(r.Path)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := NormalizeDir(dir)
	want := fmt.Sprintf("{\n  \"version\": 1,\n  \"entries\": [\n    {\n      \"dir\": %q,\n      \"port\": 9300,\n      \"allocated_at\": \"2026-11-25T20:56:44Z\"\n    }\n  ]\n}\n", key)
	if string(data) != want {
		t.Fatalf("file =\n%s\nwant\n%s", data, want)
	}
	if st, err := os.Stat(r.Path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("registry mode = %v, %v; want 0600", st.Mode().Perm(), err)
	}
}

func TestCorruptFileIsBackedUpAndRebuilt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content string
		backup  bool
		reason  string
	}{
		{"garbage", "this is not json", true, "not a registry file"},
		{"truncated", `{"version": 1, "entries": [{"dir": "/a", "po`, true, "not a registry file"},
		{"array", `[1, 2, 3]`, true, "not a registry file"},
		{"unknown field", `{"version": 1, "entries": [], "extra": true}`, true, "not a registry file"},
		{"future version", `{"version": 2, "entries": []}`, true, "unsupported version"},
		{"missing version", `{"entries": []}`, true, "unsupported version"},
		{"relative dir", `{"version": 1, "entries": [{"dir": "rel", "port": 9000}]}`, true, "not an absolute path"},
		{"port out of range", `{"version": 1, "entries": [{"dir": "/a", "port": 70000}]}`, true, "out of range"},
		{"duplicate port", `{"version": 1, "entries": [{"dir": "/a", "port": 9000}, {"dir": "/b", "port": 9000}]}`, true, "registered twice"},
		{"duplicate dir", `{"version": 1, "entries": [{"dir": "/a", "port": 9000}, {"dir": "/a", "port": 9001}]}`, true, "registered twice"},
		{"trailing data", `{"version": 1, "entries": []} {}`, true, "trailing data"},
		{"empty file", "", false, ""},
		{"blank file", " \n\t\n", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRegistry(t, 9400, 9410)
			if err := os.MkdirAll(filepath.Dir(r.Path), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(r.Path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			dir := mkdirs(t, 1)[0]
			e, res, err := r.Allocate(dir)
			if err != nil {
				t.Fatalf("Allocate on a %s registry: %v", tt.name, err)
			}
			if !tt.backup {
				if res.Recovered != nil {
					t.Fatalf("unexpected recovery %+v", res.Recovered)
				}
			} else {
				if res.Recovered == nil {
					t.Fatal("corrupt file not reported as recovered")
				}
				if !strings.Contains(res.Recovered.Reason, tt.reason) {
					t.Errorf("reason %q does not mention %q", res.Recovered.Reason, tt.reason)
				}
				want := r.Path + ".corrupt-20261125T205644Z"
				if res.Recovered.Backup != want {
					t.Errorf("backup at %s, want %s", res.Recovered.Backup, want)
				}
				if b, err := os.ReadFile(want); err != nil || string(b) != tt.content {
					t.Errorf("backup content = %q, %v; want the original %q", b, err, tt.content)
				}
			}
			// The rebuilt registry is valid and holds exactly the new entry.
			data, err := os.ReadFile(r.Path)
			if err != nil {
				t.Fatal(err)
			}
			f, reason := parse(data)
			if reason != "" {
				t.Fatalf("rebuilt file is not valid: %s\n%s", reason, data)
			}
			if len(f.Entries) != 1 || f.Entries[0].Port != e.Port {
				t.Fatalf("rebuilt file entries = %+v", f.Entries)
			}
		})
	}
}

func TestSecondCorruptionGetsItsOwnBackup(t *testing.T) {
	t.Parallel()
	r := newRegistry(t, 9500, 9510)
	if err := os.MkdirAll(filepath.Dir(r.Path), 0o700); err != nil {
		t.Fatal(err)
	}
	var backups []string
	for i := range 2 {
		if err := os.WriteFile(r.Path, []byte(fmt.Sprintf("junk %d", i)), 0o600); err != nil {
			t.Fatal(err)
		}
		_, res, err := r.List()
		if err != nil || res.Recovered == nil {
			t.Fatalf("List: %v, %+v", err, res)
		}
		backups = append(backups, res.Recovered.Backup)
	}
	if backups[0] == backups[1] {
		t.Fatalf("both corruptions backed up to %s", backups[0])
	}
	for i, b := range backups {
		if data, _ := os.ReadFile(b); string(data) != fmt.Sprintf("junk %d", i) {
			t.Errorf("backup %s = %q", b, data)
		}
	}
}

func TestNormalizeDir(t *testing.T) {
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	real := filepath.Join(root, "real")
	if err := os.MkdirAll(filepath.Join(real, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(root, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Skipf("symlinks unavailable: %v", err)
	}
	t.Chdir(root)
	tests := []struct {
		in, want string
	}{
		{real, real},
		{real + "/", real},
		{real + "//", real},
		{filepath.Join(real, "sub", ".."), real},
		{real + "/./sub/../", real},
		{"real", real},
		{"./real/", real},
		{link, real},
		{link + "/sub", filepath.Join(real, "sub")},
		{"link/sub/..", real},
		{".", root},
		{"", root},
		{filepath.Join(root, "missing", "..", "missing2"), filepath.Join(root, "missing2")},
	}
	for _, tt := range tests {
		got, err := NormalizeDir(tt.in)
		if err != nil {
			t.Errorf("NormalizeDir(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("NormalizeDir(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}

	// Every spelling of one directory is one registration.
	r := newRegistry(t, 9600, 9700)
	first, _, err := r.Allocate(real)
	if err != nil {
		t.Fatal(err)
	}
	for _, spelling := range []string{"real", "./real/", link, "link/sub/..", real + "/"} {
		e, _, err := r.Allocate(spelling)
		if err != nil || e.Port != first.Port || e.Dir != real {
			t.Errorf("Allocate(%q) = %+v, %v; want port %d for %s", spelling, e, err, first.Port, real)
		}
	}
	if list, _, _ := r.List(); len(list) != 1 {
		t.Errorf("registry has %d entries, want 1: %+v", len(list), list)
	}
}

func TestLockTimeout(t *testing.T) {
	t.Parallel()
	r := newRegistry(t, 9800, 9810)
	r.LockTimeout = 50 * time.Millisecond
	if err := os.MkdirAll(filepath.Dir(r.Path), 0o700); err != nil {
		t.Fatal(err)
	}
	unlock, err := lockFile(r.Path+".lock", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, _, err = r.Allocate(mkdirs(t, 1)[0])
	if err == nil || !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("Allocate while locked: err = %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("lock wait took %s", d)
	}
	unlock()
	if _, _, err := r.Allocate(mkdirs(t, 1)[0]); err != nil {
		t.Fatalf("Allocate after unlock: %v", err)
	}
}

func TestInvalidRegistry(t *testing.T) {
	t.Parallel()
	for _, r := range []*Registry{
		{},
		{Path: "x.json", MinPort: 10, MaxPort: 5},
		{Path: "x.json", MinPort: 1, MaxPort: 70000},
	} {
		if _, _, err := r.List(); err == nil {
			t.Errorf("List on %+v: no error", r)
		}
	}
}

func TestDefaultPath(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", "")
	got, err := DefaultPath()
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(home, ".config", "otelcfg", "port_registry.json"); got != want {
		t.Errorf("DefaultPath() = %s, want %s", got, want)
	}
	xdg := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", xdg)
	if got, _ := DefaultPath(); got != filepath.Join(xdg, "otelcfg", "port_registry.json") {
		t.Errorf("with XDG_CONFIG_HOME: %s", got)
	}
	t.Setenv("XDG_CONFIG_HOME", "relative/dir")
	if got, _ := DefaultPath(); got != filepath.Join(home, ".config", "otelcfg", "port_registry.json") {
		t.Errorf("a relative XDG_CONFIG_HOME must be ignored: %s", got)
	}
}

// The helper process: the test binary re-executed with helperEnv=1 waits
// for the start signal (a file appearing), allocates one directory and
// prints "port <n>".
const (
	helperEnv   = "PORTREG_TEST_HELPER"
	helperReg   = "PORTREG_TEST_REGISTRY"
	helperDir   = "PORTREG_TEST_DIR"
	helperStart = "PORTREG_TEST_START"
)

func helperMain() int {
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(os.Getenv(helperStart)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			fmt.Fprintln(os.Stderr, "start signal never came")
			return 3
		}
		time.Sleep(time.Millisecond)
	}
	r := &Registry{Path: os.Getenv(helperReg), LockTimeout: 20 * time.Second}
	e, _, err := r.Allocate(os.Getenv(helperDir))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("port %d\n", e.Port)
	return 0
}

// TestHelperProcess exists so that the re-executed binary has a test to
// select; the work is done in TestMain before any test runs.
func TestHelperProcess(t *testing.T) {}

// TestConcurrentAllocationsFromSeparateProcesses starts 20 processes that
// allocate a port each from one registry at the same moment: the file lock
// must make every port distinct and keep every registration.
func TestConcurrentAllocationsFromSeparateProcesses(t *testing.T) {
	t.Parallel()
	const n = 20
	tmp := t.TempDir()
	reg := filepath.Join(tmp, "cfg", "port_registry.json")
	start := filepath.Join(tmp, "start")
	dirs := mkdirs(t, n)

	type result struct {
		port int
		err  error
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	cmds := make([]*exec.Cmd, n)
	outs := make([]*strings.Builder, n)
	for i := range n {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), helperEnv+"=1", helperReg+"="+reg, helperDir+"="+dirs[i], helperStart+"="+start)
		outs[i] = new(strings.Builder)
		cmd.Stdout = outs[i]
		cmd.Stderr = outs[i]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[i] = cmd
	}
	// Release all children at once so that their allocations overlap.
	if err := os.WriteFile(start, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := cmds[i].Wait()
			results[i].err = err
			sc := bufio.NewScanner(strings.NewReader(outs[i].String()))
			for sc.Scan() {
				if p, ok := strings.CutPrefix(sc.Text(), "port "); ok {
					results[i].port, _ = strconv.Atoi(p)
				}
			}
		}()
	}
	wg.Wait()

	seen := map[int]int{}
	for i, r := range results {
		if r.err != nil || r.port == 0 {
			t.Fatalf("child %d: %v, output:\n%s", i, r.err, outs[i])
		}
		if j, dup := seen[r.port]; dup {
			t.Fatalf("children %d and %d both got port %d", j, i, r.port)
		}
		seen[r.port] = i
	}
	data, err := os.ReadFile(reg)
	if err != nil {
		t.Fatal(err)
	}
	var f file
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Entries) != n {
		t.Fatalf("registry holds %d entries, want %d (a write was lost):\n%s", len(f.Entries), n, data)
	}
	for _, e := range f.Entries {
		if i, ok := seen[e.Port]; !ok || e.Dir != mustNormalize(t, dirs[i]) {
			t.Errorf("registry entry %+v does not match what the children printed", e)
		}
	}
}

func mustNormalize(t *testing.T, dir string) string {
	t.Helper()
	d, err := NormalizeDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
