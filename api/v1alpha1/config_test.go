package v1alpha1

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// configPod references ConfigMaps and Secrets in every way a pod can.
func configPod() *corev1.PodSpec {
	cm := func(n string) corev1.LocalObjectReference { return corev1.LocalObjectReference{Name: n} }
	return &corev1.PodSpec{
		InitContainers: []corev1.Container{{Name: "init", EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: cm("init-secret")}}}}},
		Containers: []corev1.Container{{
			Name: "app",
			EnvFrom: []corev1.EnvFromSource{
				{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: cm("env-all")}},
			},
			Env: []corev1.EnvVar{
				{Name: "LITERAL", Value: "x"},
				{Name: "A", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: cm("app"), Key: "a"}}},
				{Name: "B", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: cm("db"), Key: "pw"}}},
				{Name: "POD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			},
		}},
		Volumes: []corev1.Volume{
			{Name: "files", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: cm("app")}}},
			{Name: "certs", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "tls"}}},
			{Name: "both", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: cm("proj-cm")}},
				{Secret: &corev1.SecretProjection{LocalObjectReference: cm("proj-secret")}},
				{DownwardAPI: &corev1.DownwardAPIProjection{}},
			}}}},
			{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		},
	}
}

func TestConfigRefs(t *testing.T) {
	var got []string
	for _, r := range ConfigRefs(configPod()) {
		got = append(got, r.String())
	}
	want := []string{"configmap/app", "configmap/env-all", "configmap/proj-cm", "secret/db", "secret/init-secret", "secret/proj-secret", "secret/tls"}
	if !slices.Equal(got, want) {
		t.Fatalf("refs = %v, want %v", got, want)
	}
}

func TestRewriteConfigNames(t *testing.T) {
	spec := configPod()
	revs := []ConfigRevision{
		{ConfigRef: ConfigRef{Kind: KindConfigMap, Name: "app"}, Hash: "aaaaaaaaaa"},
		{ConfigRef: ConfigRef{Kind: KindSecret, Name: "proj-secret"}, Hash: "bbbbbbbbbb"},
		// A Secret of the same name as a ConfigMap is another object.
		{ConfigRef: ConfigRef{Kind: KindSecret, Name: "env-all"}, Hash: "cccccccccc"},
	}
	if n := RewriteConfigNames(spec, revs); n != 3 {
		t.Fatalf("rewrote %d references, want 3 (env, volume, projection)", n)
	}
	var got []string
	for _, r := range ConfigRefs(spec) {
		got = append(got, r.String())
	}
	want := []string{"configmap/app-aaaaaaaaaa", "configmap/env-all", "configmap/proj-cm", "secret/db", "secret/init-secret", "secret/proj-secret-bbbbbbbbbb", "secret/tls"}
	if !slices.Equal(got, want) {
		t.Fatalf("refs after rewrite = %v, want %v", got, want)
	}
}

func TestConfigAnnotation(t *testing.T) {
	revs := []ConfigRevision{
		{ConfigRef: ConfigRef{Kind: KindSecret, Name: "db"}, Hash: "2"},
		{ConfigRef: ConfigRef{Kind: KindConfigMap, Name: "app"}, Hash: "1"},
	}
	v := FormatConfig(revs)
	if v != "configmap/app=1,secret/db=2" {
		t.Fatalf("format = %q", v)
	}
	back, err := ParseConfig(v)
	if err != nil || FormatConfig(back) != v {
		t.Fatalf("parse = %+v, %v", back, err)
	}
	for _, bad := range []string{"configmap/app", "pod/x=1", "configmap/=1", "configmap/a=", "app=1"} {
		if _, err := ParseConfig(bad); err == nil || !strings.Contains(err.Error(), AnnotationConfig) {
			t.Errorf("ParseConfig(%q) = %v, want an error naming the annotation", bad, err)
		}
	}
	if got := ChangedConfig("configmap/app=1,secret/db=2", "configmap/app=3,configmap/new=1"); !slices.Equal(got, []string{"configmap/app", "configmap/new", "secret/db"}) {
		t.Fatalf("changed = %v", got)
	}
	if got := ChangedConfig(v, v); len(got) != 0 {
		t.Fatalf("changed = %v", got)
	}
}

func TestConfigHashes(t *testing.T) {
	a := ConfigMapHash(map[string]string{"k": "v"}, nil)
	if a != ConfigMapHash(map[string]string{"k": "v"}, map[string][]byte{}) || len(a) != 10 {
		t.Fatalf("hash %q not stable", a)
	}
	for _, other := range []string{
		ConfigMapHash(map[string]string{"k": "w"}, nil),
		ConfigMapHash(map[string]string{"kv": ""}, nil),
		ConfigMapHash(nil, map[string][]byte{"k": []byte("v")}),
	} {
		if other == a {
			t.Errorf("different content, same hash %q", a)
		}
	}
	if SecretHash(corev1.SecretTypeOpaque, map[string][]byte{"k": []byte("v")}) == SecretHash(corev1.SecretTypeTLS, map[string][]byte{"k": []byte("v")}) {
		t.Error("the Secret type is not part of its revision")
	}
	long := strings.Repeat("a", 260)
	if n := SnapshotName(long, a); len(n) != 253 || !strings.HasSuffix(n, "-"+a) {
		t.Fatalf("snapshot name %d chars: %q", len(n), n)
	}
	if SnapshotName("app", a) != "app-"+a {
		t.Fatal(SnapshotName("app", a))
	}
	if !TrackingDisabled(map[string]string{FlaggerAnnotationConfigTracking: "disabled"}) || TrackingDisabled(map[string]string{AnnotationConfigTracking: "enabled"}) {
		t.Fatal("opt-out annotations")
	}
}
