package translate

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	udpatypev1 "github.com/cncf/xds/go/udpa/type/v1"
	xdstypev3 "github.com/cncf/xds/go/xds/type/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// Errors for what protoc-gen-validate rules do not catch but Envoy or
// grpc-go reject when the resource arrives. Test with errors.Is.
var (
	ErrUnknownType         = errors.New("an Any of a type not in the proto registry")
	ErrDuplicateName       = errors.New("duplicate resource name")
	ErrLocalityWithoutID   = errors.New("locality without an ID (grpc-go NACKs it)")
	ErrZeroLocalityWeights = errors.New("locality weights sum to 0")
	ErrDuplicateEndpoint   = errors.New("duplicate endpoint address (grpc-go NACKs it)")
	ErrDuplicateDomain     = errors.New("duplicate virtual host domain")
	ErrInvalidRegex        = errors.New("invalid RE2 regex")
	ErrRouterNotLast       = errors.New("the router must be the last HTTP filter, and only there")
	ErrMirrorClusterTarget = errors.New("a mirror policy needs exactly one of cluster and cluster_header")
	ErrZeroClusterWeights  = errors.New("weighted cluster weights sum to 0")
	ErrRingSize            = errors.New("ring hash minimum_ring_size above maximum_ring_size")
)

// Validate checks every resource the way the proxies will: the
// protoc-gen-validate rules (ValidateAll) of each resource and, because
// ValidateAll stops at google.protobuf.Any, of every message packed in an
// Any at any depth (unpacked through the global proto registry, including
// TypedStruct payloads); plus the checks in the Err* variables. Translate
// calls it on its own output; the xDS server and the Istio glue call it on
// anything else they publish.
func Validate(res *Resources) error {
	var errs []error
	check := func(kind, name string, m proto.Message, seen map[string]bool) {
		if seen[name] {
			errs = append(errs, fmt.Errorf("%s %q: %w", kind, name, ErrDuplicateName))
		}
		seen[name] = true
		if err := ValidateMessage(m); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", kind, name, err))
		}
	}
	seen := map[string]bool{}
	for _, c := range res.Clusters {
		check("cluster", c.GetName(), c, seen)
	}
	seen = map[string]bool{}
	for _, e := range res.Endpoints {
		check("endpoints", e.GetClusterName(), e, seen)
	}
	seen = map[string]bool{}
	for _, r := range res.Routes {
		check("route configuration", r.GetName(), r, seen)
	}
	seen = map[string]bool{}
	for _, l := range res.Listeners {
		check("listener", l.GetName(), l, seen)
	}
	return errors.Join(errs...)
}

// ValidateMessage validates one Envoy message and everything inside it as
// Validate does. Each error names the field path where it was found.
func ValidateMessage(m proto.Message) error {
	if m == nil {
		return errors.New("nil message")
	}
	w := &walker{}
	w.validate(m)
	return errors.Join(w.errs...)
}

// walker visits every message of a tree, unpacking Anys, and collects
// errors with the path at which they were found.
type walker struct {
	path []segment
	errs []error
}

// segment is one step of a field path: a field, a list index, a map key, or
// the type unpacked from an Any.
type segment struct {
	field string
	index int // -1 when not a list element
	key   string
	typ   string
}

func (w *walker) fail(err error) {
	var b strings.Builder
	for i, s := range w.path {
		switch {
		case s.typ != "":
			b.WriteString("(" + s.typ + ")")
			continue
		case i > 0:
			b.WriteByte('.')
		}
		b.WriteString(s.field)
		if s.index >= 0 {
			b.WriteString("[" + strconv.Itoa(s.index) + "]")
		}
		if s.key != "" {
			b.WriteString("[" + strconv.Quote(s.key) + "]")
		}
	}
	if b.Len() == 0 {
		w.errs = append(w.errs, err)
		return
	}
	w.errs = append(w.errs, fmt.Errorf("%s: %w", b.String(), err))
}

func (w *walker) push(s segment) { w.path = append(w.path, s) }
func (w *walker) pop()           { w.path = w.path[:len(w.path)-1] }

type allValidator interface{ ValidateAll() error }

// validate runs ValidateAll on a message whose parent did not (the root,
// or an Any's payload) and then walks it.
func (w *walker) validate(m proto.Message) {
	if v, ok := m.(allValidator); ok {
		if err := v.ValidateAll(); err != nil {
			w.fail(err)
		}
	}
	w.visit(m.ProtoReflect())
}

