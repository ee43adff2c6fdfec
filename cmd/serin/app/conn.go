package app

import (
	"github.com/spf13/pflag"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/internal/scheme"
)

// connFlags are kubectl's connection flags (--kubeconfig, --context, -n).
type connFlags struct {
	kubeconfig, context, namespace string
}

// AddFlags adds the flags to fs.
func (f *connFlags) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "path to the kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
	fs.StringVar(&f.context, "context", "", "the kubeconfig context to use")
	fs.StringVarP(&f.namespace, "namespace", "n", "", "the namespace (default: the context's)")
}

// loader resolves the kubeconfig as kubectl does, with the flags'
// overrides.
func (f *connFlags) loader() clientcmd.ClientConfig {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = f.kubeconfig
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: f.context, Context: clientcmdapi.Context{Namespace: f.namespace}})
}

// client is a client for the CLI's commands and the namespace they act in.
func (f *connFlags) client() (client.Client, string, error) {
	cfg, err := f.loader().ClientConfig()
	if err != nil {
		return nil, "", err
	}
	s, err := scheme.New()
	if err != nil {
		return nil, "", err
	}
	c, err := client.New(cfg, client.Options{Scheme: s})
	if err != nil {
		return nil, "", err
	}
	ns, _, err := f.loader().Namespace()
	return c, ns, err
}
