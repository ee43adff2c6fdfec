package podsim

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

func cmRef(name string) ConfigRef  { return ConfigRef{KindConfigMap, name} }
func secRef(name string) ConfigRef { return ConfigRef{KindSecret, name} }

func cmKey(name, key string, optional bool) *corev1.EnvVarSource {
	s := &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key}
	if optional {
		s.Optional = ptr.To(true)
	}
	return &corev1.EnvVarSource{ConfigMapKeyRef: s}
}

func secKey(name, key string, optional bool) *corev1.EnvVarSource {
	s := &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key}
	if optional {
		s.Optional = ptr.To(true)
	}
	return &corev1.EnvVarSource{SecretKeyRef: s}
}

func cmFrom(name, prefix string, optional bool) corev1.EnvFromSource {
	s := &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: name}}
	if optional {
		s.Optional = ptr.To(true)
	}
	return corev1.EnvFromSource{Prefix: prefix, ConfigMapRef: s}
}

func secFrom(name, prefix string) corev1.EnvFromSource {
	return corev1.EnvFromSource{Prefix: prefix, SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: name}}}
}

// sampleObjects is the in-memory cluster the resolution tests read from.
func sampleObjects() ConfigObjects {
	return ConfigObjects{
		cmRef("app"): {
			Data:   map[string]string{"ERROR_RATE": "0.5", "VERSION": "from-cm", "greeting": "hello", "1bad": "x"},
			Binary: map[string]string{"blob": "\x00\x01"},
		},
		cmRef("more"):   {Data: map[string]string{"VERSION": "from-more", "LATENCY_MS": "7"}},
		secRef("creds"): {Data: map[string]string{"password": "s3cret", "VERSION": "from-secret"}},
	}
}

func TestResolveEnvPrecedence(t *testing.T) {
	c := &corev1.Container{
		EnvFrom: []corev1.EnvFromSource{
			cmFrom("app", "", false),     // VERSION=from-cm, ERROR_RATE, greeting; 1bad skipped
			cmFrom("more", "", false),    // a later envFrom overrides an earlier one
			secFrom("creds", "S_"),       // prefixed
			cmFrom("absent", "", true),   // optional and missing: skipped
			cmFrom("app", "APP_", false), // the same object twice, with a prefix
		},
		Env: []corev1.EnvVar{
			{Name: "ERROR_RATE", Value: "0"},                                 // a literal overrides envFrom
			{Name: "MESSAGE", ValueFrom: cmKey("app", "greeting", false)},    // from a ConfigMap key
			{Name: "MESSAGE", ValueFrom: secKey("creds", "password", false)}, // a later entry wins
			{Name: "LATENCY_MS", ValueFrom: cmKey("app", "missing", true)},   // optional key missing: envFrom's value stays
			{Name: "TOKEN", ValueFrom: secKey("absent", "token", true)},      // optional object missing: skipped
			{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
		},
	}
	got, err := ResolveEnv(c, sampleObjects())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"ERROR_RATE": "0", "VERSION": "from-more", "greeting": "hello", "LATENCY_MS": "7",
		"S_password": "s3cret", "S_VERSION": "from-secret",
		"APP_ERROR_RATE": "0.5", "APP_VERSION": "from-cm", "APP_greeting": "hello",
		"APP_1bad": "x", // valid once prefixed
		"MESSAGE":  "s3cret",
	}
	if !maps.Equal(got.Values, want) {
		t.Errorf("values = %v\nwant     %v", got.Values, want)
	}
	wantFrom := []string{
		"APP_1bad=x", "APP_ERROR_RATE=0.5", "APP_VERSION=from-cm", "APP_greeting=hello", "LATENCY_MS=7", "MESSAGE=s3cret",
		"S_VERSION=from-secret", "S_password=s3cret", "VERSION=from-more", "greeting=hello",
	}
	if !slices.Equal(got.FromConfig, wantFrom) {
		t.Errorf("from config = %v\nwant          %v", got.FromConfig, wantFrom)
	}
	if refs := EnvConfigRefs(c); !slices.Equal(refs, []ConfigRef{cmRef("absent"), cmRef("app"), cmRef("more"), secRef("absent"), secRef("creds")}) {
		t.Errorf("refs = %v", refs)
	}
}

