package alerts

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/internal/egress"
)

// inbox is a real webhook receiver that keeps every JSON body.
type inbox struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []map[string]any
	status int
}

func newInbox(t *testing.T) *inbox {
	in := &inbox{status: http.StatusOK}
	in.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var v map[string]any
		if r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(b, &v) != nil {
			http.Error(w, "bad payload", http.StatusBadRequest)
			return
		}
		in.mu.Lock()
		in.bodies = append(in.bodies, v)
		code := in.status
		in.mu.Unlock()
		w.WriteHeader(code)
		fmt.Fprint(w, "no_service")
	}))
	t.Cleanup(in.Close)
	return in
}

func (in *inbox) received() []map[string]any {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]map[string]any(nil), in.bodies...)
}

// get walks a decoded JSON value: get(v, "attachments", 0, "color").
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			a, ok := v.([]any)
			if !ok || k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

var msg = Message{Name: "podinfo", Namespace: "test", Phase: v1alpha1.PhaseFailed, Severity: v1alpha1.SeverityError,
	Text: "Canary analysis failed, podinfo.test rolled back", Fields: []Field{{"Target", "Deployment/podinfo.test"}, {"Failed checks", "5"}},
	Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}

func provider(typ v1alpha1.AlertProviderType, address string) *v1alpha1.AlertProvider {
	return &v1alpha1.AlertProvider{ObjectMeta: metav1.ObjectMeta{Name: string(typ), Namespace: "flagger"},
		Spec: v1alpha1.AlertProviderSpec{Type: typ, Address: address, Channel: "on-call", Username: "deploys"}}
}

func TestPayloadShapes(t *testing.T) {
	in := newInbox(t)
	n := &Notifier{Egress: loopback}
	for _, typ := range []v1alpha1.AlertProviderType{v1alpha1.AlertSlack, v1alpha1.AlertMSTeams, v1alpha1.AlertDiscord, v1alpha1.AlertGeneric} {
		if err := n.Send(context.Background(), provider(typ, in.URL), msg); err != nil {
			t.Fatalf("Send(%s) = %v", typ, err)
		}
	}
	got := in.received()
	if len(got) != 4 {
		t.Fatalf("received %d payloads", len(got))
	}
	checks := []struct {
		name string
		body map[string]any
		path []any
		want any
	}{
		{"slack channel", got[0], []any{"channel"}, "on-call"},
		{"slack username", got[0], []any{"username"}, "deploys"},
		{"slack color", got[0], []any{"attachments", 0, "color"}, "danger"},
		{"slack author", got[0], []any{"attachments", 0, "author_name"}, "podinfo.test"},
		{"slack text", got[0], []any{"attachments", 0, "text"}, msg.Text},
		{"slack phase field", got[0], []any{"attachments", 0, "fields", 0, "title"}, "Phase"},
		{"slack field value", got[0], []any{"attachments", 0, "fields", 2, "value"}, "5"},
		{"teams type", got[1], []any{"type"}, "message"},
		{"teams content type", got[1], []any{"attachments", 0, "contentType"}, "application/vnd.microsoft.card.adaptive"},
		{"teams card", got[1], []any{"attachments", 0, "content", "type"}, "AdaptiveCard"},
		{"teams title", got[1], []any{"attachments", 0, "content", "body", 0, "text"}, "podinfo.test"},
		{"teams color", got[1], []any{"attachments", 0, "content", "body", 0, "color"}, "Attention"},
		{"teams text", got[1], []any{"attachments", 0, "content", "body", 1, "text"}, msg.Text},
		{"teams fact", got[1], []any{"attachments", 0, "content", "body", 2, "facts", 1, "title"}, "Target"},
		{"discord username", got[2], []any{"username"}, "deploys"},
		{"discord title", got[2], []any{"embeds", 0, "title"}, "podinfo.test"},
		{"discord description", got[2], []any{"embeds", 0, "description"}, msg.Text},
		{"discord color", got[2], []any{"embeds", 0, "color"}, float64(0xE01E5A)},
		{"discord field", got[2], []any{"embeds", 0, "fields", 0, "value"}, "Failed"},
		{"discord timestamp", got[2], []any{"embeds", 0, "timestamp"}, "2026-01-02T03:04:05Z"},
		{"generic name", got[3], []any{"name"}, "podinfo"},
		{"generic phase", got[3], []any{"phase"}, "Failed"},
		{"generic severity", got[3], []any{"severity"}, "error"},
		{"generic message", got[3], []any{"message"}, msg.Text},
		{"generic metadata", got[3], []any{"metadata", "Failed checks"}, "5"},
		{"generic timestamp", got[3], []any{"timestamp"}, "1767323045000"},
	}
	for _, c := range checks {
		if v := get(c.body, c.path...); v != c.want {
			t.Errorf("%s: %v = %#v, want %#v", c.name, c.path, v, c.want)
		}
	}
}

