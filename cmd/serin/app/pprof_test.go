package app

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestPprofMux: the profile index and a named profile are served.
func TestPprofMux(t *testing.T) {
	srv := httptest.NewServer(pprofMux())
	defer srv.Close()
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/debug/pprof/goroutine?debug=1"} {
		resp, err := http.Get(srv.URL + path) //nolint:noctx // test server
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s", path, resp.Status)
		}
	}
	resp, err := http.Get(srv.URL + "/metrics") //nolint:noctx // test server
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /metrics on the pprof listener: %s", resp.Status)
	}
}
