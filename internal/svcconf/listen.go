package svcconf

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// ListenAddr turns a listen setting into host:port for net.Listen: a bare
// port means loopback, so a service is not reachable from the network by
// accident.
func ListenAddr(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", fmt.Errorf("empty address")
	}
	if isDigits(s) {
		if _, err := ParsePort(s, 0); err != nil {
			return "", err
		}
		return net.JoinHostPort("127.0.0.1", s), nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("%q is not host:port, :port or a port number", s)
	}
	if _, err := ParsePort(port, 0); err != nil {
		return "", err
	}
	if strings.ContainsAny(host, " /") {
		return "", fmt.Errorf("%q is not a host name or IP address", host)
	}
	return net.JoinHostPort(host, port), nil
}

// IsLoopbackListen reports whether a listen address only accepts local
// connections.
func IsLoopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ParsePort parses a port number from min to 65535.
func ParsePort(s string, min int) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < min || n > 65535 {
		return 0, fmt.Errorf("port %q is not a number from %d to 65535", s, min)
	}
	return n, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