type providers map[string]*v1alpha1.AlertProvider

func (p providers) AlertProvider(_ context.Context, ns, name string) (*v1alpha1.AlertProvider, error) {
	if ap, ok := p[ns+"/"+name]; ok {
		return ap, nil
	}
	return nil, fmt.Errorf("alertprovider %s/%s not found", ns, name)
}

type secrets map[string]map[string][]byte

func (s secrets) Secret(_ context.Context, ns, name string) (map[string][]byte, error) {
	if d, ok := s[ns+"/"+name]; ok {
		return d, nil
	}
	return nil, fmt.Errorf("secret %s/%s not found", ns, name)
}

func TestNotifySeverityAndSecrets(t *testing.T) {
	errInbox, warnInbox, infoInbox := newInbox(t), newInbox(t), newInbox(t)
	onCall := provider(v1alpha1.AlertSlack, "https://ignored.example/")
	onCall.Namespace, onCall.Spec.SecretRef = "flagger", &corev1.LocalObjectReference{Name: "on-call-url"}
	qa := provider(v1alpha1.AlertDiscord, warnInbox.URL)
	qa.Namespace = "test"
	dev := provider(v1alpha1.AlertMSTeams, infoInbox.URL)
	dev.Namespace = "test"
	n := &Notifier{
		Providers: providers{"flagger/on-call": onCall, "test/qa-discord": qa, "test/dev-msteams": dev},
		Secrets:   secrets{"flagger/on-call-url": {SecretAddressKey: []byte(errInbox.URL + "\n")}},
		Egress:    loopback,
	}
	c := &v1alpha1.Canary{ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: "test"}, Spec: v1alpha1.CanarySpec{
		Analysis: &v1alpha1.CanaryAnalysis{Alerts: []v1alpha1.CanaryAlert{
			{Name: "on-call Slack", Severity: v1alpha1.SeverityError, ProviderRef: v1alpha1.CrossNamespaceObjectReference{Name: "on-call", Namespace: "flagger"}},
			{Name: "qa Discord", Severity: v1alpha1.SeverityWarn, ProviderRef: v1alpha1.CrossNamespaceObjectReference{Name: "qa-discord"}},
			{Name: "dev MS Teams", ProviderRef: v1alpha1.CrossNamespaceObjectReference{Name: "dev-msteams"}},
		}}}}
	ctx := context.Background()
	for _, sev := range []v1alpha1.AlertSeverity{v1alpha1.SeverityInfo, v1alpha1.SeverityWarn, v1alpha1.SeverityError, ""} {
		m := msg
		m.Severity = sev
		if err := n.Notify(ctx, c, m); err != nil {
			t.Fatalf("Notify(%s) = %v", sev, err)
		}
	}
	// error gets error; warn gets warn and error; info (default) gets all four.
	if e, w, i := len(errInbox.received()), len(warnInbox.received()), len(infoInbox.received()); e != 1 || w != 2 || i != 4 {
		t.Fatalf("received error=%d warn=%d info=%d; want 1, 2, 4", e, w, i)
	}
}

