package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/strata-mesh/strata/infer"
)

// maxBody bounds the body of an API request; a larger one is refused
// with 413 before it is parsed.
const maxBody = 4 << 20

// httpServer is the node's HTTP API.
type httpServer struct {
	srv *http.Server
	ln  net.Listener
}

// startHTTP listens on Config.HTTP and serves the API until Close.
func (n *Node) startHTTP(ctx context.Context) error {
	ln, err := net.Listen("tcp", n.cfg.HTTP)
	if err != nil {
		return fmt.Errorf("node: HTTP API on %s: %w", n.cfg.HTTP, err)
	}
	srv := &http.Server{
		Handler:           n.apiHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute, // idle keep-alive connections are closed
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	n.http = &httpServer{srv: srv, ln: ln}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("node: HTTP API stopped", "err", err)
		}
	}()
	n.log.Info("node: HTTP API", "addr", ln.Addr().String())
	return nil
}

// apiHandler routes the HTTP API. Every error, including unknown paths
// and wrong methods, is an OpenAI-style error object.
func (n *Node) apiHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/api/status", method(http.MethodGet, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, n.Status())
	}))
	metrics := n.MetricsHandler()
	mux.HandleFunc("/metrics", method(http.MethodGet, metrics.ServeHTTP))
	health := method(http.MethodGet, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/healthz", health)
	mux.HandleFunc("/api/rounds", method(http.MethodGet, n.handleRounds))
	dash := method(http.MethodGet, dashboardHandler().ServeHTTP)
	mux.HandleFunc("/{$}", dash)
	mux.HandleFunc("/dashboard", dash)
	mux.HandleFunc("/dashboard/", dash)
	mux.HandleFunc("/v1/models", method(http.MethodGet, n.handleModels))
	mux.HandleFunc("/v1/models/{id}", method(http.MethodGet, n.handleModel))
	mux.HandleFunc("/v1/completions", method(http.MethodPost, n.handleCompletions))
	mux.HandleFunc("/v1/chat/completions", method(http.MethodPost, n.handleChat))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{Status: http.StatusNotFound, Type: typeInvalid, Code: "not_found",
			Message: fmt.Sprintf("no such endpoint %s %s", r.Method, r.URL.Path)})
	})
	return mux
}

// method admits only requests with method m (and HEAD with GET).
func method(m string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != m && !(m == http.MethodGet && r.Method == http.MethodHead) {
			w.Header().Set("Allow", m)
			writeError(w, &apiError{Status: http.StatusMethodNotAllowed, Type: typeInvalid, Code: "method_not_allowed",
				Message: fmt.Sprintf("%s %s: use %s", r.Method, r.URL.Path, m)})
			return
		}
		h(w, r)
	}
}

// readJSON decodes the body of r into v: at most maxBody bytes, one JSON
// object. Unknown fields are ignored, as OpenAI clients send many; known
// fields of the wrong type are an error naming the field.
func readJSON(w http.ResponseWriter, r *http.Request, v any) *apiError {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return &apiError{Status: http.StatusRequestEntityTooLarge, Type: typeInvalid, Code: "request_too_large",
			Message: fmt.Sprintf("request body exceeds %d bytes", tooBig.Limit)}
	case err != nil:
		return &apiError{Status: http.StatusBadRequest, Type: typeInvalid, Message: "reading request body: " + err.Error()}
	case len(strings.TrimSpace(string(body))) == 0:
		return &apiError{Status: http.StatusBadRequest, Type: typeInvalid, Message: "empty request body; send a JSON object"}
	}
	if err := json.Unmarshal(body, v); err != nil {
		e := &apiError{Status: http.StatusBadRequest, Type: typeInvalid, Code: "invalid_json",
			Message: "malformed JSON body: " + err.Error()}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			// Fields of embedded structs come prefixed with the Go type name.
			field := strings.TrimPrefix(te.Field, "sampling.")
			e.Param = field
			e.Code = "invalid_type"
			e.Message = fmt.Sprintf("field %q: JSON %s is not a valid %s", field, te.Value, jsonKind(te.Type.Kind().String()))
		}
		var fe *fieldError
		if errors.As(err, &fe) {
			e.Param, e.Code, e.Message = fe.field, "invalid_type", fe.Error()
		}
		return e
	}
	return nil
}

