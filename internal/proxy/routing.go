package proxy

import (
	"net/http"
	"regexp"
	"strings"
)

// How a request's memory user id was chosen.
const (
	SourceCustomHeader  = "custom_header"
	SourceHeaderPattern = "header_pattern"
	SourceDefault       = "default"
)

// Route is the memory user id chosen for a request, and why.
type Route struct {
	UserID string `json:"user_id"`
	// Source is SourceCustomHeader, SourceHeaderPattern or SourceDefault.
	Source string `json:"source"`
	// Header is the request header that decided (empty for the default).
	Header string `json:"header,omitempty"`
	// Pattern is the matching pattern (SourceHeaderPattern only).
	Pattern string `json:"pattern,omitempty"`
}

type userRouter struct {
	customHeader string
	patterns     []compiledPattern
	defaultID    string
}

type compiledPattern struct {
	HeaderPattern
	re *regexp.Regexp
}

func newUserRouter(m UserIDMappings) (*userRouter, error) {
	r := &userRouter{customHeader: m.CustomHeader, defaultID: m.DefaultUserID}
	for _, p := range m.HeaderPatterns {
		re, err := compilePattern(p.Pattern)
		if err != nil {
			return nil, err
		}
		r.patterns = append(r.patterns, compiledPattern{HeaderPattern: p, re: re})
	}
	return r, nil
}

// route picks the user id: the custom header when the client sends a
// non-empty one, else the first pattern that matches any value of its
// header, else the default.
func (u *userRouter) route(h http.Header) Route {
	if v := strings.TrimSpace(h.Get(u.customHeader)); v != "" {
		return Route{UserID: v, Source: SourceCustomHeader, Header: u.customHeader}
	}
	for _, p := range u.patterns {
		for _, v := range h.Values(p.Header) {
			if p.re.MatchString(v) {
				return Route{UserID: p.UserID, Source: SourceHeaderPattern, Header: p.Header, Pattern: p.Pattern}
			}
		}
	}
	return Route{UserID: u.defaultID, Source: SourceDefault}
}
