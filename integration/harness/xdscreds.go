package harness

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/serin-dev/serin/admission/certs"
	"github.com/serin-dev/serin/integration/cluster"
)

// XDSCredentials are a client certificate for serin's xDS server, as files
// in Dir (tls.crt, tls.key, ca.crt) as `serin xds-cert --out-dir` writes
// them. The zero value means plaintext.
type XDSCredentials struct {
	Dir string
}

// IssueXDSCredentials runs `serin xds-cert` against the cluster: a client
// certificate for the default service account of namespace, signed by
// serin's builtin CA, written as a Secret in namespace and as files in a
// new directory under dir.
func IssueXDSCredentials(ctx context.Context, bin, kubeconfig, namespace, dir string) (XDSCredentials, error) {
	out, err := os.MkdirTemp(dir, "xds-client-"+namespace+"-")
	if err != nil {
		return XDSCredentials{}, err
	}
	if _, err := cluster.Run(ctx, "", bin, "xds-cert", "--kubeconfig="+kubeconfig, "--namespace="+namespace,
		"--serin-namespace="+Namespace, "--service-account=default", "--out-dir="+out); err != nil {
		return XDSCredentials{}, fmt.Errorf("serin xds-cert for %s: %w", namespace, err)
	}
	return XDSCredentials{Dir: out}, nil
}

// bootstrapCreds is the channel_creds of a grpc-go xDS bootstrap.
func (c XDSCredentials) bootstrapCreds() string {
	if c.Dir == "" {
		return `[{"type": "insecure"}]`
	}
	return fmt.Sprintf(`[{"type": "tls", "config": {"ca_certificate_file": %q, "certificate_file": %q, "private_key_file": %q}}]`,
		filepath.Join(c.Dir, "ca.crt"), filepath.Join(c.Dir, "tls.crt"), filepath.Join(c.Dir, "tls.key"))
}

// DialOption is the transport credentials of a raw gRPC client of serin's
// xDS server.
func (c XDSCredentials) DialOption() (grpc.DialOption, error) {
	if c.Dir == "" {
		return grpc.WithTransportCredentials(insecure.NewCredentials()), nil
	}
	cfg, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	return grpc.WithTransportCredentials(credentials.NewTLS(cfg)), nil
}

// tlsConfig is the client side of mutual TLS with these files.
func (c XDSCredentials) tlsConfig() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(c.Dir, "tls.crt"), filepath.Join(c.Dir, "tls.key"))
	if err != nil {
		return nil, err
	}
	ca, err := os.ReadFile(filepath.Join(c.Dir, "ca.crt"))
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("%s/ca.crt holds no certificate", c.Dir)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, MinVersion: tls.VersionTLS12}, nil
}

// xdsIssuer issues credentials for the clients of one serin, once per
// namespace, in process with the code behind `serin xds-cert`, so that
// tests running in parallel do not queue behind one another's processes.
type xdsIssuer struct {
	c         *cluster.Cluster
	plaintext bool

	mu   sync.Mutex
	byNS map[string]*xdsOnce
}

type xdsOnce struct {
	once  sync.Once
	creds XDSCredentials
	err   error
}

// xdsIssuers are the running serins' issuers, by xDS address.
var xdsIssuers sync.Map

// registerXDS makes the clients of s's xDS address get certificates from
// the cluster s runs in (or none when s serves plaintext).
func (s *Serin) registerXDS() {
	plaintext := false
	for _, a := range s.opts.ExtraArgs {
		plaintext = plaintext || a == "--xds-plaintext" || a == "--xds-plaintext=true"
	}
	xdsIssuers.Store(s.XDSAddress(), &xdsIssuer{c: s.c, plaintext: plaintext, byNS: map[string]*xdsOnce{}})
}

// XDSCredentialsFor are credentials for a client in namespace of the serin
// serving xdsAddress; plaintext for an address no serin of this process
// serves.
func XDSCredentialsFor(ctx context.Context, xdsAddress, namespace string) (XDSCredentials, error) {
	v, ok := xdsIssuers.Load(xdsAddress)
	if !ok {
		return XDSCredentials{}, nil
	}
	is := v.(*xdsIssuer)
	if is.plaintext {
		return XDSCredentials{}, nil
	}
	is.mu.Lock()
	o := is.byNS[namespace]
	if o == nil {
		o = &xdsOnce{}
		is.byNS[namespace] = o
	}
	is.mu.Unlock()
	o.once.Do(func() { o.creds, o.err = is.issue(ctx, namespace) })
	return o.creds, o.err
}

// issue writes the Secret as `serin xds-cert` does and its files into a
// new directory.
func (is *xdsIssuer) issue(ctx context.Context, namespace string) (XDSCredentials, error) {
	cs, err := is.c.Clientset()
	if err != nil {
		return XDSCredentials{}, err
	}
	s, err := certs.WriteClientSecret(ctx, cs, certs.ClientRequest{
		SerinNamespace: Namespace, SerinSecret: certs.DefaultSecretName,
		Namespace: namespace, ServiceAccount: "default", SecretName: "serin-xds-client",
		TrustDomain: "cluster.local", Lifetime: time.Hour, Now: time.Now(),
	})
	if err != nil {
		return XDSCredentials{}, err
	}
	dir, err := os.MkdirTemp(is.c.Dir, "xds-client-"+namespace+"-")
	if err != nil {
		return XDSCredentials{}, err
	}
	for k, v := range s.Data {
		if err := os.WriteFile(filepath.Join(dir, k), v, 0o600); err != nil {
			return XDSCredentials{}, err
		}
	}
	return XDSCredentials{Dir: dir}, nil
}

// XDSDialOption is the transport of a raw xDS client in namespace of the
// serin serving xdsAddress.
func XDSDialOption(t testing.TB, xdsAddress, namespace string) grpc.DialOption {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := XDSCredentialsFor(ctx, xdsAddress, namespace)
	if err != nil {
		t.Fatal(err)
	}
	opt, err := c.DialOption()
	if err != nil {
		t.Fatal(err)
	}
	return opt
}

// TargetNamespace is the namespace of an xds:/// target <svc>.<ns>:<port>
// (or <svc>.<ns>.svc…:<port>); "" if it names none.
func TargetNamespace(target string) string {
	host, _, _ := strings.Cut(target, ":")
	parts := strings.Split(host, ".")
	if len(parts) < 2 {
		return ""
	}
	return parts[1]
}
