package infer

// EventKind says what an Event reports.
type EventKind uint8

const (
	// EventToken: the entry sampled a token of a request. Seconds is the
	// latency of the step that produced it (the prompt's batch for the
	// first token).
	EventToken EventKind = iota + 1
	// EventHop: this peer ran a forward pass for a chain as a hop.
	// Positions is the number of positions it ran.
	EventHop
	// EventFailover: the entry routed a request around a failed hop.
	EventFailover
)

// Event is one observation reported to Config.Observe.
type Event struct {
	Kind      EventKind
	Positions int     // EventHop
	Seconds   float64 // EventToken
}

// observe reports ev to Config.Observe, if set.
func (s *Service) observe(ev Event) {
	if f := s.cfg.Observe; f != nil {
		f(ev)
	}
}
