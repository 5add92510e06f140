//go:build !unix && !windows

package portreg

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// lockFile falls back to an exclusively created marker file on platforms
// without advisory locks (wasip1, plan9). A marker older than a minute is
// taken to be left by a crashed process.
func lockFile(path string, timeout time.Duration) (unlock func(), err error) {
	marker := path + ".held"
	deadline := time.Now().Add(timeout)
	for {
		f, err := os.OpenFile(marker, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			f.Close()
			return func() { _ = os.Remove(marker) }, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("portreg: lock %s: %w", path, err)
		}
		if st, serr := os.Stat(marker); serr == nil && time.Since(st.ModTime()) > time.Minute {
			_ = os.Remove(marker)
			continue
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("portreg: registry %s is locked by another process (waited %s)", path, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
