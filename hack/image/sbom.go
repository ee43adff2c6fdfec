package main

import (
	"debug/buildinfo"
	"encoding/json"
	"fmt"
	"net/url"
	"runtime/debug"
	"slices"
	"strings"
	"time"
)

// spdxDoc is the subset of an SPDX 2.3 JSON document that an SBOM of a Go
// binary needs.
type spdxDoc struct {
	SPDXVersion       string             `json:"spdxVersion"`
	DataLicense       string             `json:"dataLicense"`
	SPDXID            string             `json:"SPDXID"`
	Name              string             `json:"name"`
	DocumentNamespace string             `json:"documentNamespace"`
	CreationInfo      spdxCreation       `json:"creationInfo"`
	Packages          []spdxPackage      `json:"packages"`
	Relationships     []spdxRelationship `json:"relationships"`
}

type spdxCreation struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
}

type spdxPackage struct {
	Name             string         `json:"name"`
	SPDXID           string         `json:"SPDXID"`
	VersionInfo      string         `json:"versionInfo,omitempty"`
	DownloadLocation string         `json:"downloadLocation"`
	FilesAnalyzed    bool           `json:"filesAnalyzed"`
	Checksums        []spdxChecksum `json:"checksums,omitempty"`
	ExternalRefs     []spdxRef      `json:"externalRefs,omitempty"`
	PrimaryPurpose   string         `json:"primaryPackagePurpose,omitempty"`
}

type spdxChecksum struct {
	Algorithm string `json:"algorithm"`
	Value     string `json:"checksumValue"`
}

type spdxRef struct {
	Category string `json:"referenceCategory"`
	Type     string `json:"referenceType"`
	Locator  string `json:"referenceLocator"`
}

type spdxRelationship struct {
	Element string `json:"spdxElementId"`
	Type    string `json:"relationshipType"`
	Related string `json:"relatedSpdxElement"`
}

// sbomOfBinary reads the module list a Go binary embeds and makes its
// SBOM; binSHA256 is the binary's hex digest, version serin's version
// (the main module's when the build info has none).
func sbomOfBinary(path, name, version, binSHA256 string, created time.Time) ([]byte, error) {
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("build info of %s: %w", path, err)
	}
	if v := info.Main.Version; v == "" || v == "(devel)" {
		info.Main.Version = version
	}
	return json.MarshalIndent(spdxOf(info, name, binSHA256, created), "", "  ")
}

// spdxOf is the SPDX document of a binary's build info: the main module
// (the binary, with its checksum), the Go standard library and every
// module linked in (replacements resolved), sorted by path.
func spdxOf(info *debug.BuildInfo, name, binSHA256 string, created time.Time) spdxDoc {
	app := goPackage("SPDXRef-Package-main", info.Main.Path, info.Main.Version)
	app.Checksums = []spdxChecksum{{Algorithm: "SHA256", Value: binSHA256}}
	app.PrimaryPurpose = "APPLICATION"
	doc := spdxDoc{
		SPDXVersion: "SPDX-2.3", DataLicense: "CC0-1.0", SPDXID: "SPDXRef-DOCUMENT", Name: name,
		DocumentNamespace: fmt.Sprintf("https://github.com/serin-dev/serin/spdx/%s-%s", name, binSHA256),
		CreationInfo:      spdxCreation{Created: created.UTC().Format(time.RFC3339), Creators: []string{"Tool: serin-hack-image"}},
		Packages:          []spdxPackage{app, goPackage("SPDXRef-Package-stdlib", "stdlib", info.GoVersion)},
		Relationships: []spdxRelationship{
			{Element: "SPDXRef-DOCUMENT", Type: "DESCRIBES", Related: app.SPDXID},
			{Element: app.SPDXID, Type: "DEPENDS_ON", Related: "SPDXRef-Package-stdlib"},
		},
	}
	deps := make([]*debug.Module, 0, len(info.Deps))
	for _, d := range info.Deps {
		if d.Replace != nil {
			d = d.Replace
		}
		deps = append(deps, d)
	}
	slices.SortFunc(deps, func(a, b *debug.Module) int { return strings.Compare(a.Path, b.Path) })
	for i, d := range deps {
		p := goPackage(fmt.Sprintf("SPDXRef-Package-go-module-%d", i+1), d.Path, d.Version)
		doc.Packages = append(doc.Packages, p)
		doc.Relationships = append(doc.Relationships, spdxRelationship{Element: app.SPDXID, Type: "DEPENDS_ON", Related: p.SPDXID})
	}
	return doc
}

// goPackage is a Go module as an SPDX package with its package URL.
func goPackage(id, path, version string) spdxPackage {
	return spdxPackage{Name: path, SPDXID: id, VersionInfo: version, DownloadLocation: "NOASSERTION",
		ExternalRefs: []spdxRef{{Category: "PACKAGE-MANAGER", Type: "purl",
			Locator: fmt.Sprintf("pkg:golang/%s@%s", path, url.PathEscape(version))}}}
}