func TestResolveEnvMissing(t *testing.T) {
	for name, c := range map[string]corev1.Container{
		"envFrom object":  {EnvFrom: []corev1.EnvFromSource{cmFrom("absent", "", false)}},
		"envFrom secret":  {EnvFrom: []corev1.EnvFromSource{secFrom("absent", "")}},
		"key of object":   {Env: []corev1.EnvVar{{Name: "A", ValueFrom: cmKey("app", "nope", false)}}},
		"object of key":   {Env: []corev1.EnvVar{{Name: "A", ValueFrom: cmKey("absent", "k", false)}}},
		"secret key":      {Env: []corev1.EnvVar{{Name: "A", ValueFrom: secKey("creds", "nope", false)}}},
		"binary data key": {Env: []corev1.EnvVar{{Name: "A", ValueFrom: cmKey("app", "blob", false)}}},
	} {
		t.Run(name, func(t *testing.T) {
			if got, err := ResolveEnv(&c, sampleObjects()); err == nil {
				t.Errorf("resolved to %v, want an error", got.Values)
			}
		})
	}
}

func configPod(mounts []corev1.VolumeMount, vols ...corev1.Volume) *corev1.Pod {
	return testPod(func(p *corev1.Pod) {
		p.Spec.Containers[0].VolumeMounts = mounts
		p.Spec.Volumes = vols
	})
}

func cmVolume(name, cm string, optional bool, items ...corev1.KeyToPath) corev1.Volume {
	src := &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: cm}, Items: items}
	if optional {
		src.Optional = ptr.To(true)
	}
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{ConfigMap: src}}
}

