package analysis

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/integration/cluster"
)

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	Title   string  `json:"title"`
	Type    string  `json:"type"`
	Panels  []panel `json:"panels"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

// queries lists every panel query by panel title, rows included.
func (d dashboard) queries() map[string][]string {
	out := map[string][]string{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				out[p.Title] = append(out[p.Title], tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// grafanaVars matches $name, ${name} and ${name:format}.
var grafanaVars = regexp.MustCompile(`\$\{([a-zA-Z_]+)(?::[a-z]+)?\}|\$([a-zA-Z_]+)`)

// substitute replaces Grafana variables as Grafana would for this test's
// dashboard settings; an unknown variable is an error.
func substitute(expr string, vars map[string]string) (string, error) {
	var missing []string
	out := grafanaVars.ReplaceAllStringFunc(expr, func(m string) string {
		sub := grafanaVars.FindStringSubmatch(m)
		name := sub[1] + sub[2]
		v, ok := vars[name]
		if !ok {
			missing = append(missing, name)
			return m
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("unknown variables %v in %s", missing, expr)
	}
	return out, nil
}

// TestDashboard: during a release, every query of the Grafana dashboard in
// the chart parses on the real Prometheus (which scrapes podsim's pods and
// serin's /metrics) and returns series, and the dashboard's variables find
// the Canary.
func (e *env) testDashboard(t *testing.T) {
	root, err := cluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "charts", "serin", "dashboards", "serin.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	queries := d.queries()
	if len(queries) < 10 {
		t.Fatalf("%d panels with queries; the dashboard lost its panels", len(queries))
	}

	a := e.newApp(t, `
progressDeadlineSeconds: 60
analysis:
  interval: 2s
  threshold: 2
  stepWeight: 25
  maxWeight: 50
  metrics:
  - name: request-success-rate
    thresholdRange: {min: 99}
`)
	a.watch()
	a.startLoad(30)
	// One release finished (for the release counters and durations), and a
	// slow one under way (weights, verdicts, both tracks' telemetry).
	a.deploy("2.0.0", nil)
	a.waitPhase(v1alpha1.PhaseSucceeded, time.Minute)
	a.applyCanary(`
progressDeadlineSeconds: 60
analysis:
  interval: 2s
  threshold: 2
  stepWeight: 5
  maxWeight: 50
  metrics:
  - name: request-success-rate
    thresholdRange: {min: 99}
`)
	a.deploy("3.0.0", map[string]string{"ERROR_RATE": "0.005"})
	if _, err := a.waitFor(time.Minute, func(st v1alpha1.CanaryStatus) (bool, error) {
		if st.Phase != v1alpha1.PhaseProgressing && st.Phase != v1alpha1.PhaseWaiting && st.Phase != v1alpha1.PhaseSucceeded {
			return false, fmt.Errorf("phase %s", st.Phase)
		}
		return st.Phase == v1alpha1.PhaseProgressing && st.CanaryWeight >= 10, nil
	}); err != nil {
		t.Fatal(err)
	}

	vars := map[string]string{
		"namespace": a.ns, "name": appName, "datasource": "prometheus",
		// Grafana's $__rate_interval is at least four scrape intervals.
		"__rate_interval": "10s", "__interval": "1s", "__range": "5m",
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for title, exprs := range queries {
		for _, expr := range exprs {
			q, err := substitute(expr, vars)
			if err != nil {
				t.Errorf("panel %q: %v", title, err)
				continue
			}
			// Retry while the release goes on: a series may need a scrape
			// or two after its first sample.
			vec, err := e.prom.WaitFor(ctx, q, func(v model.Vector) bool { return len(v) > 0 })
			if err != nil {
				t.Errorf("panel %q: %v", title, err)
				continue
			}
			t.Logf("panel %q: %d series, e.g. %s", title, len(vec), vec[0])
		}
	}
	// The tracks' panels show both tracks.
	for _, title := range []string{"Request success rate", "Request rate", "Traffic weight"} {
		for _, expr := range queries[title] {
			q, _ := substitute(expr, vars)
			vec, err := e.prom.Vector(ctx, q)
			if err != nil || len(vec) != 2 {
				t.Errorf("panel %q: %v, %v; want one series per track", title, vec, err)
			}
		}
	}

	// Variables: label_values(metric{selector}, label) must list the Canary.
	labelValues := regexp.MustCompile(`^label_values\((.*),\s*([a-zA-Z_]+)\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Errorf("variable %s: %v", v.Name, err)
			continue
		}
		m := labelValues.FindStringSubmatch(q.Query)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(...)", v.Name, q.Query)
			continue
		}
		sel, err := substitute(m[1], vars)
		if err != nil {
			t.Errorf("variable %s: %v", v.Name, err)
			continue
		}
		values, _, err := e.prom.API().LabelValues(ctx, m[2], []string{sel}, time.Now().Add(-5*time.Minute), time.Now())
		if err != nil {
			t.Errorf("variable %s: %v", v.Name, err)
			continue
		}
		if want := vars[v.Name]; !containsValue(values, want) {
			t.Errorf("variable %s lists %v, not %q", v.Name, values, want)
		}
	}
}

func containsValue(vs model.LabelValues, want string) bool {
	for _, v := range vs {
		if strings.EqualFold(string(v), want) {
			return true
		}
	}
	return false
}