// jsonKind names a Go kind the way an API user thinks of it.
func jsonKind(k string) string {
	switch {
	case strings.HasPrefix(k, "int"), strings.HasPrefix(k, "uint"):
		return "integer"
	case strings.HasPrefix(k, "float"):
		return "number"
	case k == "bool":
		return "boolean"
	case k == "slice":
		return "array"
	case k == "struct", k == "map", k == "ptr":
		return "object"
	}
	return k
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// apiError is an OpenAI-style error: the HTTP status and the body
// {"error":{"message","type","param","code"}}.
type apiError struct {
	Status     int    `json:"-"`
	RetryAfter int    `json:"-"` // seconds, for 429 and 503
	Message    string `json:"message"`
	Type       string `json:"type"`
	Param      any    `json:"param"` // a field name or null
	Code       any    `json:"code"`  // a short code or null
}

func (e *apiError) Error() string { return e.Message }

func (e *apiError) body() any {
	out := *e
	if s, ok := out.Param.(string); ok && s == "" {
		out.Param = nil
	}
	if s, ok := out.Code.(string); ok && s == "" {
		out.Code = nil
	}
	return struct {
		Error apiError `json:"error"`
	}{out}
}

// Error types, as OpenAI names them.
const (
	typeInvalid   = "invalid_request_error"
	typeNotFound  = "not_found_error"
	typeRateLimit = "rate_limit_error"
	typeServer    = "server_error"
)

func writeError(w http.ResponseWriter, e *apiError) {
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(e.RetryAfter))
	}
	writeJSON(w, e.Status, e.body())
}

// errorOf maps an error from generation to its HTTP status and object:
//
//	ErrRequest                400 invalid_request_error
//	ErrContext                400 invalid_request_error, code context_length_exceeded
//	ErrModel                  404 not_found_error, code model_not_found
//	ErrBusy                   429 rate_limit_error, code busy, Retry-After: 1
//	ErrNoRoute                503 server_error, code no_route, Retry-After: 5
//	any other mesh failure    502 server_error, code mesh_error
//
// 429 rather than 503 for a full entry: OpenAI clients retry 429 with
// backoff, and the node is healthy, only at its request limit.
func errorOf(err error) *apiError {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, infer.ErrContext):
		return &apiError{Status: http.StatusBadRequest, Type: typeInvalid, Code: "context_length_exceeded", Message: err.Error()}
	case errors.Is(err, infer.ErrRequest):
		return &apiError{Status: http.StatusBadRequest, Type: typeInvalid, Message: err.Error()}
	case errors.Is(err, infer.ErrModel):
		return &apiError{Status: http.StatusNotFound, Type: typeNotFound, Code: "model_not_found", Param: "model", Message: err.Error()}
	case errors.Is(err, infer.ErrBusy):
		return &apiError{Status: http.StatusTooManyRequests, Type: typeRateLimit, Code: "busy", RetryAfter: 1, Message: err.Error()}
	case errors.Is(err, infer.ErrNoRoute):
		return &apiError{Status: http.StatusServiceUnavailable, Type: typeServer, Code: "no_route", RetryAfter: 5, Message: err.Error()}
	}
	return &apiError{Status: http.StatusBadGateway, Type: typeServer, Code: "mesh_error", Message: err.Error()}
}

// HTTPAddr is the address the HTTP API listens on, or "".
func (n *Node) HTTPAddr() string {
	if n.http == nil {
		return ""
	}
	return n.http.ln.Addr().String()
}

// stopHTTP shuts the API down, letting requests in flight finish briefly.
func (n *Node) stopHTTP() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return n.http.srv.Shutdown(ctx)
}
