package providers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// Secret keys of a Datadog provider (Flagger's).
const (
	DatadogAPIKey         = "datadog_api_key"
	DatadogApplicationKey = "datadog_application_key"
)

// queryDatadog runs a metrics query on the v1 query API (GET
// /api/v1/query, from and to in seconds: the metric's interval ending
// now) with the Secret's API and application keys in DD-API-KEY and
// DD-APPLICATION-KEY. The value is the first non-null point of the first
// series: the oldest, whose bucket is complete (Flagger's choice).
func queryDatadog(ctx context.Context, c *conn, req Request) (float64, error) {
	keys, err := c.need(DatadogAPIKey, DatadogApplicationKey)
	if err != nil {
		return 0, err
	}
	to := req.End.Unix()
	params := url.Values{"query": {req.Query}, "from": {strconv.FormatInt(to-max(int64(req.Window.Seconds()), 1), 10)},
		"to": {strconv.FormatInt(to, 10)}}
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, c.endpoint("/api/v1/query", params), nil)
	if err != nil {
		return 0, err
	}
	auth := func(h http.Header) {
		h.Set("DD-API-KEY", keys[0])
		h.Set("DD-APPLICATION-KEY", keys[1])
	}
	var ans struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Series []struct {
			Pointlist [][]json.RawMessage `json:"pointlist"`
		} `json:"series"`
	}
	if err := c.do(r, auth, &ans); err != nil {
		return 0, err
	}
	if ans.Status == "error" || ans.Error != "" {
		return 0, fmt.Errorf("the query failed: %s", truncate(ans.Error, 200))
	}
	if len(ans.Series) == 0 {
		return 0, fmt.Errorf("no series: %w", ErrNoData)
	}
	for _, p := range ans.Series[0].Pointlist {
		if len(p) < 2 {
			continue
		}
		if v, ok := number(p[1]); ok {
			return v, nil
		}
	}
	return 0, fmt.Errorf("the first series has no non-null point: %w", ErrNoData)
}

// Secret keys of a New Relic provider (Flagger's).
const (
	NewRelicAccountID = "newrelic_account_id"
	NewRelicQueryKey  = "newrelic_query_key"
)

// queryNewRelic runs an NRQL query on the Insights query API (GET
// /v1/accounts/<account>/query, X-Query-Key), with "SINCE <interval in
// seconds> seconds ago" appended as Flagger does. The value is the first
// result's "result" field (a query's "… AS result"), or its only number.
func queryNewRelic(ctx context.Context, c *conn, req Request) (float64, error) {
	keys, err := c.need(NewRelicAccountID, NewRelicQueryKey)
	if err != nil {
		return 0, err
	}
	nrql := fmt.Sprintf("%s SINCE %d seconds ago", req.Query, max(int64(req.Window.Seconds()), 1))
	r, err := http.NewRequestWithContext(ctx, http.MethodGet,
		c.endpoint("/v1/accounts/"+url.PathEscape(keys[0])+"/query", url.Values{"nrql": {nrql}}), nil)
	if err != nil {
		return 0, err
	}
	r.Header.Set("Accept", "application/json")
	auth := func(h http.Header) { h.Set("X-Query-Key", keys[1]) }
	var ans struct {
		Results []map[string]json.RawMessage `json:"results"`
	}
	if err := c.do(r, auth, &ans); err != nil {
		return 0, err
	}
	if len(ans.Results) == 0 {
		return 0, fmt.Errorf("no result: %w", ErrNoData)
	}
	return nrqlValue(ans.Results[0])
}

// nrqlValue picks the value of one NRQL result: "result", or the only
// field, or the only number of a one-field object (percentile: {"95": x}).
func nrqlValue(res map[string]json.RawMessage) (float64, error) {
	raw, ok := res["result"]
	if !ok {
		if len(res) != 1 {
			return 0, errors.New(`the result has several fields: name the value "AS result"`)
		}
		for _, v := range res {
			raw = v
		}
		var inner map[string]json.RawMessage
		if json.Unmarshal(raw, &inner) == nil && len(inner) == 1 {
			for _, v := range inner {
				raw = v
			}
		}
	}
	if string(raw) == "null" {
		return 0, fmt.Errorf("the result is null: %w", ErrNoData)
	}
	v, ok := number(raw)
	if !ok {
		return 0, errors.New("the result is not a number")
	}
	return v, nil
}
