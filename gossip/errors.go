package gossip

import "errors"

// Sentinel errors; test for them with errors.Is.
var (
	// ErrInvalidAdvert means an advert failed validation.
	ErrInvalidAdvert = errors.New("gossip: invalid advert")
	// ErrTooLarge means an encoded advert exceeds MaxAdvertSize.
	ErrTooLarge = errors.New("gossip: advert too large")
	// ErrInvalidConfig means Config.Validate rejected the configuration.
	ErrInvalidConfig = errors.New("gossip: invalid config")
	// ErrClosed means the Gossip service has been closed.
	ErrClosed = errors.New("gossip: closed")
)
