package translate

import (
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/serin-dev/serin/xds/model"
)

func TestTranslateRejects(t *testing.T) {
	tests := []struct {
		name string
		edit func(r *model.Release, o *Options)
		want string
	}{
		{"invalid release", func(r *model.Release, _ *Options) { r.CanaryWeight = 101 }, "canaryWeight 101"},
		{"unknown source kind", func(_ *model.Release, o *Options) { o.Source.Kind = "REST" }, `source.kind "REST"`},
		{"google_grpc without target", func(_ *model.Release, o *Options) { o.Source.Kind = SourceGoogleGRPC }, "targetURI is required"},
		{"two root CAs", func(_ *model.Release, o *Options) {
			o.Source = ConfigSource{Kind: SourceGoogleGRPC, TargetURI: "serin:18000", RootCA: "pem", RootCAFile: "/ca.crt"}
		}, "not both"},
		{"client certificate without key", func(_ *model.Release, o *Options) {
			o.Source = ConfigSource{Kind: SourceGoogleGRPC, TargetURI: "serin:18000", RootCAFile: "/ca.crt", ClientCertFile: "/cert.pem"}
		}, "go together"},
		{"client certificate without TLS", func(_ *model.Release, o *Options) {
			o.Source = ConfigSource{Kind: SourceGoogleGRPC, TargetURI: "serin:18000", ClientCertFile: "/cert.pem", ClientKeyFile: "/key.pem"}
		}, "needs rootCA"},
		{"negative timeout", func(_ *model.Release, o *Options) { o.InitialFetchTimeout = -1 }, "negative"},
		{"bad listen address", func(_ *model.Release, o *Options) { o.ListenAddress = "localhost" }, "listenAddress"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, o := goodRelease(), Options{}
			tt.edit(r, &o)
			_, err := Translate(r, o)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "test/podinfo/9898") {
				t.Fatalf("want an error about %q naming the release, got %v", tt.want, err)
			}
		})
	}
}

// TestTranslateLeavesInputAlone: endpoints are sorted on a copy.
func TestTranslateLeavesInputAlone(t *testing.T) {
	r := goodRelease()
	r.Stable.Endpoints = []model.Endpoint{{IP: "10.0.0.9", Port: 1, Ready: true}, {IP: "10.0.0.1", Port: 1, Ready: true}}
	before := slices.Clone(r.Stable.Endpoints)
	if _, err := Translate(r, Options{}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(before, r.Stable.Endpoints) {
		t.Fatalf("Translate reordered the release's endpoints: %v", r.Stable.Endpoints)
	}
}

// TestCookieMatch checks the sticky-session regex the way Envoy and grpc-go
// apply it: a full match of the whole Cookie header.
func TestCookieMatch(t *testing.T) {
	rm := cookieMatch("serin-session", "5f8d.c4")
	//lint:ignore SA1019 serin spells header conditions in the fields every xDS client reads
	re := regexp.MustCompile("^(?:" + rm.GetHeaders()[0].GetSafeRegexMatch().GetRegex() + ")$")
	for header, want := range map[string]bool{
		"serin-session=5f8d.c4":                true,
		"a=1; serin-session=5f8d.c4":           true,
		"serin-session=5f8d.c4; b=2":           true,
		"a=1;serin-session=5f8d.c4;b=2":        true,
		"a=1; serin-session=5f8d.c4 ; b=2":     true,
		"serin-session=5f8dxc4":                false, // the dot is literal
		"serin-session=5f8d.c45":               false,
		"xserin-session=5f8d.c4":               false,
		"a=serin-session=5f8d.c4":              false,
		"other=1; serin-session=6b7c9d8f5":     false,
		"serin-session=5f8d.c4x; serin-other=": false,
	} {
		if got := re.MatchString(header); got != want {
			t.Errorf("cookie %q: match %v, want %v", header, got, want)
		}
	}
}

func TestHeaderValuesAreLiteral(t *testing.T) {
	opts := headerOptions(map[string]string{"x-b": "100%", "x-a": "%REQ(:path)%"})
	if len(opts) != 2 || opts[0].GetHeader().GetKey() != "x-a" {
		t.Fatalf("want two headers sorted by name, got %v", opts)
	}
	if v := opts[0].GetHeader().GetValue(); v != "%%REQ(:path)%%" {
		t.Errorf("a formatter command in a user value must be escaped, got %q", v)
	}
	if v := opts[1].GetHeader().GetValue(); v != "100%%" {
		t.Errorf("got %q", v)
	}
}

// BenchmarkTranslate translates the all-features golden case: 10 stable
// and 2 canary endpoints, A/B, session affinity, mirror, retries, timeout,
// rewrite, headers, Istio mTLS, load reporting and a socket listener —
// including Validate, which Translate always runs.
func BenchmarkTranslate(b *testing.B) {
	c := readCase(b, filepath.Join("testdata", "in", "all-features.yaml"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Translate(&c.Release, c.Options); err != nil {
			b.Fatal(err)
		}
	}
}