func (w *walker) visit(m protoreflect.Message) {
	if a, ok := m.Interface().(*anypb.Any); ok {
		w.visitAny(a)
		return
	}
	w.check(m.Interface())
	for _, fd := range messageFields(m.Descriptor()) {
		if !m.Has(fd) {
			continue
		}
		switch {
		case fd.IsMap():
			mp := m.Get(fd).Map()
			keys := make([]protoreflect.MapKey, 0, mp.Len())
			mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
				keys = append(keys, k)
				return true
			})
			slices.SortFunc(keys, func(a, b protoreflect.MapKey) int { return strings.Compare(a.String(), b.String()) })
			for _, k := range keys {
				w.push(segment{field: string(fd.Name()), index: -1, key: k.String()})
				w.visit(mp.Get(k).Message())
				w.pop()
			}
		case fd.IsList():
			l := m.Get(fd).List()
			for j := range l.Len() {
				w.push(segment{field: string(fd.Name()), index: j})
				w.visit(l.Get(j).Message())
				w.pop()
			}
		default:
			w.push(segment{field: string(fd.Name()), index: -1})
			w.visit(m.Get(fd).Message())
			w.pop()
		}
	}
}

// msgFieldCache maps a message descriptor to its fields worth walking:
// those holding messages (singular, repeated, or map values) from which an
// Any or a message that check looks at can be reached, in field order.
// Envoy's messages are wide, mostly scalar, and full of leaves such as
// durations, wrappers and metadata structs; skipping those is what keeps
// Validate cheap.
var msgFieldCache sync.Map // protoreflect.MessageDescriptor → []protoreflect.FieldDescriptor

// checkedTypes are the messages check has rules for, plus Any.
var checkedTypes = map[protoreflect.FullName]bool{
	"google.protobuf.Any":                                                               true,
	"envoy.config.endpoint.v3.ClusterLoadAssignment":                                    true,
	"envoy.config.route.v3.RouteConfiguration":                                          true,
	"envoy.config.route.v3.VirtualHost":                                                 true,
	"envoy.type.matcher.v3.RegexMatcher":                                                true,
	"envoy.config.route.v3.RouteAction.RequestMirrorPolicy":                             true,
	"envoy.config.route.v3.WeightedCluster":                                             true,
	"envoy.config.cluster.v3.Cluster.RingHashLbConfig":                                  true,
	"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager": true,
}

func messageFields(md protoreflect.MessageDescriptor) []protoreflect.FieldDescriptor {
	if v, ok := msgFieldCache.Load(md); ok {
		return v.([]protoreflect.FieldDescriptor)
	}
	reach := reachesChecked(md)
	var out []protoreflect.FieldDescriptor
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if sub := fieldMessage(fd); sub != nil && reach[sub.FullName()] {
			out = append(out, fd)
		}
	}
	msgFieldCache.Store(md, out)
	return out
}

// fieldMessage is the message type a field holds, or nil.
func fieldMessage(fd protoreflect.FieldDescriptor) protoreflect.MessageDescriptor {
	if fd.IsMap() {
		return fd.MapValue().Message()
	}
	return fd.Message()
}

// reachesChecked computes, for every message type reachable from md,
// whether a checked type is reachable from it: the whole reachable graph
// is collected first and the answer propagated to a fixpoint, so cycles
// (Struct and Value, recursive matchers) come out right.
func reachesChecked(md protoreflect.MessageDescriptor) map[protoreflect.FullName]bool {
	edges := map[protoreflect.FullName][]protoreflect.FullName{}
	var collect func(protoreflect.MessageDescriptor)
	collect = func(m protoreflect.MessageDescriptor) {
		if _, seen := edges[m.FullName()]; seen {
			return
		}
		edges[m.FullName()] = nil
		fields := m.Fields()
		for i := range fields.Len() {
			if sub := fieldMessage(fields.Get(i)); sub != nil {
				edges[m.FullName()] = append(edges[m.FullName()], sub.FullName())
				collect(sub)
			}
		}
	}
	collect(md)
	reach := map[protoreflect.FullName]bool{}
	for n := range edges {
		reach[n] = checkedTypes[n]
	}
	for changed := true; changed; {
		changed = false
		for n, subs := range edges {
			if reach[n] {
				continue
			}
			for _, s := range subs {
				if reach[s] {
					reach[n], changed = true, true
					break
				}
			}
		}
	}
	return reach
}

// visitAny unpacks an Any (and a TypedStruct inside it) and validates the
// payload as a root of its own.
func (w *walker) visitAny(a *anypb.Any) {
	msg, err := a.UnmarshalNew()
	if err != nil {
		if errors.Is(err, protoregistry.NotFound) {
			w.fail(fmt.Errorf("%w: %s", ErrUnknownType, a.GetTypeUrl()))
		} else {
			w.fail(fmt.Errorf("unpack %s: %w", a.GetTypeUrl(), err))
		}
		return
	}
	switch ts := msg.(type) {
	case *xdstypev3.TypedStruct:
		msg, err = fromTypedStruct(ts.GetTypeUrl(), ts.GetValue())
	case *udpatypev1.TypedStruct:
		msg, err = fromTypedStruct(ts.GetTypeUrl(), ts.GetValue())
	}
	if err != nil {
		w.fail(err)
		return
	}
	w.push(segment{index: -1, typ: string(msg.ProtoReflect().Descriptor().FullName())})
	w.validate(msg)
	w.pop()
}

