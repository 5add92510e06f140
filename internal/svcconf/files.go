package svcconf

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// ErrIsDir is the error of a settings file path that names a directory.
var ErrIsDir = errors.New("is a directory")

// UnwrapPathError returns the cause of a *fs.PathError, so a message names
// the file only once.
func UnwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// UnwrapOpError returns the cause of a *net.OpError (and of the
// *os.SyscallError in it), so a listen error names the address only once.
func UnwrapOpError(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		var se *os.SyscallError
		if errors.As(oe.Err, &se) {
			return se.Err
		}
		return oe.Err
	}
	return err
}

// ResolvePath expands a leading ~ and makes a relative path relative to
// base (the settings file's directory; "" keeps it relative to the working
// directory, as for flags and variables).
func ResolvePath(p, base string) string {
	if p == "~" || strings.HasPrefix(p, "~/") || strings.HasPrefix(p, `~\`) {
		if home, err := os.UserHomeDir(); err == nil {
			p = filepath.Join(home, p[1:])
		}
	}
	if base != "" && !filepath.IsAbs(p) {
		p = filepath.Join(base, p)
	}
	return p
}

// IOHint is the hint of a settings file that cannot be read: envConfig is
// the variable that names the file, service the service's name (which
// also names its example settings file, <service>.yaml).
func IOHint(err error, envConfig, service string) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "check the --config path or $" + envConfig
	case errors.Is(err, fs.ErrPermission):
		return "the " + service + " needs read permission on the file"
	case errors.Is(err, ErrIsDir):
		return "name the settings file inside it, e.g. " + service + ".yaml"
	}
	return ""
}
