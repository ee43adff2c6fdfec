package rollout

import (
	"context"
	"fmt"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// TestBuildServicesFlaggerFields: the apex Service when serin makes it,
// service.portDiscovery, headless and trafficDistribution.
func TestBuildServicesFlaggerFields(t *testing.T) {
	target := servicesTarget()
	target.Spec.Template.Spec.Containers = []corev1.Container{
		{Name: "app", Ports: []corev1.ContainerPort{
			{Name: "http", ContainerPort: 9898}, {Name: "http-metrics", ContainerPort: 9797}, {ContainerPort: 9999, Protocol: corev1.ProtocolUDP},
		}},
		{Name: "sidecar", Ports: []corev1.ContainerPort{{Name: "http-metrics", ContainerPort: 9090}, {ContainerPort: 9797}}},
	}
	spec := servicesSpec()
	spec.Service.Apex = &v1alpha1.CustomMetadata{Labels: map[string]string{"tier": "web"}, Annotations: map[string]string{"example.com/apex": "yes"}}
	spec.Service.PortDiscovery, spec.Service.Headless = true, true
	spec.Service.TrafficDistribution = "PreferClose"
	owner := metav1.OwnerReference{APIVersion: "serin.dev/v1alpha1", Kind: "Canary", Name: "podinfo", UID: "u1", Controller: ptr.To(true)}
	svcs := BuildServices(target, spec, owner, true)
	if len(svcs) != 3 || svcs[0].Name != "podinfo" || svcs[1].Name != "podinfo-canary" || svcs[2].Name != "podinfo-primary" {
		t.Fatalf("services: %v", names(svcs))
	}
	apex := svcs[0]
	if apex.Spec.Selector["app"] != "podinfo" || len(apex.Spec.Selector) != 1 || apex.Spec.ClusterIP != "" ||
		apex.Labels["tier"] != "web" || apex.Annotations["example.com/apex"] != "yes" || apex.Labels[v1alpha1.LabelTrack] != "" ||
		apex.Labels[v1alpha1.LabelManagedBy] != v1alpha1.ManagedByValue || apex.OwnerReferences[0] != owner {
		t.Errorf("apex: %+v", apex)
	}
	want := []string{"grpc/TCP/80->http", "http-metrics/TCP/9797->9797", "udp-9999/UDP/9999->9999", "tcp-9090/TCP/9090->9090"}
	for _, s := range svcs {
		if got := portStrings(s.Spec.Ports); !slices.Equal(got, want) {
			t.Errorf("%s ports %v, want %v", s.Name, got, want)
		}
		if s.Spec.TrafficDistribution == nil || *s.Spec.TrafficDistribution != "PreferClose" {
			t.Errorf("%s trafficDistribution %v", s.Name, s.Spec.TrafficDistribution)
		}
	}
	for _, s := range svcs[1:] {
		if s.Spec.ClusterIP != corev1.ClusterIPNone {
			t.Errorf("%s not headless", s.Name)
		}
	}

	// Without portDiscovery only the service port; a numeric targetPort
	// is the main port's container port.
	spec.Service.PortDiscovery = false
	if got := portStrings(BuildServices(target, spec, owner, false)[0].Spec.Ports); !slices.Equal(got, []string{"grpc/TCP/80->http"}) {
		t.Errorf("ports without discovery: %v", got)
	}
	spec.Service.PortDiscovery, spec.Service.TargetPort = true, intstr.FromInt32(9797)
	if got := portStrings(BuildServices(target, spec, owner, false)[0].Spec.Ports); !slices.Equal(got,
		[]string{"grpc/TCP/80->9797", "http/TCP/9898->9898", "udp-9999/UDP/9999->9999", "http-metrics/TCP/9090->9090"}) {
		t.Errorf("ports with a numeric target: %v", got)
	}
}

// TestEnsureServicesApex: serin makes the apex Service when none exists,
// owns and updates it, never touches a user's, keeps the keys
// unmanagedMetadata lists, and remakes a Service that turns headless.
func TestEnsureServicesApex(t *testing.T) {
	ctx := context.Background()
	r, c := fakeReconciler(t)
	target, spec := servicesTarget(), servicesSpec()
	spec.Service.UnmanagedMetadata = &v1alpha1.UnmanagedMetadata{Labels: []string{"mesh", v1alpha1.LabelTrack}, Annotations: []string{"example.com/by-others"}}
	if err := r.ensureServices(ctx, c, spec, target); err != nil {
		t.Fatal(err)
	}
	apex := getService(t, r, "podinfo")
	if apex == nil || !metav1.IsControlledBy(apex, c) || apex.Spec.Selector["app"] != "podinfo" {
		t.Fatalf("apex Service not made: %+v", apex)
	}

	// Others' keys on serin's Services stay, listed ones only; serin's
	// own labels cannot be claimed.
	primary := getService(t, r, "podinfo-primary")
	primary.Labels["mesh"], primary.Labels["other"], primary.Labels[v1alpha1.LabelTrack] = "on", "x", "mine"
	primary.Annotations = map[string]string{"example.com/by-others": "1", "example.com/stray": "2"}
	if err := r.Client.Update(ctx, primary); err != nil {
		t.Fatal(err)
	}
	if err := r.ensureServices(ctx, c, spec, target); err != nil {
		t.Fatal(err)
	}
	got := getService(t, r, "podinfo-primary")
	if got.Labels["mesh"] != "on" || got.Labels["other"] != "" || got.Labels[v1alpha1.LabelTrack] != "stable" ||
		got.Annotations["example.com/by-others"] != "1" || got.Annotations["example.com/stray"] != "" {
		t.Errorf("unmanaged metadata: %v %v", got.Labels, got.Annotations)
	}

	// Headless: the track Services are made again without a cluster IP.
	spec.Service.Headless = true
	if err := r.ensureServices(ctx, c, spec, target); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"podinfo-canary", "podinfo-primary"} {
		if got := getService(t, r, name); got == nil || got.Spec.ClusterIP != corev1.ClusterIPNone {
			t.Errorf("%s not headless: %+v", name, got)
		}
	}

	// A user's own Service of that name is never touched, and serin's
	// apex goes when the user's takes its place.
	user := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "test", Labels: map[string]string{"owner": "user"}},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}}}
	if err := r.Client.Create(ctx, user); err != nil {
		t.Fatal(err)
	}
	spec.Service.Name = "web"
	if err := r.ensureServices(ctx, c, spec, target); err != nil {
		t.Fatal(err)
	}
	got = getService(t, r, "web")
	if len(got.OwnerReferences) != 0 || got.Labels["owner"] != "user" || got.Spec.Selector["app"] != "web" || len(got.Labels) != 1 {
		t.Errorf("user's Service touched: %+v", got)
	}
	if getService(t, r, "podinfo") != nil || getService(t, r, "web-canary") == nil {
		t.Error("old apex left behind, or track Services not made")
	}
}