// fromTypedStruct decodes a TypedStruct's JSON-shaped payload into the type
// it names.
func fromTypedStruct(typeURL string, v *structpb.Struct) (proto.Message, error) {
	mt, err := protoregistry.GlobalTypes.FindMessageByURL(typeURL)
	if err != nil {
		return nil, fmt.Errorf("TypedStruct: %w: %s", ErrUnknownType, typeURL)
	}
	b, err := protojson.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("TypedStruct %s: %w", typeURL, err)
	}
	m := mt.New().Interface()
	if err := protojson.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("TypedStruct %s: %w", typeURL, err)
	}
	return m, nil
}

// check runs the checks protoc-gen-validate cannot express.
func (w *walker) check(m proto.Message) {
	switch x := m.(type) {
	case *endpointv3.ClusterLoadAssignment:
		w.checkLoadAssignment(x)
	case *routev3.RouteConfiguration:
		// Envoy requires domains to be unique across the whole table.
		owner := map[string]int{}
		for i, vh := range x.GetVirtualHosts() {
			for _, d := range vh.GetDomains() {
				if j, ok := owner[d]; ok && j != i {
					w.fail(fmt.Errorf("%w: %q in virtual hosts %q and %q", ErrDuplicateDomain, d, x.GetVirtualHosts()[j].GetName(), vh.GetName()))
				}
				owner[d] = i
			}
		}
	case *routev3.VirtualHost:
		seen := map[string]bool{}
		for _, d := range x.GetDomains() {
			if seen[d] {
				w.fail(fmt.Errorf("%w: %q in virtual host %q", ErrDuplicateDomain, d, x.GetName()))
			}
			seen[d] = true
		}
	case *matcherv3.RegexMatcher:
		// Go's regexp implements RE2 syntax, the engine Envoy and grpc-go use.
		if _, err := regexp.Compile(x.GetRegex()); err != nil {
			w.fail(fmt.Errorf("%w: %w", ErrInvalidRegex, err))
		}
	case *hcmv3.HttpConnectionManager:
		w.checkHTTPFilters(x.GetHttpFilters())
	case *routev3.RouteAction_RequestMirrorPolicy:
		if (x.GetCluster() == "") == (x.GetClusterHeader() == "") {
			w.fail(ErrMirrorClusterTarget)
		}
	case *clusterv3.Cluster_RingHashLbConfig:
		// Envoy and grpc-go both reject a minimum above the maximum (the
		// maximum defaults to 8M).
		lo, hi := x.GetMinimumRingSize(), x.GetMaximumRingSize()
		if lo != nil && lo.GetValue() > 8*1024*1024 || lo != nil && hi != nil && lo.GetValue() > hi.GetValue() {
			w.fail(ErrRingSize)
		}
	case *routev3.WeightedCluster:
		var sum uint64
		for _, c := range x.GetClusters() {
			sum += uint64(c.GetWeight().GetValue())
		}
		if sum == 0 {
			w.fail(ErrZeroClusterWeights)
		}
	}
}

func (w *walker) checkLoadAssignment(cla *endpointv3.ClusterLoadAssignment) {
	if len(cla.GetEndpoints()) == 0 {
		return
	}
	var sum uint64
	addrs := map[string]bool{}
	for _, l := range cla.GetEndpoints() {
		if l.GetLocality() == nil {
			w.fail(ErrLocalityWithoutID)
		}
		sum += uint64(l.GetLoadBalancingWeight().GetValue())
		for _, ep := range l.GetLbEndpoints() {
			sa := ep.GetEndpoint().GetAddress().GetSocketAddress()
			if sa == nil {
				continue
			}
			a := net.JoinHostPort(sa.GetAddress(), strconv.FormatUint(uint64(sa.GetPortValue()), 10))
			if addrs[a] {
				w.fail(fmt.Errorf("%w: %s", ErrDuplicateEndpoint, a))
			}
			addrs[a] = true
		}
	}
	if sum == 0 {
		w.fail(ErrZeroLocalityWeights)
	}
}

// checkHTTPFilters wants the router last and nowhere else: Envoy stops the
// chain at the router, and grpc-go NACKs a chain that does not end in a
// terminal filter. The router is known by its name or its config type.
func (w *walker) checkHTTPFilters(filters []*hcmv3.HttpFilter) {
	routerType := "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
	isRouter := func(f *hcmv3.HttpFilter) bool {
		return f.GetName() == RouterFilter || f.GetTypedConfig().GetTypeUrl() == routerType
	}
	if len(filters) == 0 || !isRouter(filters[len(filters)-1]) {
		w.fail(ErrRouterNotLast)
		return
	}
	for _, f := range filters[:len(filters)-1] {
		if isRouter(f) {
			w.fail(ErrRouterNotLast)
			return
		}
	}
}
