package infer

import (
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"weak"
)

// Mux serves several versions of a model (several Services, one per model
// id) on one peer's ProtocolID and GenerateProtocolID streams, so a new
// version can be served while sessions on the old one finish on it.
//
// An open frame goes to the service of the model it names; a return frame
// to the service that fronts its session; a client request to the service
// of the model it names, or to the newest service when it names none.
// A removed service gets no new sessions or requests, but keeps serving the
// sessions it runs (their streams are already open) and still receives the
// return streams of requests it fronts (a failover opens them anew) for as
// long as anything still holds it. Drop it once its Sessions and Requests
// are both 0.
//
// A Mux is safe for concurrent use.
type Mux struct {
	log *slog.Logger

	mu   sync.Mutex
	svcs []*Service // served, oldest Add first
	// retired are removed services. A request in flight holds its service,
	// so a weak pointer finds it for as long as its return streams may
	// arrive, and the Mux never keeps a dropped version's weights alive.
	retired []weak.Pointer[Service]
	self    string // this peer, from the services' transport
}

// NewMux returns a Mux serving no model yet; log may be nil.
func NewMux(log *slog.Logger) *Mux {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Mux{log: log}
}

// Add serves s's model, replacing a service with the same model id (which
// is removed as by Remove). s becomes the newest service.
func (x *Mux) Add(s *Service) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if old := x.take(s.ModelID()); old != nil && old != s {
		x.retire(old)
	}
	x.retired = slices.DeleteFunc(x.retired, func(r weak.Pointer[Service]) bool { return r.Value() == s })
	x.svcs = append(x.svcs, s)
	x.self = s.cfg.Transport.Self()
}

// Remove stops routing new sessions and requests to the service of
// modelID and returns it, or nil if there is none.
func (x *Mux) Remove(modelID string) *Service {
	x.mu.Lock()
	defer x.mu.Unlock()
	s := x.take(modelID)
	if s != nil {
		x.retire(s)
	}
	return s
}

// take removes the service of modelID from svcs and returns it.
func (x *Mux) take(modelID string) *Service {
	i := slices.IndexFunc(x.svcs, func(s *Service) bool { return s.ModelID() == modelID })
	if i < 0 {
		return nil
	}
	s := x.svcs[i]
	x.svcs = slices.Delete(x.svcs, i, i+1)
	return s
}

// retire keeps s reachable for the return streams of the requests it
// fronts.
func (x *Mux) retire(s *Service) {
	x.retired = append(x.prune(), weak.Make(s))
}

// prune forgets retired services that have been collected.
func (x *Mux) prune() []weak.Pointer[Service] {
	return slices.DeleteFunc(x.retired, func(r weak.Pointer[Service]) bool { return r.Value() == nil })
}

// Services lists the services served, oldest Add first.
func (x *Mux) Services() []*Service {
	x.mu.Lock()
	defer x.mu.Unlock()
	return slices.Clone(x.svcs)
}

// Service returns the service of modelID, or nil if it is not served.
func (x *Mux) Service(modelID string) *Service {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, s := range x.svcs {
		if s.ModelID() == modelID {
			return s
		}
	}
	return nil
}

// owner returns the service, served or retired, that fronts session id.
func (x *Mux) owner(id string) *Service {
	x.mu.Lock()
	x.retired = x.prune()
	all := slices.Clone(x.svcs)
	for _, r := range x.retired {
		if s := r.Value(); s != nil {
			all = append(all, s)
		}
	}
	x.mu.Unlock()
	for _, s := range all {
		if s.lookup(id) != nil {
			return s
		}
	}
	return nil
}

// front returns the service for a client request naming model: the one
// serving it, or else the newest (which refuses a model it does not
// serve). It is nil when nothing is served.
func (x *Mux) front(model string) *Service {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, s := range x.svcs {
		if s.ModelID() == model {
			return s
		}
	}
	if len(x.svcs) == 0 {
		return nil
	}
	return x.svcs[len(x.svcs)-1]
}

// gate is the gate of a stream before a service is chosen: the newest
// service's first-frame timeout, or the default one when none is served.
func (x *Mux) gate() gate {
	x.mu.Lock()
	defer x.mu.Unlock()
	g := gate{self: x.self, timeout: 30 * time.Second, log: x.log}
	if n := len(x.svcs); n > 0 {
		g.timeout = x.svcs[n-1].cfg.StepTimeout
	}
	return g
}

// serves describes what this peer serves, for a refusal.
func (x *Mux) serves() string {
	x.mu.Lock()
	defer x.mu.Unlock()
	if len(x.svcs) == 0 {
		return "no model"
	}
	ids := make([]string, len(x.svcs))
	for i, s := range x.svcs {
		ids[i] = s.ModelID()
	}
	return "models " + strings.Join(ids, ", ")
}

// HandleStream serves one inbound ProtocolID stream from peer remote, as
// Service.HandleStream does, with the service its first frame calls for.
// An open frame for a model not served is refused as a Service refuses a
// model it does not serve (CodeRefused).
func (x *Mux) HandleStream(rw io.ReadWriteCloser, remote string) {
	defer rw.Close()
	c := newConn(rw)
	g := x.gate()
	open, ret, ok := g.first(c, remote)
	switch {
	case !ok:
	case open != nil:
		if s := x.Service(open.Model); s != nil {
			s.serve(c, remote, open)
			return
		}
		g.refuse(c, remote, refuseModel(g.self, open, x.serves()))
	default:
		if s := x.owner(ret.Session); s != nil {
			s.receive(c, remote, ret.Session)
			return
		}
		g.refuse(c, remote, errNoSession(ret.Session))
	}
}

// HandleClient serves one GenerateProtocolID stream, as
// Service.HandleClient does, with the service of the model the request
// names, or the newest service when it names none.
func (x *Mux) HandleClient(rw io.ReadWriteCloser, remote string) {
	defer rw.Close()
	c := newConn(rw)
	g := x.gate()
	req, ok := g.request(c, remote)
	if !ok {
		return
	}
	s := x.front(req.Model)
	if s == nil {
		g.refuse(c, remote, fmt.Errorf("%w: this peer serves no model", ErrModel))
		return
	}
	s.answer(rw, c, remote, req)
}
