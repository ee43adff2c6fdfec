package rollout

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/yaml"

	"github.com/serin-dev/serin/api/v1alpha1"
)

const userScaledObject = `
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: podinfo, namespace: test, labels: {team: a}}
spec:
  scaleTargetRef: {name: podinfo}
  minReplicaCount: 2
  maxReplicaCount: 8
  pollingInterval: 15
  advanced:
    horizontalPodAutoscalerConfig: {name: podinfo-hpa}
  triggers:
  - type: prometheus
    metadata: {serverAddress: "http://prometheus:9090", threshold: "10", query: "sum(rate(http_requests_total{app=\"podinfo\"}[1m]))"}
status:
  hpaName: podinfo-hpa
`

func scaledObjectFixture(t *testing.T) *unstructured.Unstructured {
	t.Helper()
	j, err := yaml.YAMLToJSON([]byte(userScaledObject))
	if err != nil {
		t.Fatal(err)
	}
	so := &unstructured.Unstructured{}
	if err := so.UnmarshalJSON(j); err != nil {
		t.Fatal(err)
	}
	return so
}

func TestBuildScaledObjectCopy(t *testing.T) {
	so := scaledObjectFixture(t)
	owner := metav1.OwnerReference{APIVersion: "serin.dev/v1alpha1", Kind: "Canary", Name: "podinfo", UID: "u1", Controller: ptr.To(true)}
	cp, err := BuildScaledObjectCopy(so, owner)
	if err != nil {
		t.Fatal(err)
	}
	if cp.GetName() != "podinfo-canary" || cp.GetNamespace() != "test" || cp.GroupVersionKind() != ScaledObjectGVK ||
		cp.GetLabels()[v1alpha1.LabelManagedBy] != v1alpha1.ManagedByValue || !equality.Semantic.DeepEqual(cp.GetOwnerReferences(), []metav1.OwnerReference{owner}) {
		t.Fatalf("copy metadata: %+v", cp.Object["metadata"])
	}
	for path, want := range map[string]any{
		"spec.scaleTargetRef.name": "podinfo-canary", "spec.advanced.horizontalPodAutoscalerConfig.name": "podinfo-hpa-canary",
		"spec.minReplicaCount": int64(2), "spec.maxReplicaCount": int64(8), "spec.pollingInterval": int64(15),
	} {
		got, _, _ := unstructured.NestedFieldNoCopy(cp.Object, strings.Split(path, ".")...)
		if got != want {
			t.Errorf("%s = %v (%T), want %v", path, got, got, want)
		}
	}
	triggers, _, _ := unstructured.NestedSlice(cp.Object, "spec", "triggers")
	if len(triggers) != 1 || triggers[0].(map[string]any)["type"] != "prometheus" {
		t.Errorf("triggers: %v", triggers)
	}
	if _, ok := cp.Object["status"]; ok {
		t.Error("status copied")
	}
	// The user's object is left as it was.
	if name, _, _ := unstructured.NestedString(so.Object, "spec", "scaleTargetRef", "name"); name != "podinfo" {
		t.Errorf("the user's ScaledObject changed: %s", name)
	}
	if _, err := BuildScaledObjectCopy(&unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{}}}, owner); err == nil {
		t.Error("a ScaledObject without scaleTargetRef.name was copied")
	}
}

// kedaReconciler is a Reconciler on a fake client; withCRD says whether
// the API server knows KEDA's ScaledObject.
func kedaReconciler(t *testing.T, withCRD bool, objs ...client.Object) (*Reconciler, *v1alpha1.Canary) {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	mapper := apimeta.NewDefaultRESTMapper(nil)
	for gvk := range s.AllKnownTypes() {
		mapper.Add(gvk, apimeta.RESTScopeNamespace)
	}
	if withCRD {
		mapper.Add(ScaledObjectGVK, apimeta.RESTScopeNamespace)
	}
	c := &v1alpha1.Canary{ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: "test", UID: "canary-uid"}}
	cl := fake.NewClientBuilder().WithScheme(s).WithRESTMapper(mapper).WithObjects(append(objs, c)...).Build()
	return &Reconciler{Client: cl}, c
}

// TestScaledObjectCopyLifecycle: with KEDA's CRD, the canary copy gets a
// copy of the ScaledObject, put right when it drifts, and deleted with the
// copy; without the CRD the copy runs unscaled and nothing fails.
func TestScaledObjectCopyLifecycle(t *testing.T) {
	ctx := context.Background()
	spec := servicesSpec()
	spec.AutoscalerRef = &v1alpha1.AutoscalerReference{APIVersion: "keda.sh/v1alpha1", Kind: "ScaledObject", Name: "podinfo"}
	target := servicesTarget()
	rev := v1alpha1.TemplateHash(&target.Spec.Template)
	getCopy := func(r *Reconciler) *unstructured.Unstructured {
		so := &unstructured.Unstructured{}
		so.SetGroupVersionKind(ScaledObjectGVK)
		if err := r.Client.Get(ctx, types.NamespacedName{Namespace: "test", Name: "podinfo-canary"}, so); err != nil {
			return nil
		}
		return so
	}

	r, c := kedaReconciler(t, true, scaledObjectFixture(t), target)
	if err := r.do(ctx, c, spec, target, EnsureCopy{Revision: rev, Replicas: 2}); err != nil {
		t.Fatal(err)
	}
	cp := getCopy(r)
	if cp == nil || !metav1.IsControlledBy(cp, c) {
		t.Fatalf("no ScaledObject copy owned by the Canary: %+v", cp)
	}
	_ = unstructured.SetNestedField(cp.Object, int64(1), "spec", "maxReplicaCount")
	if err := r.Client.Update(ctx, cp); err != nil {
		t.Fatal(err)
	}
	if err := r.do(ctx, c, spec, target, EnsureCopy{Revision: rev, Replicas: 2}); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := unstructured.NestedInt64(getCopy(r).Object, "spec", "maxReplicaCount"); got != 8 {
		t.Errorf("drifted copy not put right: maxReplicaCount %d", got)
	}
	if err := r.do(ctx, c, spec, target, DeleteCopy{}); err != nil {
		t.Fatal(err)
	}
	if getCopy(r) != nil {
		t.Fatal("ScaledObject copy left after DeleteCopy")
	}

	// No CRD: the copy is made, no ScaledObject is, and deletion passes.
	r, c = kedaReconciler(t, false, target)
	if err := r.do(ctx, c, spec, target, EnsureCopy{Revision: rev, Replicas: 2}); err != nil {
		t.Fatalf("without KEDA's CRD: %v", err)
	}
	if d, err := r.deployment(ctx, "test", "podinfo-canary"); err != nil || d == nil {
		t.Fatalf("canary copy without KEDA's CRD: %v %v", d, err)
	}
	if err := r.do(ctx, c, spec, target, DeleteCopy{}); err != nil {
		t.Fatalf("delete without KEDA's CRD: %v", err)
	}
}
