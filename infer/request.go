package infer

import (
	"errors"
	"fmt"
)

// Errors a caller (the HTTP API, a client) can tell apart with errors.Is.
var (
	// ErrModel: the request names a model this peer cannot front.
	ErrModel = errors.New("infer: model not available")
	// ErrContext: the prompt, or prompt plus requested tokens, does not
	// fit the model's context.
	ErrContext = errors.New("infer: context length exceeded")
	// ErrBusy: this peer or every candidate chain is at its session limit.
	ErrBusy = errors.New("infer: busy")
	// ErrRequest: the request is malformed.
	ErrRequest = errors.New("infer: bad request")
)

// Request asks the entry peer for a completion. Its fields and their
// defaults follow llama2.c run.c.
type Request struct {
	Model  string `json:"model,omitempty"` // model CID; empty means the peer's model
	Prompt string `json:"prompt"`
	// Steps is the number of positions to run, prompt included, as run.c's
	// -n; 0 or more than the context means the context length.
	Steps int `json:"steps,omitempty"`
	// MaxTokens, if positive, also stops generation after that many new
	// tokens; a prompt plus MaxTokens beyond the context is ErrContext.
	MaxTokens   int     `json:"max_tokens,omitempty"`
	Temperature float32 `json:"temperature"` // 0 is greedy
	TopP        float32 `json:"top_p"`       // nucleus sampling cutoff; 0 or ≥1 disables it
	Seed        uint64  `json:"seed"`
}

// Limits on a request.
const maxPrompt = 1 << 20

// Validate reports whether r is a sensible request; errors wrap ErrRequest.
func (r *Request) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrRequest, fmt.Sprintf(format, a...))
	}
	switch {
	case len(r.Prompt) > maxPrompt:
		return bad("prompt of %d bytes exceeds %d", len(r.Prompt), maxPrompt)
	case r.Steps < 0:
		return bad("negative step count %d", r.Steps)
	case r.MaxTokens < 0:
		return bad("negative max_tokens %d", r.MaxTokens)
	case !(r.Temperature >= 0 && r.Temperature <= 100):
		return bad("temperature %g outside [0, 100]", r.Temperature)
	case !(r.TopP >= 0 && r.TopP <= 1):
		return bad("top-p %g outside [0, 1]", r.TopP)
	}
	return nil
}

// Token is one piece of text, already made safe to print as run.c does.
// Prompt pieces are echoed first (Prompt true), as run.c prints them.
type Token struct {
	ID     int    `json:"id"`
	Piece  []byte `json:"piece"`
	Prompt bool   `json:"prompt,omitempty"`
}

// Stop reasons.
const (
	StopSteps     = "steps"      // the step limit (or the context) was reached
	StopMaxTokens = "max_tokens" // MaxTokens new tokens were generated
	StopBOS       = "bos"        // the model emitted a stop token: BOS (run.c's end of text) or a BPE end of text or turn
)

// Stats describes a finished request.
type Stats struct {
	PromptTokens int      `json:"prompt_tokens"`
	Forward      int      `json:"forward_passes"`
	Generated    int      `json:"generated_tokens"`
	Chain        []Hop    `json:"chain"`
	Failovers    []string `json:"failovers,omitempty"` // what failed and was routed around
	Seconds      float64  `json:"seconds"`
	TokensPerSec float64  `json:"tokens_per_sec"`
	Stop         string   `json:"stop"`
}

// Error codes carried in error frames, so that an entry can tell a busy
// peer from a broken one and a client can tell its own mistakes from the
// mesh's.
const (
	CodeFailed   = "failed"   // the peer or its link failed
	CodeBusy     = "busy"     // the peer refused a session at its limit
	CodeRefused  = "refused"  // the peer does not serve what was asked
	CodeProtocol = "protocol" // the peer broke the protocol
	CodeRequest  = "request"  // the request itself is bad
	CodeContext  = "context"  // the request does not fit the context
	CodeModel    = "model"    // the model is not available here
	CodeNoRoute  = "no_route" // no chain covers the model
)

// HopError is a failure reported by, or blamed on, a peer.
type HopError struct {
	Peer    string
	Code    string
	Message string
}

func (e *HopError) Error() string {
	if e.Peer == "" {
		return "infer: " + e.Message
	}
	return fmt.Sprintf("infer: peer %s: %s", e.Peer, e.Message)
}

// Is lets errors.Is match a remote error by its code against the local
// sentinels, so a client sees ErrBusy whether the entry or a hop was busy.
func (e *HopError) Is(target error) bool {
	switch target {
	case ErrBusy:
		return e.Code == CodeBusy
	case ErrContext:
		return e.Code == CodeContext
	case ErrModel:
		return e.Code == CodeModel
	case ErrRequest:
		return e.Code == CodeRequest
	case ErrNoRoute:
		return e.Code == CodeNoRoute
	case ErrProtocol:
		return e.Code == CodeProtocol
	}
	return false
}

// codeOf classifies err for an error frame.
func codeOf(err error) string {
	var he *HopError
	switch {
	case errors.As(err, &he) && he.Code != "":
		return he.Code
	case errors.Is(err, ErrBusy):
		return CodeBusy
	case errors.Is(err, ErrContext):
		return CodeContext
	case errors.Is(err, ErrModel):
		return CodeModel
	case errors.Is(err, ErrRequest):
		return CodeRequest
	case errors.Is(err, ErrNoRoute):
		return CodeNoRoute
	case errors.Is(err, ErrProtocol):
		return CodeProtocol
	}
	return CodeFailed
}
