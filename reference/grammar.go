package reference

import "strings"

// The reference grammar, matched by hand: compiling it as regular
// expressions cost every `berth run` 3 ms (the regexp compiler's code is
// cold in a new process), more than the rest of the image lookup.
// grammar_test.go checks each matcher against the expression it stands
// for.

func isLowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

func isAlnum(c byte) bool { return isLowerAlnum(c) || c >= 'A' && c <= 'Z' }

// ValidPathComponent reports whether s is one component of a repository
// path: [a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*
func ValidPathComponent(s string) bool {
	i, n := 0, len(s)
	for {
		start := i
		for i < n && isLowerAlnum(s[i]) {
			i++
		}
		if i == start {
			return false
		}
		if i == n {
			return true
		}
		switch s[i] {
		case '.':
			i++
		case '_':
			i++
			if i < n && s[i] == '_' {
				i++
			}
		case '-':
			for i < n && s[i] == '-' {
				i++
			}
		default:
			return false
		}
	}
}

// ValidRepository reports whether s is a repository path: components
// (ValidPathComponent) separated by single slashes.
func ValidRepository(s string) bool { return everyPart(s, '/', ValidPathComponent) }

// everyPart reports whether every part of s between seps is valid.
func everyPart(s string, sep byte, valid func(string) bool) bool {
	for {
		i := strings.IndexByte(s, sep)
		if i < 0 {
			return valid(s)
		}
		if !valid(s[:i]) {
			return false
		}
		s = s[i+1:]
	}
}

// ValidTag reports whether s is a tag: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
func ValidTag(s string) bool {
	if len(s) == 0 || len(s) > 128 || !(isAlnum(s[0]) || s[0] == '_') {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '_' && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

// ValidHostLabel reports whether s is a DNS label:
// [A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?
func ValidHostLabel(s string) bool {
	if len(s) == 0 || !isAlnum(s[0]) || !isAlnum(s[len(s)-1]) {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		if !isAlnum(s[i]) && s[i] != '-' {
			return false
		}
	}
	return true
}

// ValidDomain reports whether s is a registry host: DNS labels separated
// by dots, or an IPv6 address in brackets, with an optional :port.
func ValidDomain(s string) bool {
	var port string
	if len(s) > 0 && s[0] == '[' {
		end := 1
		for end < len(s) && s[end] != ']' {
			c := s[end]
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == ':' || c == '.') {
				return false
			}
			end++
		}
		if end == 1 || end == len(s) {
			return false
		}
		port = s[end+1:]
	} else {
		i := 0
		for i < len(s) && s[i] != ':' {
			i++
		}
		if !everyPart(s[:i], '.', ValidHostLabel) {
			return false
		}
		port = s[i:]
	}
	if port == "" {
		return true
	}
	if port[0] != ':' || len(port) == 1 {
		return false
	}
	for i := 1; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return false
		}
	}
	return true
}
