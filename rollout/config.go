package rollout

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// The reconciler's side of config releases (see step_config.go): reading
// what the tracked objects hold, taking immutable snapshots of it, and
// writing the template's config annotation. Object content is read
// straight from the API server, only when an object's resourceVersion in
// the metadata cache moved: serin caches no ConfigMap or Secret content.

// configIndex indexes opted-in Deployments by the config objects their
// templates reference ("configmap/<name>").
const configIndex = "serin.configRefs"

// configGVK is the kind of a tracked object.
func configGVK(k v1alpha1.ConfigKind) schema.GroupVersionKind {
	if k == v1alpha1.KindSecret {
		return corev1.SchemeGroupVersion.WithKind("Secret")
	}
	return corev1.SchemeGroupVersion.WithKind("ConfigMap")
}

// configHashes remembers the content revision of each object at a
// resourceVersion, so unchanged objects are not read again.
type configHashes struct {
	mu sync.Mutex
	m  map[string][2]string // ns/kind/name -> resourceVersion, hash
}

func (h *configHashes) get(key, rv string) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e, ok := h.m[key]
	return e[1], ok && e[0] == rv
}

func (h *configHashes) put(key, rv, hash string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[string][2]string{}
	}
	h.m[key] = [2]string{rv, hash}
}

// observeConfig reads what the objects the template references hold now.
func (r *Reconciler) observeConfig(ctx context.Context, target *appsv1.Deployment) Config {
	if !r.TrackConfig || target == nil {
		return Config{}
	}
	var tracked []v1alpha1.ConfigRevision
	for _, ref := range v1alpha1.ConfigRefs(&target.Spec.Template.Spec) {
		meta := &metav1.PartialObjectMetadata{}
		meta.SetGroupVersionKind(configGVK(ref.Kind))
		err := r.Client.Get(ctx, types.NamespacedName{Namespace: target.Namespace, Name: ref.Name}, meta)
		switch {
		case apierrors.IsNotFound(err):
			// Missing (optional, or not made yet): nothing to snapshot;
			// its creation is a change that starts a release.
			continue
		case err != nil:
			logr.FromContextOrDiscard(ctx).Error(err, "read tracked config", "object", ref.String())
			return Config{}
		case v1alpha1.TrackingDisabled(meta.Annotations) || meta.Labels[v1alpha1.LabelSnapshotOf] != "":
			continue
		}
		hash, err := r.configHash(ctx, target.Namespace, ref, meta.ResourceVersion)
		if apierrors.IsNotFound(err) || errors.Is(err, errUntracked) {
			continue
		}
		if err != nil {
			logr.FromContextOrDiscard(ctx).Error(err, "read tracked config", "object", ref.String())
			return Config{}
		}
		tracked = append(tracked, v1alpha1.ConfigRevision{ConfigRef: ref, Hash: hash})
	}
	return Config{Known: true, Tracked: tracked}
}

// configHash is the content revision of an object at resourceVersion rv.
func (r *Reconciler) configHash(ctx context.Context, ns string, ref v1alpha1.ConfigRef, rv string) (string, error) {
	key := ns + "/" + ref.String()
	if h, ok := r.hashes.get(key, rv); ok {
		if h == "" {
			return "", errUntracked
		}
		return h, nil
	}
	obj, hash, err := r.readConfig(ctx, ns, ref)
	if errors.Is(err, errUntracked) {
		r.hashes.put(key, rv, "")
	}
	if err != nil {
		return "", err
	}
	r.hashes.put(key, obj.GetResourceVersion(), hash)
	return hash, nil
}

// errUntracked: the object is one the control plane manages (a service
// account token Secret), which a copy could not stand in for.
var errUntracked = errors.New("not tracked")

