package egress

import (
	"errors"
	"net/url"
	"strings"
)

// Redact returns raw, a URL, fit for logs: scheme, host and path, without
// userinfo, query string or fragment (they often carry tokens). What does
// not parse as a URL with a host is replaced by "<invalid URL>".
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "<invalid URL>"
	}
	return RedactURL(u)
}

// RedactURL is Redact for a parsed URL.
func RedactURL(u *url.URL) string {
	c := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	return c.String()
}

// Cause strips the *url.Error around err, whose text repeats the whole
// URL, keeping what went wrong.
func Cause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// RedactCommand returns a command line fit for logs: every word that is
// an absolute http(s) URL (quotes around it kept) is redacted as Redact
// does; the other words stay.
func RedactCommand(line string) string {
	words := strings.Split(line, " ")
	for i, w := range words {
		core := strings.Trim(w, `"'`)
		if !strings.HasPrefix(core, "http://") && !strings.HasPrefix(core, "https://") {
			continue
		}
		if u, err := url.Parse(core); err == nil && u.Host != "" {
			words[i] = strings.Replace(w, core, RedactURL(u), 1)
		}
	}
	return strings.Join(words, " ")
}
