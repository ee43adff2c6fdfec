package scale

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/client-go/kubernetes"

	"github.com/serin-dev/serin/integration/harness"
)

// scrape is one parsed /metrics page.
type scrape struct {
	At   time.Time
	Fams map[string]*dto.MetricFamily
}

func parseMetrics(r io.Reader) (scrape, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return scrape{}, fmt.Errorf("parse metrics: %w", err)
	}
	return scrape{At: time.Now(), Fams: fams}, nil
}

// scrapeSerin reads serin's /metrics.
func scrapeSerin(s *harness.Serin) (scrape, error) {
	resp, err := harness.Scrape(s.MetricsURL(), s.MetricsToken())
	if err != nil {
		return scrape{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return scrape{}, fmt.Errorf("serin /metrics: %s", resp.Status)
	}
	return parseMetrics(resp.Body)
}

// scrapeAPIServer reads the API server's own /metrics.
func scrapeAPIServer(ctx context.Context, cs kubernetes.Interface) (scrape, error) {
	b, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return scrape{}, fmt.Errorf("API server /metrics: %w", err)
	}
	return parseMetrics(strings.NewReader(string(b)))
}

// match reports whether m's labels pass keep (nil keeps all).
func match(m *dto.Metric, keep func(map[string]string) bool) bool {
	if keep == nil {
		return true
	}
	l := map[string]string{}
	for _, p := range m.GetLabel() {
		l[p.GetName()] = p.GetValue()
	}
	return keep(l)
}

// sum adds up a counter's or gauge's samples that pass keep.
func (s scrape) sum(name string, keep func(map[string]string) bool) float64 {
	total := 0.0
	for _, m := range s.Fams[name].GetMetric() {
		if !match(m, keep) {
			continue
		}
		switch {
		case m.GetCounter() != nil:
			total += m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			total += m.GetGauge().GetValue()
		case m.GetUntyped() != nil:
			total += m.GetUntyped().GetValue()
		}
	}
	return total
}

// buckets are a histogram's cumulative counts by upper bound, summed over
// the series that pass keep.
func (s scrape) buckets(name string, keep func(map[string]string) bool) map[float64]float64 {
	out := map[float64]float64{}
	for _, m := range s.Fams[name].GetMetric() {
		if !match(m, keep) || m.GetHistogram() == nil {
			continue
		}
		for _, b := range m.GetHistogram().GetBucket() {
			if !math.IsInf(b.GetUpperBound(), 1) {
				out[b.GetUpperBound()] += float64(b.GetCumulativeCount())
			}
		}
		out[math.Inf(1)] += float64(m.GetHistogram().GetSampleCount())
	}
	return out
}

// histQuantile is the q-quantile of the observations a histogram made
// between two scrapes, as Prometheus's histogram_quantile estimates it
// (linear within a bucket); NaN without observations.
func histQuantile(q float64, before, after map[float64]float64) float64 {
	bounds := make([]float64, 0, len(after))
	for b := range after {
		bounds = append(bounds, b)
	}
	sort.Float64s(bounds)
	if len(bounds) == 0 {
		return math.NaN()
	}
	total := after[math.Inf(1)] - before[math.Inf(1)]
	if total <= 0 {
		return math.NaN()
	}
	rank, prevBound, prevCount := q*total, 0.0, 0.0
	for _, b := range bounds {
		c := after[b] - before[b]
		if c >= rank {
			if math.IsInf(b, 1) {
				return prevBound
			}
			if c == prevCount {
				return b
			}
			return prevBound + (b-prevBound)*(rank-prevCount)/(c-prevCount)
		}
		prevBound, prevCount = b, c
	}
	return prevBound
}

// sampler scrapes serin every interval and keeps the scrapes.
type sampler struct {
	mu   sync.Mutex
	all  []scrape
	errs int
}

func startSampler(ctx context.Context, s *harness.Serin, every time.Duration) *sampler {
	sm := &sampler{}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			sc, err := scrapeSerin(s)
			sm.mu.Lock()
			if err != nil {
				sm.errs++
			} else {
				sm.all = append(sm.all, sc)
			}
			sm.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return sm
}

// between are the scrapes taken in [from, to].
func (sm *sampler) between(from, to time.Time) []scrape {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	var out []scrape
	for _, s := range sm.all {
		if !s.At.Before(from) && !s.At.After(to) {
			out = append(out, s)
		}
	}
	return out
}

// maxOf is the highest value of f over scrapes.
func maxOf(scrapes []scrape, f func(scrape) float64) float64 {
	m := 0.0
	for _, s := range scrapes {
		m = max(m, f(s))
	}
	return m
}

// quantile is the q-quantile (nearest rank) of durations; 0 when empty.
func quantile(q float64, ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// isWrite reports whether an HTTP method or API verb writes.
func isWrite(verb string) bool {
	switch strings.ToUpper(verb) {
	case "POST", "PUT", "PATCH", "DELETE", "APPLY", "CREATE", "UPDATE", "DELETECOLLECTION":
		return true
	}
	return false
}
