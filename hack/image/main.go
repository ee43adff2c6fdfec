// Command image builds serin's container image without a container daemon
// and without pulling a base image: serin built static (CGO_ENABLED=0,
// -trimpath) for each platform, on a scratch filesystem of a few files —
// /etc/passwd and /etc/group with the nonroot user 65532, the build
// machine's CA bundle, /tmp and the nonroot home — run as 65532:65532. It
// writes an OCI image layout (an image index, one image per platform, and
// an SPDX 2.3 SBOM of each binary's Go modules attached as a referrer),
// the layout as an oci-archive tarball, the SBOMs beside them, and prints
// the index digest to pin the chart to (controller.image.digest).
//
// Every timestamp is SOURCE_DATE_EPOCH, or the commit time of HEAD, so the
// same tree builds the same digest.
//
//	go run ./hack/image -out dist -version v0.1.0
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
)

func main() {
	o := Options{}
	var platforms string
	flag.StringVar(&o.Out, "out", "dist", "output directory (image/, image.tar, sbom-*.spdx.json, image.digest)")
	flag.StringVar(&platforms, "platforms", "linux/amd64", "comma-separated os/arch list, e.g. linux/amd64,linux/arm64")
	flag.StringVar(&o.Version, "version", "dev", "serin's version: stamped into the binary, the labels and the layout's ref name")
	flag.StringVar(&o.Root, "root", ".", "the repository root")
	flag.Parse()
	o.Platforms = strings.Split(platforms, ",")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := Build(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
	for _, p := range res.Platforms {
		fmt.Fprintf(os.Stderr, "%s\t%s\tsbom %s\n", p.Platform, p.Digest, p.SBOM)
	}
	fmt.Fprintf(os.Stderr, "layout %s, archive %s\n", res.Layout, res.Archive)
	fmt.Println(res.Digest)
}