func TestResolveVolumes(t *testing.T) {
	pod := configPod(
		[]corev1.VolumeMount{
			{Name: "all", MountPath: "/etc/all"},
			{Name: "items", MountPath: "/etc/items/"},
			{Name: "secret", MountPath: "/etc/secret"},
			{Name: "projected", MountPath: "/etc/projected"},
			{Name: "optional", MountPath: "/etc/optional"},
			{Name: "all", MountPath: "/etc/greeting", SubPath: "greeting"},
		},
		cmVolume("all", "app", false),
		cmVolume("items", "app", false, corev1.KeyToPath{Key: "VERSION", Path: "conf/version"}),
		corev1.Volume{Name: "secret", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: "creds", Items: []corev1.KeyToPath{{Key: "password", Path: "pw"}, {Key: "nope", Path: "x"}}, Optional: ptr.To(true)}}},
		corev1.Volume{Name: "projected", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "more"}, Items: []corev1.KeyToPath{{Key: "LATENCY_MS", Path: "latency"}}}},
			{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Items: []corev1.KeyToPath{{Key: "password", Path: "pw"}}}},
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "absent"}, Optional: ptr.To(true)}},
			{DownwardAPI: &corev1.DownwardAPIProjection{}},
		}}}},
		cmVolume("optional", "absent", true),
		cmVolume("unmounted", "unmounted", false),
		corev1.Volume{Name: "kube-api-access-x", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}},
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"}}},
		}}}},
	)
	pod.Spec.Containers[0].VolumeMounts = append(pod.Spec.Containers[0].VolumeMounts,
		corev1.VolumeMount{Name: "kube-api-access-x", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount"})
	app := &pod.Spec.Containers[0]
	if refs := VolumeConfigRefs(pod, app); !slices.Equal(refs, []ConfigRef{cmRef("absent"), cmRef("app"), cmRef("more"), secRef("creds")}) {
		t.Errorf("refs = %v", refs)
	}
	vols, err := ResolveVolumes(pod, app, sampleObjects(), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := MountedFiles(app, vols, vols)
	want := map[string]string{
		"/etc/all/ERROR_RATE": "0.5", "/etc/all/VERSION": "from-cm", "/etc/all/greeting": "hello",
		"/etc/all/1bad": "x", "/etc/all/blob": "\x00\x01",
		"/etc/items/conf/version": "from-cm",
		"/etc/secret/pw":          "s3cret",
		"/etc/projected/latency":  "7", "/etc/projected/pw": "s3cret",
		"/etc/greeting": "hello",
	}
	if !maps.Equal(got, want) {
		t.Errorf("files = %v\nwant    %v", got, want)
	}

	// A refresh: the ConfigMap changed and the Secret is gone. Live mounts follow the
	// ConfigMap, the subPath mount keeps its start content, and the secret volume
	// (not optional in the projected one) keeps its last content.
	objs := sampleObjects()
	objs[cmRef("app")] = ConfigObject{Data: map[string]string{"VERSION": "v2", "greeting": "bye"}}
	delete(objs, secRef("creds"))
	next, err := ResolveVolumes(pod, app, objs, vols)
	if err != nil {
		t.Fatal(err)
	}
	got = MountedFiles(app, next, vols)
	want = map[string]string{
		"/etc/all/VERSION": "v2", "/etc/all/greeting": "bye",
		"/etc/items/conf/version": "v2",
		"/etc/projected/latency":  "7", "/etc/projected/pw": "s3cret",
		"/etc/greeting": "hello",
	}
	if !maps.Equal(got, want) {
		t.Errorf("after the change files = %v\nwant                  %v", got, want)
	}
}

func TestResolveVolumesMissing(t *testing.T) {
	mount := []corev1.VolumeMount{{Name: "v", MountPath: "/etc/v"}}
	for name, v := range map[string]corev1.Volume{
		"object": cmVolume("v", "absent", false),
		"item":   cmVolume("v", "app", false, corev1.KeyToPath{Key: "nope", Path: "x"}),
		"secret": {Name: "v", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "absent"}}},
	} {
		t.Run(name, func(t *testing.T) {
			pod := configPod(mount, v)
			if got, err := ResolveVolumes(pod, &pod.Spec.Containers[0], sampleObjects(), nil); err == nil {
				t.Errorf("resolved to %v, want an error", got)
			}
		})
	}
	// Optional item missing: the rest of the volume is there.
	pod := configPod(mount, cmVolume("v", "app", true, corev1.KeyToPath{Key: "nope", Path: "x"}, corev1.KeyToPath{Key: "greeting", Path: "g"}))
	vols, err := ResolveVolumes(pod, &pod.Spec.Containers[0], sampleObjects(), nil)
	if err != nil || !maps.Equal(vols["v"], map[string]string{"g": "hello"}) {
		t.Errorf("optional items: %v, %v", vols, err)
	}
}

func TestConfigReports(t *testing.T) {
	long := strings.Repeat("a", 150)
	got := filesReport(map[string]string{"/b/x": "  two\nlines \n", "/a/long": long, "/a/ü": "é"})
	want := "/a/long=" + long[:100] + ",/a/??=??,/b/x=two lines"
	if got != want {
		t.Errorf("files report = %q\nwant             %q", got, want)
	}
	if got := envReport([]string{"A=1", "B=x\ty"}); got != "A=1,B=x y" {
		t.Errorf("env report = %q", got)
	}
}

