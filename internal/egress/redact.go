package egress

import (
	"errors"
	"net/url"
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
