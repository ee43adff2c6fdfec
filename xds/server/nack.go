package server

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
)

// NACK is one resource a proxy rejected.
type NACK struct {
	Node     string // node.id (the certificate identity if the node sent none)
	Cluster  string // node.cluster
	Identity string // identity from the verified client certificate, if any
	TypeURL  string
	Resource string
	Message  string // error_detail.message, as the proxy wrote it
	Time     time.Time
}

// rejected is called by the tracker, on the stream's goroutine, with the
// resources one NACK blamed. It counts the NACK and hands the rest to the
// NACK worker, which may touch the caches and run the hook.
func (s *Server) rejected(rs []rejection) {
	if len(rs) == 0 {
		return
	}
	s.metrics.nacks.WithLabelValues(rs[0].kind.typeURL()).Inc()
	for _, r := range rs {
		s.log.Info("proxy rejected a resource", "node", r.nack.Node, "typeURL", r.nack.TypeURL,
			"resource", r.nack.Resource, "message", r.nack.Message)
	}
	select {
	case s.nackCh <- rs:
	case <-s.stopping:
	}
}

// runNACKs reverts rejected resources and calls the hook, one NACK at a time.
func (s *Server) runNACKs(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case rs := <-s.nackCh:
			for _, r := range rs {
				if err := s.revert(r); err != nil {
					s.log.Error(err, "restoring the last acknowledged content failed",
						"typeURL", r.nack.TypeURL, "resource", r.nack.Resource)
				}
			}
			if s.opts.OnNACK != nil {
				for _, r := range rs {
					s.opts.OnNACK(r.nack)
				}
			}
		}
	}
}

// revert puts back, for a rejected resource, the content the rejecting proxy
// last acknowledged: one new cache version, sent once to every subscriber
// and acknowledged, instead of the rejected content going round again. The
// resource stays that way until a Publish changes it. Nothing happens if the
// cache no longer holds the rejected content (a later Publish, or another
// proxy's NACK, got there first). If the proxy never acknowledged any content
// for the resource, or that content is older than the history, the rejected
// content stays in the cache; the guard in the cache layer still keeps it
// from being resent to the streams that rejected it.
func (s *Server) revert(r rejection) error {
	s.publishMu.Lock()
	defer s.publishMu.Unlock()

	s.idx.mu.Lock()
	e := s.idx.entries[r.kind][r.name]
	if e == nil || e.served != r.rejected {
		s.idx.mu.Unlock()
		return nil
	}
	if !r.hasGood {
		s.idx.mu.Unlock()
		s.log.Info("rejected resource has no earlier acknowledged content; not resending it",
			"typeURL", r.nack.TypeURL, "resource", r.name)
		return nil
	}
	v, ok := e.find(r.good)
	if !ok {
		s.idx.mu.Unlock()
		s.log.Info("last acknowledged content of a rejected resource is no longer known; not resending it",
			"typeURL", r.nack.TypeURL, "resource", r.name)
		return nil
	}
	m := r.kind.newMessage()
	if err := proto.Unmarshal(v.raw, m); err != nil {
		s.idx.mu.Unlock()
		return fmt.Errorf("decoding %s %s of generation %d: %w", r.nack.TypeURL, r.name, v.gen, err)
	}
	e.served, e.servedAt = v.hash, s.now()
	s.idx.mu.Unlock()

	if err := s.caches[r.kind].UpdateResource(r.name, m); err != nil {
		return fmt.Errorf("restoring %s %s: %w", r.nack.TypeURL, r.name, err)
	}
	s.log.Info("restored last acknowledged content of a rejected resource",
		"typeURL", r.nack.TypeURL, "resource", r.name, "generation", v.gen)
	return nil
}

// observeSend counts a response and, for each resource it pushes whose
// content is the one in the cache, observes the time from that content's
// entry into the cache to this send. Initial fetches of streams that
// subscribed later are not pushes and are left out.
func (s *Server) observeSend(k kind, pushed []sentResource, since time.Time) {
	typeURL := k.typeURL()
	s.metrics.sends.WithLabelValues(typeURL).Inc()
	s.observeLatency(k, pushed, since, s.metrics.push.WithLabelValues(typeURL))
}

// observeAck does the same for newly acknowledged contents.
func (s *Server) observeAck(k kind, acked []sentResource, since time.Time) {
	s.observeLatency(k, acked, since, s.metrics.ack.WithLabelValues(k.typeURL()))
}

func (s *Server) observeLatency(k kind, res []sentResource, since time.Time, h prometheus.Observer) {
	if len(res) == 0 {
		return
	}
	now := s.now()
	s.idx.mu.RLock()
	defer s.idx.mu.RUnlock()
	for _, x := range res {
		e := s.idx.entries[k][x.name]
		if e == nil || e.served != x.hash || e.servedAt.Before(since) {
			continue
		}
		h.Observe(now.Sub(e.servedAt).Seconds())
	}
}