func names(svcs []*corev1.Service) []string {
	var out []string
	for _, s := range svcs {
		out = append(out, s.Name)
	}
	return out
}

func portStrings(ports []corev1.ServicePort) []string {
	var out []string
	for _, p := range ports {
		out = append(out, p.Name+"/"+string(p.Protocol)+"/"+fmt.Sprint(p.Port)+"->"+ptr.To(p.TargetPort).String())
	}
	return out
}

// TestAppliedByOthers: a Service is someone else's once a manager other
// than serin set a field of its spec; metadata alone does not count.
func TestAppliedByOthers(t *testing.T) {
	entry := func(manager, fields string) metav1.ManagedFieldsEntry {
		f := &metav1.FieldsV1{}
		f.SetRawString(fields)
		return metav1.ManagedFieldsEntry{Manager: manager, Operation: metav1.ManagedFieldsOperationUpdate, FieldsV1: f}
	}
	serins := entry("serin", `{"f:metadata":{"f:labels":{}},"f:spec":{"f:ports":{}}}`)
	for _, tt := range []struct {
		name    string
		entries []metav1.ManagedFieldsEntry
		want    bool
	}{
		{"serin's only", []metav1.ManagedFieldsEntry{serins}, false},
		{"someone labelled it", []metav1.ManagedFieldsEntry{serins, entry("kubectl-label", `{"f:metadata":{"f:labels":{"f:mesh":{}}}}`)}, false},
		{"someone applied a spec", []metav1.ManagedFieldsEntry{serins, entry("kubectl-client-side-apply", `{"f:spec":{"f:ports":{}}}`)}, true},
	} {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{ManagedFields: tt.entries}}
		if got := appliedByOthers(svc); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}
