// Package admission owns serin's admission webhooks: the mutating webhook
// that holds each new pod template of a managed Deployment (hold and
// capture, design.md §2), and the validating webhooks that reject bad
// Canaries, MetricTemplates, AlertProviders and serin annotations at
// `kubectl apply`, with a message naming the field.
//
// The Canary check also limits spec.service.hosts to hosts the Canary's
// namespace owns (v1alpha1.HostOwnership, read by HostOwners): without
// it, a Canary could route another team's ingress host to its own pods.
// It reads Services, Namespaces (grants), Gateways, HTTPRoutes, Istio
// Gateways and VirtualServices only when a Canary names hosts, and fails
// closed.
//
// The hold is a JSON patch computed against the raw request, never a
// re-marshalled Go object, so fields the Go types do not know are never
// dropped. It has no side effects: dry-run requests get the same answer.
//
// +kubebuilder:webhook:path=/mutate-apps-v1-deployment,mutating=true,failurePolicy=ignore,sideEffects=None,groups=apps,resources=deployments,verbs=create;update,versions=v1,name=hold.deployments.serin.dev,admissionReviewVersions=v1,timeoutSeconds=3,reinvocationPolicy=IfNeeded
// +kubebuilder:webhook:path=/mutate-v1-pod-config,mutating=true,failurePolicy=ignore,sideEffects=None,groups="",resources=pods,verbs=create,versions=v1,name=config.pods.serin.dev,admissionReviewVersions=v1,timeoutSeconds=3,reinvocationPolicy=IfNeeded
// +kubebuilder:webhook:path=/validate-apps-v1-deployment,mutating=false,failurePolicy=ignore,sideEffects=None,groups=apps,resources=deployments,verbs=create;update,versions=v1,name=deployments.validate.serin.dev,admissionReviewVersions=v1,timeoutSeconds=3
// +kubebuilder:webhook:path=/validate-serin-dev-v1alpha1-canary,mutating=false,failurePolicy=fail,sideEffects=None,groups=serin.dev,resources=canaries,verbs=create;update,versions=v1alpha1,name=canaries.validate.serin.dev,admissionReviewVersions=v1,timeoutSeconds=3
// +kubebuilder:webhook:path=/validate-serin-dev-v1alpha1-metrictemplate,mutating=false,failurePolicy=fail,sideEffects=None,groups=serin.dev,resources=metrictemplates,verbs=create;update,versions=v1alpha1,name=metrictemplates.validate.serin.dev,admissionReviewVersions=v1,timeoutSeconds=3
// +kubebuilder:webhook:path=/validate-serin-dev-v1alpha1-alertprovider,mutating=false,failurePolicy=fail,sideEffects=None,groups=serin.dev,resources=alertproviders,verbs=create;update,versions=v1alpha1,name=alertproviders.validate.serin.dev,admissionReviewVersions=v1,timeoutSeconds=3
package admission