func TestNotifyErrors(t *testing.T) {
	down := newInbox(t)
	down.status = http.StatusNotFound
	gone := httptest.NewServer(http.NotFoundHandler())
	goneURL := gone.URL + "/services/T000/B000/s3cr3t"
	gone.Close()
	redirect := httptest.NewServer(http.RedirectHandler(down.URL, http.StatusFound))
	defer redirect.Close()
	noKey := provider(v1alpha1.AlertSlack, "")
	noKey.Spec.SecretRef = &corev1.LocalObjectReference{Name: "empty"}
	n := &Notifier{
		Providers: providers{
			"test/down":     provider(v1alpha1.AlertSlack, down.URL),
			"test/gone":     provider(v1alpha1.AlertDiscord, goneURL),
			"test/redirect": provider(v1alpha1.AlertGeneric, redirect.URL),
			"test/no-key":   noKey,
			"test/bad-type": provider("pagerduty", down.URL),
			"test/no-addr":  provider(v1alpha1.AlertGeneric, ""),
		},
		Secrets: secrets{"flagger/empty": {}},
		Egress:  loopback,
	}
	var alerts []v1alpha1.CanaryAlert
	for _, name := range []string{"down", "gone", "redirect", "no-key", "bad-type", "no-addr", "missing"} {
		alerts = append(alerts, v1alpha1.CanaryAlert{Name: "a-" + name, ProviderRef: v1alpha1.CrossNamespaceObjectReference{Name: name}})
	}
	c := &v1alpha1.Canary{ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: "test"},
		Spec: v1alpha1.CanarySpec{Analysis: &v1alpha1.CanaryAnalysis{Alerts: alerts}}}
	err := n.Notify(context.Background(), c, msg)
	if err == nil {
		t.Fatal("Notify() = nil")
	}
	for _, want := range []string{
		"alert a-down: slack provider flagger/slack answered 404: rejected (4xx)",
		"alert a-gone: discord provider flagger/discord: connection failed",
		"alert a-redirect: generic provider flagger/generic: redirect not followed",
		`alert a-no-key: provider flagger/slack secret empty has no "address" key`,
		`alert a-bad-type: alert provider type "pagerduty" is not`,
		"alert a-no-addr: provider flagger/generic has no http(s) webhook address",
		"alert a-missing: provider test/missing: alertprovider test/missing not found",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Notify() error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "no_service") || strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("the webhook URL leaked into the error: %v", err)
	}
	if len(down.received()) != 1 {
		t.Errorf("the redirect was followed: %d deliveries to its target", len(down.received()))
	}
}

func TestAllows(t *testing.T) {
	for _, tt := range []struct {
		min, sev v1alpha1.AlertSeverity
		want     bool
	}{{"", "info", true}, {"info", "error", true}, {"warn", "info", false}, {"warn", "warn", true}, {"error", "warn", false}, {"error", "error", true}, {"warn", "", false}} {
		if got := Allows(tt.min, tt.sev); got != tt.want {
			t.Errorf("Allows(%q, %q) = %v", tt.min, tt.sev, got)
		}
	}
}

// loopback is the egress policy of the tests: their inboxes listen on
// 127.0.0.1, which an admin has to allow.
var loopback, _ = egress.ParseAllow([]string{"127.0.0.0/8"})

// TestEgressGuard: an alert to a refused address is never sent, and the
// error says so by class without the address.
func TestEgressGuard(t *testing.T) {
	in := newInbox(t)
	for _, address := range []string{
		"http://169.254.169.254/latest/meta-data/?token=s3cr3t",
		in.URL + "/s3cr3t", // loopback is refused unless allowed
	} {
		err := (&Notifier{}).Send(context.Background(), provider(v1alpha1.AlertGeneric, address), msg)
		if err == nil || !strings.Contains(err.Error(), "refused: address not allowed") {
			t.Fatalf("Send(%s) = %v, want refused", address, err)
		}
		if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "169.254") || strings.Contains(err.Error(), "127.0.0.1") {
			t.Errorf("the address leaked into the error: %v", err)
		}
	}
	if len(in.received()) != 0 {
		t.Fatal("an alert reached a refused address")
	}
}
