package app

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"github.com/serin-dev/serin/admission/certs"
)

// xdsCertOptions are the flags of serin xds-cert.
type xdsCertOptions struct {
	serinNamespace string
	serinSecret    string
	serviceAccount string
	secretName     string
	trustDomain    string
	lifetime       time.Duration
	outDir         string
}

// newXDSCertCmd issues a client certificate for a proxyless xDS client
// from serin's builtin CA.
func newXDSCertCmd(conn *connFlags) *cobra.Command {
	o := xdsCertOptions{}
	cmd := &cobra.Command{
		Use:   "xds-cert",
		Short: "Issue a client certificate for proxyless xDS clients of a namespace and service account",
		Long: "xds-cert signs a client certificate with serin's builtin CA (read from its webhook Secret) for the " +
			"identity spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>, and writes it with ca.crt into a " +
			"kubernetes.io/tls Secret in that namespace. serin's xDS server serves a client with it the releases its " +
			"namespace may see. Run it as an admin who may read serin's Secret; run it again before the certificate expires.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runXDSCert(cmd, conn, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.serinNamespace, "serin-namespace", "serin-system", "serin's own namespace")
	f.StringVar(&o.serinSecret, "webhook-secret", certs.DefaultSecretName, "serin's Secret holding the builtin CA")
	f.StringVar(&o.serviceAccount, "service-account", "default", "service account of the identity")
	f.StringVar(&o.secretName, "secret", "serin-xds-client", "name of the Secret written in the namespace")
	f.StringVar(&o.trustDomain, "trust-domain", "cluster.local", "SPIFFE trust domain of the identity")
	f.DurationVar(&o.lifetime, "lifetime", certs.DefaultClientLifetime, "validity of the certificate (never beyond the CA)")
	f.StringVar(&o.outDir, "out-dir", "", "also write tls.crt, tls.key and ca.crt into this directory")
	return cmd
}

func runXDSCert(cmd *cobra.Command, conn *connFlags, o xdsCertOptions) error {
	cfg, err := conn.loader().ClientConfig()
	if err != nil {
		return err
	}
	ns, _, err := conn.loader().Namespace()
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	s, err := certs.WriteClientSecret(cmd.Context(), cs, certs.ClientRequest{
		SerinNamespace: o.serinNamespace, SerinSecret: o.serinSecret,
		Namespace: ns, ServiceAccount: o.serviceAccount, SecretName: o.secretName,
		TrustDomain: o.trustDomain, Lifetime: o.lifetime, Now: time.Now(),
	})
	if err != nil {
		return err
	}
	if o.outDir != "" {
		keys := make([]string, 0, len(s.Data))
		for k := range s.Data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if err := os.WriteFile(filepath.Join(o.outDir, k), s.Data[k], 0o600); err != nil {
				return fmt.Errorf("writing %s: %w", k, err)
			}
		}
	}
	fmt.Fprintf(cmd.OutOrStdout(), "secret/%s written in namespace %s for %s\n", s.Name, ns, s.Annotations["serin.dev/xds-identity"])
	return nil
}
