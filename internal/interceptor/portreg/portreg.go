// Package portreg gives every project directory a stable local port: the
// interceptor of a project listens on the same port every time it starts,
// two projects never share one, and several processes may allocate at the
// same moment without handing out a port twice.
//
// The registry is a small JSON file (DefaultPath) guarded by an advisory
// lock on a sibling file (<path>.lock). A file that cannot be read as a
// registry is moved aside to <path>.corrupt-<UTC timestamp> and rebuilt from
// scratch; because a directory's first candidate port is derived from its
// path, most directories get their old port back.
package portreg

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"
)

// The default port range: the interceptor's traditional port 8888 up to
// 9999, clear of the proxy (8764) and of the usual development servers.
const (
	DefaultMinPort = 8888
	DefaultMaxPort = 9999
)

// FileVersion is the version written to, and accepted from, the registry
// file.
const FileVersion = 1

// DefaultLockTimeout bounds how long an operation waits for another process
// holding the registry lock.
const DefaultLockTimeout = 10 * time.Second

// ErrNoFreePort is returned when every port of the range is registered to
// another directory or busy.
var ErrNoFreePort = errors.New("portreg: no free port in range")

// Entry is one directory's registration.
type Entry struct {
	// Dir is the normalised absolute path of the project directory.
	Dir  string `json:"dir"`
	Port int    `json:"port"`
	// AllocatedAt is when the port was first given to Dir.
	AllocatedAt time.Time `json:"allocated_at"`
}

// file is the on-disk format:
//
//	{
//	  "version": 1,
//	  "entries": [
//	    {"dir": "/home/me/src/app", "port": 8931, "allocated_at": "2026-11-25T20:56:44Z"}
//	  ]
//	}
//
// Entries are kept sorted by port so that diffs and `list` are stable.
type file struct {
	Version int     `json:"version"`
	Entries []Entry `json:"entries"`
}

// Registry is a port registry file. The zero value is not usable; set at
// least Path (DefaultPath gives the usual one).
type Registry struct {
	// Path of the JSON file. Its directory is created when missing.
	Path string
	// MinPort and MaxPort bound newly allocated ports (inclusive); zero
	// means DefaultMinPort / DefaultMaxPort. Existing entries outside the
	// range are kept: a port is only chosen once.
	MinPort, MaxPort int
	// LockTimeout bounds the wait for the file lock (DefaultLockTimeout
	// when zero).
	LockTimeout time.Duration
	// IsFree reports whether a port can be listened on; nil means trying
	// to listen on 127.0.0.1:port. Tests replace it.
	IsFree func(port int) bool
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Recovery describes a corrupt registry file that was moved aside.
type Recovery struct {
	// Backup is where the unreadable file now is.
	Backup string
	// Reason is why it could not be used.
	Reason string
}

// Result is what an operation did besides its main answer.
type Result struct {
	// Recovered is set when the file was corrupt, backed up and rebuilt.
	Recovered *Recovery
}

// DefaultPath is ~/.config/otelcfg/port_registry.json, or
// $XDG_CONFIG_HOME/otelcfg/port_registry.json when that variable holds an
// absolute path.
func DefaultPath() (string, error) {
	if x := os.Getenv("XDG_CONFIG_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "otelcfg", "port_registry.json"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("portreg: no home directory for the default registry path: %w", err)
	}
	return filepath.Join(home, ".config", "otelcfg", "port_registry.json"), nil
}

// NormalizeDir returns the key a directory is registered under: absolute,
// cleaned, and with symbolic links resolved when the path exists, so that
// "./app", "/src/app/" and a symlink to it are one project.
func NormalizeDir(dir string) (string, error) {
	if dir == "" {
		dir = "."
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("portreg: %w", err)
	}
	abs = filepath.Clean(abs)
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("portreg: resolve %s: %w", abs, err)
	}
	return abs, nil
}