// readConfig reads an object's content from the API server.
func (r *Reconciler) readConfig(ctx context.Context, ns string, ref v1alpha1.ConfigRef) (client.Object, string, error) {
	key := types.NamespacedName{Namespace: ns, Name: ref.Name}
	if ref.Kind == v1alpha1.KindSecret {
		var s corev1.Secret
		if err := r.APIReader.Get(ctx, key, &s); err != nil {
			return nil, "", err
		}
		if s.Type == corev1.SecretTypeServiceAccountToken {
			return nil, "", errUntracked
		}
		return &s, v1alpha1.SecretHash(s.Type, s.Data), nil
	}
	var cm corev1.ConfigMap
	if err := r.APIReader.Get(ctx, key, &cm); err != nil {
		return nil, "", err
	}
	return &cm, v1alpha1.ConfigMapHash(cm.Data, cm.BinaryData), nil
}

// setConfig carries SetConfig out: snapshots first, then the annotation,
// with the hold written in the same request (so the new revision is held
// even when the hold webhook is down).
func (r *Reconciler) setConfig(ctx context.Context, c *v1alpha1.Canary, target *appsv1.Deployment, a SetConfig) error {
	revs, err := v1alpha1.ParseConfig(a.Value)
	if err != nil {
		return err
	}
	for _, rev := range revs {
		if err := r.ensureSnapshot(ctx, c, target.Namespace, rev); err != nil {
			return fmt.Errorf("snapshot of %s: %w", rev.String(), err)
		}
	}
	tmpl := withoutConfig(&target.Spec.Template)
	var value any
	if a.Value != "" {
		value = a.Value
		if tmpl.Annotations == nil {
			tmpl.Annotations = map[string]string{}
		}
		tmpl.Annotations[v1alpha1.AnnotationConfig] = a.Value
	}
	hash := v1alpha1.TemplateHash(tmpl)
	ann := map[string]any{}
	spec := map[string]any{"template": map[string]any{"metadata": map[string]any{"annotations": map[string]any{v1alpha1.AnnotationConfig: value}}}}
	switch {
	case a.Adopt || hash == a.Stable:
		ann[v1alpha1.AnnotationCandidateRevision], ann[v1alpha1.AnnotationStableRevision] = hash, hash
	case a.Stable != "":
		ann[v1alpha1.AnnotationCandidateRevision], ann[v1alpha1.AnnotationStableRevision] = hash, a.Stable
		spec["paused"] = true
	}
	// The resourceVersion makes the write fail rather than record a hash
	// of a template that changed meanwhile.
	return r.patch(ctx, target, map[string]any{
		"metadata": map[string]any{"resourceVersion": target.ResourceVersion, "annotations": ann},
		"spec":     spec,
	})
}