// TestConfigHeaders checks that HTTP responses and gRPC calls report the env from
// the plan and the files last set, and leave the headers out when empty.
func TestConfigHeaders(t *testing.T) {
	pod := testPod(func(p *corev1.Pod) {
		p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "VERSION", ValueFrom: cmKey("app", "VERSION", false)}}
	})
	env, err := ResolveEnv(&pod.Spec.Containers[0], sampleObjects())
	if err != nil {
		t.Fatal(err)
	}
	plan, err := PlanWithEnv(pod, env)
	if err != nil {
		t.Fatal(err)
	}
	if plan.Behavior.Version != "from-cm" {
		t.Errorf("version = %q, want the ConfigMap's", plan.Behavior.Version)
	}
	srv := newPodServer(plan, ServerOptions{Listen: anyPortListen})
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	addrs := map[string]string{}
	for _, a := range srv.Addrs() {
		addrs[a.PortName] = a.Addr
	}

	r := doHTTP(t, http.MethodGet, "http://"+addrs["http"]+"/version", nil, nil)
	if got := r.header.Get(HeaderConfigEnv); got != "VERSION=from-cm" {
		t.Errorf("%s = %q", HeaderConfigEnv, got)
	}
	if _, ok := r.header[HeaderConfigFiles]; ok {
		t.Errorf("%s present without files: %q", HeaderConfigFiles, r.header.Get(HeaderConfigFiles))
	}
	srv.SetConfigFiles(map[string]string{"/etc/app/b": "2", "/etc/app/a": "1\n"})
	r = doHTTP(t, http.MethodGet, "http://"+addrs["http"]+"/healthz", nil, nil)
	if got := r.header.Get(HeaderConfigFiles); got != "/etc/app/a=1,/etc/app/b=2" {
		t.Errorf("%s = %q", HeaderConfigFiles, got)
	}

	header, trailer, err := grpcConfigMD(t.Context(), addrs["grpc"])
	if err != nil {
		t.Fatal(err)
	}
	for _, md := range []metadata.MD{header, trailer} {
		if got := md.Get(HeaderConfigEnv); !slices.Equal(got, []string{"VERSION=from-cm"}) {
			t.Errorf("gRPC %s = %q", HeaderConfigEnv, got)
		}
		if got := md.Get(HeaderConfigFiles); !slices.Equal(got, []string{"/etc/app/a=1,/etc/app/b=2"}) {
			t.Errorf("gRPC %s = %q", HeaderConfigFiles, got)
		}
	}
}

// grpcConfigMD makes an echo call and returns its header and trailer metadata.
func grpcConfigMD(ctx context.Context, addr string) (header, trailer metadata.MD, err error) {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, err
	}
	defer cc.Close()
	_, err = testgrpc.NewTestServiceClient(cc).UnaryCall(ctx, &testgrpc.SimpleRequest{}, grpc.Header(&header), grpc.Trailer(&trailer))
	return header, trailer, err
}

// TestReadConfigKeepsLast checks that an object that cannot be read keeps its last
// content, and one that is gone is absent.
func TestReadConfigKeepsLast(t *testing.T) {
	prev := sampleObjects()
	read := func(_ context.Context, _ string, ref ConfigRef) (ConfigObject, bool, error) {
		switch ref {
		case cmRef("app"):
			return ConfigObject{}, false, errors.New("connection refused")
		case secRef("creds"):
			return ConfigObject{}, false, nil
		}
		return ConfigObject{Data: map[string]string{"new": "1"}}, true, nil
	}
	got, err := readConfig(t.Context(), read, "ns", []ConfigRef{cmRef("app"), cmRef("more"), secRef("creds")}, prev)
	if err == nil {
		t.Error("no error for the failed read")
	}
	if _, ok := got[secRef("creds")]; ok {
		t.Error("a deleted Secret is still there")
	}
	if !maps.Equal(got[cmRef("app")].Data, prev[cmRef("app")].Data) {
		t.Errorf("unreadable ConfigMap = %v, want its last content", got[cmRef("app")])
	}
	if !maps.Equal(got[cmRef("more")].Data, map[string]string{"new": "1"}) {
		t.Errorf("read ConfigMap = %v", got[cmRef("more")])
	}
}
