package main

import (
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// meta is what the labels and annotations say about the image.
type meta struct {
	version, revision string
	created           time.Time
}

// labels are the org.opencontainers.image.* labels (and index
// annotations) of the image.
func (m meta) labels() map[string]string {
	l := map[string]string{
		"org.opencontainers.image.title":       "serin",
		"org.opencontainers.image.description": "Progressive delivery for Kubernetes: canary releases with an embedded xDS control plane",
		"org.opencontainers.image.source":      "https://github.com/serin-dev/serin",
		"org.opencontainers.image.url":         "https://github.com/serin-dev/serin",
		"org.opencontainers.image.version":     m.version,
		"org.opencontainers.image.created":     m.created.Format(time.RFC3339),
	}
	if m.revision != "" {
		l["org.opencontainers.image.revision"] = m.revision
	}
	return l
}

// platformImage is the image of one platform: the base layer, serin's
// binary at /serin, run as nonroot.
func platformImage(base v1.Layer, binary []byte, goos, goarch string, m meta) (v1.Image, error) {
	app, err := tarLayer([]entry{{name: "serin", mode: 0o755, data: binary}}, m.created)
	if err != nil {
		return nil, err
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	created := v1.Time{Time: m.created}
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, MediaType: types.OCILayer, History: v1.History{Created: created, CreatedBy: "users, groups, CA certificates, /tmp"}},
		mutate.Addendum{Layer: app, MediaType: types.OCILayer, History: v1.History{Created: created, CreatedBy: "serin " + m.version}},
	)
	if err != nil {
		return nil, fmt.Errorf("layers: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Created = goos, goarch, created
	cf.Config = v1.Config{
		User:       fmt.Sprintf("%d:%d", nonroot, nonroot),
		Entrypoint: []string{"/serin"},
		Cmd:        []string{"controller"},
		WorkingDir: "/",
		Env:        []string{"PATH=/", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"},
		Labels:     m.labels(),
	}
	return mutate.ConfigFile(img, cf)
}

// builtImage is a platform's image and its place in the index.
type builtImage struct {
	goos, goarch string
	img          v1.Image
}

// imageIndex is the multi-platform index of the images, in the order
// given.
func imageIndex(imgs []builtImage, m meta) v1.ImageIndex {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, b := range imgs {
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: b.img,
			Descriptor: v1.Descriptor{MediaType: types.OCIManifestSchema1, Platform: &v1.Platform{OS: b.goos, Architecture: b.goarch}}})
	}
	return mutate.Annotations(idx, m.labels()).(v1.ImageIndex)
}
