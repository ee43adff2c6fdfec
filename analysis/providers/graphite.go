package providers

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/serin-dev/serin/api/v1alpha1"
)

var spaces = regexp.MustCompile(`\s+`)

// queryGraphite runs a render API query: the template's query is the
// query string of /render ("target=…&from=-5min"), whitespace runs
// collapsed to one space; serin asks for JSON and, when the query sets no
// from, for the metric's interval (from=-<seconds>s). The value is the
// last non-null point, of the last target that has one (Flagger's
// choice). Basic auth from the Secret's username and password.
func queryGraphite(ctx context.Context, c *conn, req Request) (float64, error) {
	params, err := url.ParseQuery(strings.TrimSpace(spaces.ReplaceAllString(req.Query, " ")))
	if err != nil || len(params["target"]) == 0 {
		return 0, fmt.Errorf("query is not a render API query string with a target (target=…&from=…)")
	}
	params.Set("format", "json")
	if params.Get("from") == "" {
		params.Set("from", fmt.Sprintf("-%ds", max(int64(req.Window.Seconds()), 1)))
		if params.Get("until") == "" && !req.End.IsZero() {
			params.Set("until", strconv.FormatInt(req.End.Unix(), 10))
		}
	}
	var auth func(http.Header)
	if c.secret != nil {
		creds, err := c.need("username", "password")
		if err != nil {
			return 0, err
		}
		auth = func(h http.Header) { h.Set("Authorization", basicAuth(creds[0], creds[1])) }
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, c.endpoint("/render", params), nil)
	if err != nil {
		return 0, err
	}
	var series []struct {
		Target     string              `json:"target"`
		Datapoints [][]json.RawMessage `json:"datapoints"`
	}
	if err := c.do(r, auth, &series); err != nil {
		return 0, err
	}
	found, last := false, 0.0
	for _, s := range series {
		for _, dp := range s.Datapoints {
			if len(dp) == 0 {
				continue
			}
			if v, ok := number(dp[0]); ok {
				found, last = true, v
			}
		}
	}
	if !found {
		return 0, fmt.Errorf("%d series without a non-null point: %w", len(series), ErrNoData)
	}
	return last, nil
}

// number reads a JSON number, or a string holding one; null, NaN and
// anything else are not numbers.
func number(raw json.RawMessage) (float64, bool) {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return 0, false
	}
	var f float64
	switch x := v.(type) {
	case float64:
		f = x
	case string:
		var err error
		if f, err = strconv.ParseFloat(x, 64); err != nil {
			return 0, false
		}
	default:
		return 0, false
	}
	return f, !math.IsNaN(f) && !math.IsInf(f, 0)
}

func basicAuth(user, pass string) string {
	r := http.Request{Header: http.Header{}}
	r.SetBasicAuth(user, pass)
	return r.Header.Get("Authorization")
}

// GraphiteDuration writes d in Graphite's units, the largest that divides
// it: "1d", "2h", "5min", "90s" (Graphite reads "m" as neither minutes
// nor months, so Prometheus's "5m" would be refused).
func GraphiteDuration(d time.Duration) string {
	s := max(int64(d.Round(time.Second)/time.Second), 1)
	for _, u := range []struct {
		secs int64
		name string
	}{{86400, "d"}, {3600, "h"}, {60, "min"}} {
		if s%u.secs == 0 {
			return strconv.FormatInt(s/u.secs, 10) + u.name
		}
	}
	return strconv.FormatInt(s, 10) + "s"
}

// IntervalFormat is how a provider type writes {{ interval }}: nil for
// Prometheus's durations (every other language here reads them too),
// GraphiteDuration for Graphite.
func IntervalFormat(t v1alpha1.ProviderType) func(time.Duration) string {
	if t == v1alpha1.ProviderGraphite {
		return GraphiteDuration
	}
	return nil
}
