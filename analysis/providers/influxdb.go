package providers

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// InfluxQL reports whether an InfluxDB query is InfluxQL rather than
// Flux: its first word is SELECT or SHOW (any case). Flux queries start
// with from(, import, a variable or a comment, never with these words.
func InfluxQL(query string) bool {
	first, _, _ := strings.Cut(strings.TrimSpace(query), " ")
	first = strings.ToUpper(strings.TrimSpace(first))
	return first == "SELECT" || first == "SHOW"
}

// queryInfluxDB runs a Flux query on /api/v2/query (InfluxDB 2 and 3, as
// Flagger does: the Secret's token and org) or an InfluxQL query on
// /query (InfluxDB 1.x, and 2.x's compatibility API), chosen by InfluxQL.
func queryInfluxDB(ctx context.Context, c *conn, req Request) (float64, error) {
	if InfluxQL(req.Query) {
		return queryInfluxQL(ctx, c, req)
	}
	return queryFlux(ctx, c, req)
}

// queryFlux takes the _value of the first record of the first table.
func queryFlux(ctx context.Context, c *conn, req Request) (float64, error) {
	params := url.Values{}
	var auth func(http.Header)
	if c.secret != nil {
		creds, err := c.need("token", "org")
		if err != nil {
			return 0, err
		}
		params.Set("org", creds[1])
		auth = func(h http.Header) { h.Set("Authorization", "Token "+creds[0]) }
	}
	body, _ := json.Marshal(map[string]any{"query": req.Query, "type": "flux",
		"dialect": map[string]any{"header": true, "annotations": []string{}}})
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint("/api/v2/query", params), bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Accept", "application/csv")
	var raw []byte
	if err := c.do(r, auth, &raw); err != nil {
		return 0, err
	}
	return fluxValue(raw)
}

// fluxValue reads Flux's CSV: the _value of the first data row after the
// first header that has one. An error table is the query's error.
func fluxValue(body []byte) (float64, error) {
	r := csv.NewReader(bytes.NewReader(body))
	r.FieldsPerRecord = -1
	col := -1
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("no record: %w", ErrNoData)
		}
		if err != nil {
			return 0, errors.New("not a Flux CSV answer")
		}
		if col < 0 {
			if i := slices.Index(rec, "_value"); i >= 0 {
				col = i
			} else if i := slices.Index(rec, "error"); i >= 0 {
				return 0, fluxError(r, i)
			}
			continue
		}
		if col >= len(rec) || rec[col] == "" || rec[col] == "_value" {
			continue
		}
		v, err := strconv.ParseFloat(rec[col], 64)
		if err != nil {
			return 0, fmt.Errorf("_value %q is not a number", truncate(rec[col], 40))
		}
		if v != v {
			return 0, fmt.Errorf("_value is NaN: %w", ErrNoData)
		}
		return v, nil
	}
}

func fluxError(r *csv.Reader, col int) error {
	rec, err := r.Read()
	if err != nil || col >= len(rec) {
		return errors.New("the query failed")
	}
	return fmt.Errorf("the query failed: %s", truncate(rec[col], 200))
}

// queryInfluxQL takes the first value column of the first row of the
// first series of the first statement. The database is the address's db
// parameter (http://influxdb:8086?db=telegraf), or the query names it
// ("db"."rp"."measurement"). Auth: the Secret's token (Authorization:
// Token), else its username and password (basic).
func queryInfluxQL(ctx context.Context, c *conn, req Request) (float64, error) {
	params := url.Values{"q": {req.Query}, "epoch": {"s"}}
	if db := c.base.Query().Get("db"); db != "" {
		params.Set("db", db)
	}
	auth, err := influxQLAuth(c)
	if err != nil {
		return 0, err
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, c.endpoint("/query", params), nil)
	if err != nil {
		return 0, err
	}
	var ans struct {
		Error   string `json:"error"`
		Results []struct {
			Error  string `json:"error"`
			Series []struct {
				Columns []string            `json:"columns"`
				Values  [][]json.RawMessage `json:"values"`
			} `json:"series"`
		} `json:"results"`
	}
	if err := c.do(r, auth, &ans); err != nil {
		return 0, err
	}
	switch {
	case ans.Error != "":
		return 0, fmt.Errorf("the query failed: %s", truncate(ans.Error, 200))
	case len(ans.Results) == 0:
		return 0, errors.New("no statement result")
	case ans.Results[0].Error != "":
		return 0, fmt.Errorf("the query failed: %s", truncate(ans.Results[0].Error, 200))
	case len(ans.Results[0].Series) == 0 || len(ans.Results[0].Series[0].Values) == 0:
		return 0, fmt.Errorf("no series: %w", ErrNoData)
	}
	s := ans.Results[0].Series[0]
	for i, name := range s.Columns {
		if name == "time" || i >= len(s.Values[0]) {
			continue
		}
		if v, ok := number(s.Values[0][i]); ok {
			return v, nil
		}
		return 0, fmt.Errorf("column %s of the first row is null: %w", name, ErrNoData)
	}
	return 0, fmt.Errorf("no value column: %w", ErrNoData)
}

func influxQLAuth(c *conn) (func(http.Header), error) {
	if c.secret == nil {
		return nil, nil
	}
	if tok := string(c.secret["token"]); tok != "" {
		return func(h http.Header) { h.Set("Authorization", "Token "+tok) }, nil
	}
	creds, err := c.need("username", "password")
	if err != nil {
		return nil, fmt.Errorf("influxdb (InfluxQL) needs the Secret's token, or username and password: %w", err)
	}
	return func(h http.Header) { h.Set("Authorization", basicAuth(creds[0], creds[1])) }, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