func (r *Registry) bounds() (lo, hi int) {
	lo, hi = r.MinPort, r.MaxPort
	if lo == 0 {
		lo = DefaultMinPort
	}
	if hi == 0 {
		hi = DefaultMaxPort
	}
	return lo, hi
}

func (r *Registry) validate() error {
	if r.Path == "" {
		return errors.New("portreg: registry path is empty")
	}
	lo, hi := r.bounds()
	if lo < 1 || hi > 65535 || lo > hi {
		return fmt.Errorf("portreg: invalid port range %d-%d", lo, hi)
	}
	return nil
}

func (r *Registry) now() time.Time {
	if r.Now != nil {
		return r.Now().UTC()
	}
	return time.Now().UTC()
}

func (r *Registry) isFree(port int) bool {
	if r.IsFree != nil {
		return r.IsFree(port)
	}
	return PortFree(port)
}

// PortFree reports whether 127.0.0.1:port can be listened on right now.
func PortFree(port int) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = ln.Close()
	return true
}

// Allocate returns dir's port, registering a new one when dir has none. A
// registered port is returned as is, even when it is busy (the project's
// interceptor may already be running); a new port is one registered to no
// other directory and free to listen on, starting from a candidate derived
// from the path.
func (r *Registry) Allocate(dir string) (Entry, Result, error) {
	key, err := NormalizeDir(dir)
	if err != nil {
		return Entry{}, Result{}, err
	}
	var out Entry
	res, err := r.update(func(f *file) (bool, error) {
		for _, e := range f.Entries {
			if e.Dir == key {
				out = e
				return false, nil
			}
		}
		taken := make(map[int]bool, len(f.Entries))
		for _, e := range f.Entries {
			taken[e.Port] = true
		}
		lo, hi := r.bounds()
		n := hi - lo + 1
		start := int(hash(key) % uint32(n))
		for i := range n {
			p := lo + (start+i)%n
			if taken[p] || !r.isFree(p) {
				continue
			}
			out = Entry{Dir: key, Port: p, AllocatedAt: r.now().Truncate(time.Second)}
			f.Entries = append(f.Entries, out)
			return true, nil
		}
		return false, fmt.Errorf("%w %d-%d (%d registered)", ErrNoFreePort, lo, hi, len(f.Entries))
	})
	return out, res, err
}

// Lookup returns dir's registration, if any.
func (r *Registry) Lookup(dir string) (Entry, bool, Result, error) {
	key, err := NormalizeDir(dir)
	if err != nil {
		return Entry{}, false, Result{}, err
	}
	var out Entry
	var found bool
	res, err := r.update(func(f *file) (bool, error) {
		for _, e := range f.Entries {
			if e.Dir == key {
				out, found = e, true
			}
		}
		return false, nil
	})
	return out, found, res, err
}

// Remove deletes dir's registration and reports whether there was one.
func (r *Registry) Remove(dir string) (Entry, bool, Result, error) {
	key, err := NormalizeDir(dir)
	if err != nil {
		return Entry{}, false, Result{}, err
	}
	var out Entry
	var found bool
	res, err := r.update(func(f *file) (bool, error) {
		for i, e := range f.Entries {
			if e.Dir == key {
				out, found = e, true
				f.Entries = append(f.Entries[:i], f.Entries[i+1:]...)
				return true, nil
			}
		}
		return false, nil
	})
	return out, found, res, err
}

// List returns every registration, sorted by port.
func (r *Registry) List() ([]Entry, Result, error) {
	var out []Entry
	res, err := r.update(func(f *file) (bool, error) {
		out = append([]Entry(nil), f.Entries...)
		return false, nil
	})
	return out, res, err
}

