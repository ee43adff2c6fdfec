package tester

import (
	"errors"
	"fmt"
	"strings"
)

// SplitArgs splits a command line into arguments the way a POSIX shell
// splits words, without running a shell: whitespace separates words,
// '…' is literal, "…" is literal except for \" \\ \$ \` and a backslash
// outside quotes escapes the next character. There is no expansion of
// variables, globs or commands, and unquoted shell operators (| ; & < >
// ` $( ) are refused so that a pipeline is never silently passed to the
// program as arguments.
func SplitArgs(s string) ([]string, error) {
	var (
		args  []string
		cur   strings.Builder
		inArg bool
	)
	flush := func() {
		if inArg {
			args = append(args, cur.String())
			cur.Reset()
			inArg = false
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			flush()
		case c == '\\' && i+1 < len(s) && s[i+1] == '\n':
			i++ // backslash-newline continues the line
		case c == '\\':
			inArg = true
			if i+1 < len(s) {
				i++
				cur.WriteByte(s[i])
			}
		case c == '\'':
			inArg = true
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, errors.New("unterminated single quote")
			}
			cur.WriteString(s[i+1 : i+1+end])
			i += end + 1
		case c == '"':
			inArg = true
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`\n", s[i+1]) >= 0 {
					i++
					if s[i] == '\n' {
						continue
					}
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("unterminated double quote")
			}
		case strings.IndexByte("|;&<>`", c) >= 0 || (c == '$' && i+1 < len(s) && s[i+1] == '('):
			return nil, fmt.Errorf("shell syntax %q at offset %d is not supported by type cmd (use type bash)", string(c), i)
		default:
			inArg = true
			cur.WriteByte(c)
		}
	}
	flush()
	return args, nil
}
