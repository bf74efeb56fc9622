package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

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
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(n.Status())
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
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
