package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// sbomMediaType is the media type (and artifact type) of an SPDX JSON SBOM.
const sbomMediaType = "application/spdx+json"

// writeLayout writes a fresh OCI image layout at dir: the index under the
// ref name, then each SBOM as an artifact whose subject is its platform's
// image manifest (an OCI 1.1 referrer).
func writeLayout(dir string, idx v1.ImageIndex, ref string, sboms map[v1.Hash][]byte, m meta) (layout.Path, error) {
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return "", fmt.Errorf("layout %s: %w", dir, err)
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref})); err != nil {
		return "", fmt.Errorf("layout %s: %w", dir, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return "", err
	}
	for _, d := range im.Manifests { // in the index's order: deterministic
		if sbom, ok := sboms[d.Digest]; ok {
			if err := appendSBOM(p, d, sbom, m); err != nil {
				return "", err
			}
		}
	}
	return p, nil
}

// appendSBOM stores sbom as an artifact manifest (empty config, one
// layer) whose subject is the image manifest described by subject.
func appendSBOM(p layout.Path, subject v1.Descriptor, sbom []byte, m meta) error {
	emptyCfg := []byte("{}")
	cfgDesc, err := writeBlob(p, types.OCIEmptyJSON, emptyCfg)
	if err != nil {
		return err
	}
	cfgDesc.Data = emptyCfg
	layerDesc, err := writeBlob(p, sbomMediaType, sbom)
	if err != nil {
		return err
	}
	layerDesc.Annotations = map[string]string{"org.opencontainers.image.title": "sbom.spdx.json"}
	subj := v1.Descriptor{MediaType: subject.MediaType, Size: subject.Size, Digest: subject.Digest}
	man := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, ArtifactType: sbomMediaType,
		Config: cfgDesc, Layers: []v1.Descriptor{layerDesc}, Subject: &subj,
		Annotations: map[string]string{"org.opencontainers.image.created": m.created.Format(time.RFC3339)}}
	raw, err := json.Marshal(man)
	if err != nil {
		return err
	}
	desc, err := writeBlob(p, types.OCIManifestSchema1, raw)
	if err != nil {
		return err
	}
	desc.ArtifactType = sbomMediaType
	return p.AppendDescriptor(desc)
}

// writeBlob stores b in the layout and describes it.
func writeBlob(p layout.Path, mt types.MediaType, b []byte) (v1.Descriptor, error) {
	h, size, err := v1.SHA256(bytes.NewReader(b))
	if err != nil {
		return v1.Descriptor{}, err
	}
	if err := p.WriteBlob(h, io.NopCloser(bytes.NewReader(b))); err != nil {
		return v1.Descriptor{}, fmt.Errorf("blob %s: %w", h, err)
	}
	return v1.Descriptor{MediaType: mt, Size: size, Digest: h}, nil
}

// writeArchive writes the layout at dir as a tar file (an oci-archive):
// entries sorted, every time mtime, no owners.
func writeArchive(dir, path string, mtime time.Time) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(file string, d fs.DirEntry, err error) error { // WalkDir walks in lexical order
		if err != nil || file == dir {
			return err
		}
		rel, err := filepath.Rel(dir, file)
		if err != nil {
			return err
		}
		return archiveEntry(tw, file, filepath.ToSlash(rel), d.IsDir(), mtime)
	})
	if err != nil {
		return fmt.Errorf("archive %s: %w", dir, err)
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// archiveEntry adds one file or directory of the layout to tw.
func archiveEntry(tw *tar.Writer, file, name string, dir bool, mtime time.Time) error {
	if dir {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755, ModTime: mtime})
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: mtime}); err != nil {
		return err
	}
	_, err = tw.Write(b)
	return err
}

// sha256Hex is the hex SHA-256 of b.
func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return fmt.Sprintf("%x", s)
}