// update runs fn on the registry under the lock and writes the file back
// when fn reports a change (or when a corrupt file had to be rebuilt).
// Reads take the same exclusive lock: recovering a corrupt file writes.
func (r *Registry) update(fn func(*file) (bool, error)) (Result, error) {
	var res Result
	if err := r.validate(); err != nil {
		return res, err
	}
	if err := os.MkdirAll(filepath.Dir(r.Path), 0o700); err != nil {
		return res, fmt.Errorf("portreg: %w", err)
	}
	timeout := r.LockTimeout
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	unlock, err := lockFile(r.Path+".lock", timeout)
	if err != nil {
		return res, err
	}
	defer unlock()

	f, rec, err := r.read()
	if err != nil {
		return res, err
	}
	res.Recovered = rec
	changed, err := fn(f)
	if err != nil {
		return res, err
	}
	if changed || rec != nil {
		if err := r.write(f); err != nil {
			return res, err
		}
	}
	return res, nil
}

// read loads the file. A missing or empty file is an empty registry; an
// unusable one is renamed to a backup and replaced by an empty registry.
func (r *Registry) read() (*file, *Recovery, error) {
	data, err := os.ReadFile(r.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &file{Version: FileVersion}, nil, nil
	case err != nil:
		return nil, nil, fmt.Errorf("portreg: %w", err)
	case len(bytes.TrimSpace(data)) == 0:
		return &file{Version: FileVersion}, nil, nil
	}
	f, reason := parse(data)
	if reason == "" {
		return f, nil, nil
	}
	backup, err := r.backup()
	if err != nil {
		return nil, nil, err
	}
	return &file{Version: FileVersion}, &Recovery{Backup: backup, Reason: reason}, nil
}

// parse decodes and checks a registry; the reason is empty when the file is
// usable.
func parse(data []byte) (*file, string) {
	var f file
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, "not a registry file: " + err.Error()
	}
	if dec.More() {
		return nil, "trailing data after the registry object"
	}
	if f.Version != FileVersion {
		return nil, fmt.Sprintf("unsupported version %d (want %d)", f.Version, FileVersion)
	}
	dirs := map[string]bool{}
	ports := map[int]bool{}
	for i, e := range f.Entries {
		switch {
		case e.Dir == "" || !filepath.IsAbs(e.Dir):
			return nil, fmt.Sprintf("entry %d: dir %q is not an absolute path", i, e.Dir)
		case e.Port < 1 || e.Port > 65535:
			return nil, fmt.Sprintf("entry %d: port %d out of range", i, e.Port)
		case dirs[e.Dir]:
			return nil, fmt.Sprintf("entry %d: directory %s registered twice", i, e.Dir)
		case ports[e.Port]:
			return nil, fmt.Sprintf("entry %d: port %d registered twice", i, e.Port)
		}
		dirs[e.Dir], ports[e.Port] = true, true
	}
	return &f, ""
}

// backup renames the registry to <path>.corrupt-<timestamp>, adding a
// counter when that name is taken.
func (r *Registry) backup() (string, error) {
	base := r.Path + ".corrupt-" + r.now().Format("20060102T150405Z")
	name := base
	for i := 2; ; i++ {
		if _, err := os.Lstat(name); errors.Is(err, fs.ErrNotExist) {
			break
		}
		name = base + "-" + strconv.Itoa(i)
	}
	if err := os.Rename(r.Path, name); err != nil {
		return "", fmt.Errorf("portreg: back up corrupt registry: %w", err)
	}
	return name, nil
}

// write replaces the file atomically (temporary file, then rename), so a
// reader never sees half a registry and a crash leaves the old one.
func (r *Registry) write(f *file) error {
	f.Version = FileVersion
	sort.Slice(f.Entries, func(i, j int) bool { return f.Entries[i].Port < f.Entries[j].Port })
	if f.Entries == nil {
		f.Entries = []Entry{}
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("portreg: %w", err)
	}
	data = append(data, '\n')
	tmp, err := os.CreateTemp(filepath.Dir(r.Path), filepath.Base(r.Path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("portreg: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("portreg: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("portreg: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("portreg: %w", err)
	}
	if err := os.Rename(tmp.Name(), r.Path); err != nil {
		return fmt.Errorf("portreg: %w", err)
	}
	return nil
}

func hash(s string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(s))
	return h.Sum32()
}
