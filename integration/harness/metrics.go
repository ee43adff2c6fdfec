package harness

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MetricSum scrapes a Prometheus text endpoint (serin's /metrics, a
// podsim pod's) and sums the samples of a metric whose labels include
// every given name="value" pair.
func MetricSum(url, name string, labels ...string) (float64, error) {
	return MetricSumWithToken(url, "", name, labels...)
}

// MetricSumWithToken is MetricSum with a bearer token (when not empty),
// over HTTPS without verifying the certificate when url is https (serin
// serves /metrics with a certificate it signs itself).
func MetricSumWithToken(url, token, name string, labels ...string) (float64, error) {
	resp, err := Scrape(url, token)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return sumSamples(resp.Body, name, labels...)
}

// scrapeClient skips certificate verification: the tests check who may
// read /metrics, not serin's self-signed certificate.
var scrapeClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
	TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // see above
}}

// Scrape GETs url with the bearer token (none when empty), as Prometheus
// would; the caller closes the body.
func Scrape(url, token string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil) //nolint:noctx // bounded by the client's timeout
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return scrapeClient.Do(req)
}

// sumSamples sums the samples of a metric in Prometheus text format whose
// labels include every given name="value" pair.
func sumSamples(r io.Reader, name string, labels ...string) (float64, error) {
	sum := 0.0
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || (len(line) > len(name) && line[len(name)] != '{' && line[len(name)] != ' ') {
			continue
		}
		ok := true
		for i := 0; i+1 < len(labels); i += 2 {
			ok = ok && strings.Contains(line, fmt.Sprintf("%s=%q", labels[i], labels[i+1]))
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum, sc.Err()
}
