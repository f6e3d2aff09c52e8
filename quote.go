package groupjoin

import "strconv"

// appendQuoted appends s quoted as strconv.AppendQuote does. Answers are
// printable ASCII without quotes or backslashes, which need no escape:
// they are copied between quotes without strconv's rune-by-rune walk, a
// good part of the cost of refusing a request. Anything else goes through
// strconv.
func appendQuoted(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > '~' || c == '"' || c == '\\' {
			return strconv.AppendQuote(b, s)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
