package rollout

// Permissions of serin's controller in a cluster-wide install with Istio
// off (the chart's defaults), for controller-gen's RBAC output
// (manifests/rbac) and mirrored by the Helm chart. Cluster-wide: what the
// release engine reads, creates and deletes. Not here, because they depend
// on the chart's mode: Secrets (per namespace, by name), EnvoyFilters (Istio
// on), the Istio bootstrap ConfigMap (by name, in opted-in namespaces) and a
// namespaced install's Roles; charts/serin/README.md lists each mode.
//
// +kubebuilder:rbac:groups=serin.dev,resources=canaries;metrictemplates;alertproviders,verbs=get;list;watch
// +kubebuilder:rbac:groups=serin.dev,resources=canaries,verbs=create;update;patch;delete
// +kubebuilder:rbac:groups=serin.dev,resources=canaries/status;canaries/finalizers,verbs=get;update;patch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=namespaces;pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=configmaps;secrets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=pods,verbs=delete
// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=keda.sh,resources=scaledobjects,verbs=get;create;update;delete
// +kubebuilder:rbac:groups=networking.istio.io,resources=gateways;virtualservices,verbs=get;list;watch
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=gateways,verbs=get;list;watch
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=httproutes;grpcroutes;tcproutes,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=split.smi-spec.io,resources=trafficsplits,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="";events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingwebhookconfigurations;validatingwebhookconfigurations,resourceNames=serin,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch;delete,namespace=serin-system
// +kubebuilder:rbac:groups="",resources=secrets,resourceNames=serin-webhook-tls,verbs=get;list;watch;update,namespace=serin-system
