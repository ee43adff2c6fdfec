package podsim

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// DefaultConfigRefresh is how often the files of a served pod's config volumes are
// read again. The kubelet's period is about a minute; tests want slips caught fast.
const DefaultConfigRefresh = time.Second

// configReader reads one ConfigMap or Secret; found is false when it does not exist.
type configReader func(ctx context.Context, namespace string, ref ConfigRef) (obj ConfigObject, found bool, err error)

// clientConfigReader reads objects with one GET each: podsim never caches
// ConfigMaps or Secrets cluster-wide.
func clientConfigReader(client kubernetes.Interface) configReader {
	return func(ctx context.Context, ns string, ref ConfigRef) (ConfigObject, bool, error) {
		var obj ConfigObject
		var err error
		switch ref.Kind {
		case KindConfigMap:
			var cm *corev1.ConfigMap
			if cm, err = client.CoreV1().ConfigMaps(ns).Get(ctx, ref.Name, metav1.GetOptions{}); err == nil {
				obj.Data = cm.Data
				obj.Binary = map[string]string{}
				for k, v := range cm.BinaryData {
					obj.Binary[k] = string(v)
				}
			}
		case KindSecret:
			var sec *corev1.Secret
			if sec, err = client.CoreV1().Secrets(ns).Get(ctx, ref.Name, metav1.GetOptions{}); err == nil {
				obj.Data = map[string]string{}
				for k, v := range sec.Data {
					obj.Data[k] = string(v)
				}
			}
		default:
			return ConfigObject{}, false, fmt.Errorf("unknown config kind %q", ref.Kind)
		}
		if apierrors.IsNotFound(err) {
			return ConfigObject{}, false, nil
		}
		if err != nil {
			return ConfigObject{}, false, fmt.Errorf("get %s/%s: %w", ns, ref, err)
		}
		return obj, true, nil
	}
}

// readConfig reads refs. An object that cannot be read keeps its entry of prev (as
// absent when prev has none) and the first such error is returned with the result.
func readConfig(ctx context.Context, read configReader, ns string, refs []ConfigRef, prev ConfigObjects) (ConfigObjects, error) {
	out := ConfigObjects{}
	var errs []error
	for _, ref := range refs {
		obj, found, err := read(ctx, ns, ref)
		switch {
		case err != nil:
			errs = append(errs, err)
			if old, ok := prev[ref]; ok {
				out[ref] = old
			}
		case found:
			out[ref] = obj
		}
	}
	return out, errors.Join(errs...)
}

// errConfigPending marks a pod whose container the kubelet would not start yet
// (CreateContainerConfigError or a failed mount): it is retried later.
var errConfigPending = errors.New("configuration not available")

// podConfig is a served pod's configuration: env resolved once for the pod's life,
// volume files read at start and refreshed while it is served.
type podConfig struct {
	uid     types.UID
	env     ResolvedEnv
	pod     *corev1.Pod // the spec the volumes were resolved from
	app     *corev1.Container
	volRefs []ConfigRef
	frozen  VolumeFiles // at start: what subPath mounts show for good

	mu   sync.Mutex
	objs ConfigObjects
	live VolumeFiles
}

// resolvePodConfig reads what the pod's app container refers to and resolves its env
// and volumes. A missing object or key that is not optional is errConfigPending.
func resolvePodConfig(ctx context.Context, read configReader, pod *corev1.Pod) (*podConfig, error) {
	app := appContainer(pod)
	if app == nil {
		return nil, fmt.Errorf("pod %s/%s has no containers", pod.Namespace, pod.Name)
	}
	envObjs, err := readConfig(ctx, read, pod.Namespace, EnvConfigRefs(app), nil)
	if err != nil {
		return nil, err
	}
	env, err := ResolveEnv(app, envObjs)
	if err != nil {
		return nil, fmt.Errorf("%w: container %s: %w", errConfigPending, app.Name, err)
	}
	volRefs := VolumeConfigRefs(pod, app)
	objs, err := readConfig(ctx, read, pod.Namespace, volRefs, nil)
	if err != nil {
		return nil, err
	}
	vols, err := ResolveVolumes(pod, app, objs, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: container %s: %w", errConfigPending, app.Name, err)
	}
	return &podConfig{uid: pod.UID, env: env, pod: pod, app: app, volRefs: volRefs, frozen: vols, objs: objs, live: vols}, nil
}

// files is what the app container sees in its config mounts now.
func (c *podConfig) files() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return MountedFiles(c.app, c.live, c.frozen)
}

// refresh reads the volumes' objects again; what cannot be read or resolved keeps
// its last content.
func (c *podConfig) refresh(ctx context.Context, read configReader) (map[string]string, error) {
	c.mu.Lock()
	prevObjs, prevLive := c.objs, c.live
	c.mu.Unlock()
	objs, readErr := readConfig(ctx, read, c.pod.Namespace, c.volRefs, prevObjs)
	live, err := ResolveVolumes(c.pod, c.app, objs, prevLive)
	if err != nil { // unreachable: every volume has a previous content
		return nil, err
	}
	c.mu.Lock()
	c.objs, c.live = objs, live
	files := MountedFiles(c.app, c.live, c.frozen)
	c.mu.Unlock()
	return files, readErr
}

// refreshLoop refreshes the pod's files every period into srv until ctx ends.
func refreshLoop(ctx context.Context, log logr.Logger, read configReader, period time.Duration, cfg *podConfig, srv *PodServer) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		files, err := cfg.refresh(ctx, read)
		if err != nil && ctx.Err() == nil {
			log.V(1).Info("config volume refresh failed, keeping last content", "error", err.Error())
		}
		if files != nil {
			srv.SetConfigFiles(files)
		}
	}
}
