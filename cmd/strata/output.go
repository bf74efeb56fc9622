package main

import (
	"log/slog"
	"os"
	"time"
)

var timeNow = time.Now

// quiet is the logger of a client's own short-lived host: warnings only.
func quiet() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