// ensureSnapshot makes the immutable snapshot of one content revision,
// owned by the Canary (several Canaries may share one).
func (r *Reconciler) ensureSnapshot(ctx context.Context, c *v1alpha1.Canary, ns string, rev v1alpha1.ConfigRevision) error {
	name := v1alpha1.SnapshotName(rev.Name, rev.Hash)
	owner := metav1.OwnerReference{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Canary", Name: c.Name, UID: c.UID}
	meta := metav1.ObjectMeta{Name: name, Namespace: ns, OwnerReferences: []metav1.OwnerReference{owner},
		Labels: map[string]string{v1alpha1.LabelManagedBy: v1alpha1.ManagedByValue, v1alpha1.LabelSnapshotOf: rev.Name}}
	if r.snapshotExists(ctx, c, rev, name) == nil {
		return nil
	}
	src, hash, err := r.readConfig(ctx, ns, rev.ConfigRef)
	if err != nil {
		return err
	}
	if hash != rev.Hash {
		return fmt.Errorf("its content changed to revision %s before the snapshot of %s was taken", hash, rev.Hash)
	}
	var snap client.Object
	switch s := src.(type) {
	case *corev1.Secret:
		snap = &corev1.Secret{ObjectMeta: meta, Type: s.Type, Data: s.Data, Immutable: ptr.To(true)}
	case *corev1.ConfigMap:
		snap = &corev1.ConfigMap{ObjectMeta: meta, Data: s.Data, BinaryData: s.BinaryData, Immutable: ptr.To(true)}
	}
	if err := r.Client.Create(ctx, snap, fieldOwner); apierrors.IsAlreadyExists(err) {
		return r.snapshotExists(ctx, c, rev, name)
	} else if err != nil {
		return err
	}
	logr.FromContextOrDiscard(ctx).V(1).Info("config snapshot", "object", rev.String(), "snapshot", name)
	return nil
}

// snapshotExists checks that the object called name is serin's snapshot
// of rev, and that the Canary is among its owners; nil when it is.
func (r *Reconciler) snapshotExists(ctx context.Context, c *v1alpha1.Canary, rev v1alpha1.ConfigRevision, name string) error {
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(configGVK(rev.Kind))
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: name}, meta); err != nil {
		return err
	}
	if meta.Labels[v1alpha1.LabelSnapshotOf] != rev.Name || meta.Labels[v1alpha1.LabelManagedBy] != v1alpha1.ManagedByValue {
		return fmt.Errorf("%s %s exists and is not serin's snapshot of %s", rev.Kind, name, rev.Name)
	}
	if slices.ContainsFunc(meta.OwnerReferences, func(o metav1.OwnerReference) bool { return o.UID == c.UID }) {
		return nil
	}
	refs := append(meta.OwnerReferences, metav1.OwnerReference{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Canary", Name: c.Name, UID: c.UID})
	return r.patch(ctx, meta, map[string]any{"metadata": map[string]any{"resourceVersion": meta.ResourceVersion, "ownerReferences": refs}})
}

// pruneSnapshots lets go of the Canary's snapshots no revision in keep
// names: deleted when the Canary is their only owner. It runs between
// releases, once the Deployment rolled out, so no pod reads them.
func (r *Reconciler) pruneSnapshots(ctx context.Context, c *v1alpha1.Canary, keep ...string) error {
	want := map[string]bool{}
	for _, v := range keep {
		revs, _ := v1alpha1.ParseConfig(v)
		for _, rev := range revs {
			want[string(rev.Kind)+"/"+v1alpha1.SnapshotName(rev.Name, rev.Hash)] = true
		}
	}
	for _, kind := range []v1alpha1.ConfigKind{v1alpha1.KindConfigMap, v1alpha1.KindSecret} {
		var list metav1.PartialObjectMetadataList
		list.SetGroupVersionKind(configGVK(kind))
		sel := client.HasLabels{v1alpha1.LabelSnapshotOf}
		if err := r.Client.List(ctx, &list, client.InNamespace(c.Namespace), sel); err != nil {
			return err
		}
		for i := range list.Items {
			if err := r.letGo(ctx, c, &list.Items[i], want[string(kind)+"/"+list.Items[i].Name]); err != nil {
				return err
			}
		}
	}
	return nil
}

// letGo removes the Canary from a snapshot's owners unless it is kept:
// the last owner deletes it.
func (r *Reconciler) letGo(ctx context.Context, c *v1alpha1.Canary, snap *metav1.PartialObjectMetadata, keep bool) error {
	i := slices.IndexFunc(snap.OwnerReferences, func(o metav1.OwnerReference) bool { return o.UID == c.UID })
	if keep || i < 0 {
		return nil
	}
	if len(snap.OwnerReferences) == 1 {
		err := r.Client.Delete(ctx, snap, client.Preconditions{UID: &snap.UID, ResourceVersion: &snap.ResourceVersion})
		return client.IgnoreNotFound(err)
	}
	refs := slices.Delete(slices.Clone(snap.OwnerReferences), i, i+1)
	return r.patch(ctx, snap, map[string]any{"metadata": map[string]any{"resourceVersion": snap.ResourceVersion, "ownerReferences": refs}})
}

// repairPeriod is how often the pods of a Deployment whose config is
// tracked are checked for pods the pod webhook missed.
const repairPeriod = 30 * time.Second

// repairPods deletes, one at a time and only while the Deployment is
// fully available, a pod of the Deployment or its copy that was created
// without the pod webhook (serin down; the webhook fails open): such a pod
// reads the tracked objects themselves, so a change of their content would
// reach it. Its ReplicaSet makes it again, through the webhook.
func (r *Reconciler) repairPods(ctx context.Context, c *v1alpha1.Canary, target *appsv1.Deployment, now time.Time) error {
	if target == nil || target.Spec.Template.Annotations[v1alpha1.AnnotationConfig] == "" || target.Spec.Selector == nil {
		return nil
	}
	key := c.Namespace + "/" + c.Name
	r.repairMu.Lock()
	due := now.Sub(r.repaired[key]) >= repairPeriod
	if due {
		if r.repaired == nil {
			r.repaired = map[string]time.Time{}
		}
		r.repaired[key] = now
	}
	r.repairMu.Unlock()
	st := target.Status
	if !due || st.AvailableReplicas < st.Replicas || st.UnavailableReplicas > 0 {
		return nil
	}
	sel, err := metav1.LabelSelectorAsSelector(target.Spec.Selector)
	if err != nil {
		return err
	}
	var pods metav1.PartialObjectMetadataList
	pods.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PodList"))
	if err := r.APIReader.List(ctx, &pods, client.InNamespace(c.Namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return err
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Annotations[v1alpha1.AnnotationConfig] == "" || p.Labels[v1alpha1.LabelConfigSnapshots] != "" || p.DeletionTimestamp != nil {
			continue
		}
		r.event(ctx, c, nil, Event{Warning: true, Reason: "ConfigWebhookMissed", Action: "Repair",
			Message: fmt.Sprintf("Pod %s was created without serin's pod webhook and reads its ConfigMaps and Secrets directly; deleting it so that it is made again on snapshots", p.Name)})
		return client.IgnoreNotFound(r.Client.Delete(ctx, p, client.Preconditions{UID: &p.UID}))
	}
	return nil
}

// configRefsOf is configIndex's value for a Deployment.
func configRefsOf(o client.Object) []string {
	d := o.(*appsv1.Deployment)
	var out []string
	for _, ref := range v1alpha1.ConfigRefs(&d.Spec.Template.Spec) {
		out = append(out, ref.String())
	}
	return out
}

// deploymentsOfConfig maps a ConfigMap or Secret to the Canaries of the
// Deployments that reference it.
func (r *Reconciler) deploymentsOfConfig(kind v1alpha1.ConfigKind) func(context.Context, client.Object) []reconcile.Request {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		if o.GetLabels()[v1alpha1.LabelSnapshotOf] != "" {
			return nil
		}
		var list appsv1.DeploymentList
		ref := v1alpha1.ConfigRef{Kind: kind, Name: o.GetName()}.String()
		if err := r.Client.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{configIndex: ref}); err != nil {
			logr.FromContextOrDiscard(ctx).Error(err, "list deployments of config", "object", ref)
			return nil
		}
		var reqs []reconcile.Request
		for i := range list.Items {
			reqs = append(reqs, r.canariesOfDeployment(ctx, &list.Items[i])...)
		}
		return reqs
	}
}

// tidyConfig runs after a step: between releases, once the Deployment
// rolled out and no copy is left, it lets go of snapshots no revision
// needs; and it repairs pods the pod webhook missed.
func (r *Reconciler) tidyConfig(ctx context.Context, c *v1alpha1.Canary, target, copyObj *appsv1.Deployment, now time.Time) error {
	if !r.TrackConfig || target == nil || !c.DeletionTimestamp.IsZero() {
		return nil
	}
	switch c.Status.Phase {
	case v1alpha1.PhaseInitialized, v1alpha1.PhaseSucceeded:
		if copyObj == nil && ObserveTarget(target).RolledOut {
			if err := r.pruneSnapshots(ctx, c, target.Spec.Template.Annotations[v1alpha1.AnnotationConfig], c.Status.StableConfig); err != nil {
				return fmt.Errorf("prune config snapshots: %w", err)
			}
		}
	}
	if err := r.repairPods(ctx, c, target, now); err != nil {
		return fmt.Errorf("repair pods: %w", err)
	}
	return nil
}
