package node

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-mesh/strata/infer"
	"github.com/strata-mesh/strata/internal/reftest"
	"github.com/strata-mesh/strata/shards"
)

// logRecorder is a slog handler that keeps the messages it is given.
type logRecorder struct {
	mu   *sync.Mutex
	msgs *[]string
}

func newLogRecorder() logRecorder { return logRecorder{mu: new(sync.Mutex), msgs: new([]string)} }

func (l logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	*l.msgs = append(*l.msgs, r.Message)
	return nil
}
func (l logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l logRecorder) WithGroup(string) slog.Handler      { return l }

func (l logRecorder) has(msg string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range *l.msgs {
		if m == msg {
			return true
		}
	}
	return false
}

// refRepo imports the reference model into a fresh repo dir.
func refRepo(t testing.TB) (dir, id string) {
	t.Helper()
	m, tok := reftest.Load(t)
	dir = t.TempDir()
	st, err := shards.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := shards.ImportModel(st, m, tok, "stories260K")
	if err != nil {
		t.Fatal(err)
	}
	return dir, c.String()
}

// startRefNode starts a node serving all of stories260K with the HTTP API
// on loopback and returns it with the API's base URL.
func startRefNode(t *testing.T, ctx context.Context, log *slog.Logger) (*Node, string) {
	t.Helper()
	dir, _ := refRepo(t)
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n, err := Start(ctx, Config{Repo: dir, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, HTTP: "127.0.0.1:0", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n, "http://" + n.HTTPAddr()
}

type apiResult struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, ctx context.Context, method, url, body string) apiResult {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return apiResult{resp.StatusCode, resp.Header, b}
}

func decode[T any](t *testing.T, r apiResult) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
	return v
}

type testCompletion struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Text         string  `json:"text"`
		FinishReason *string `json:"finish_reason"`
		Delta        *struct {
			Role    string  `json:"role"`
			Content *string `json:"content"`
		} `json:"delta"`
		Message *struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"message"`
	} `json:"choices"`
	Usage *usage `json:"usage"`
	Error *struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Param   any    `json:"param"`
		Code    any    `json:"code"`
	} `json:"error"`
}

// text is the text of a completion: a choice's text, message or delta.
func (c testCompletion) text() string {
	var sb strings.Builder
	for _, ch := range c.Choices {
		sb.WriteString(ch.Text)
		if ch.Message != nil {
			sb.WriteString(ch.Message.Content)
		}
		if ch.Delta != nil && ch.Delta.Content != nil {
			sb.WriteString(*ch.Delta.Content)
		}
	}
	return sb.String()
}

func (c testCompletion) finish() string {
	for _, ch := range c.Choices {
		if ch.FinishReason != nil {
			return *ch.FinishReason
		}
	}
	return ""
}

// stream posts body and reads the SSE events up to [DONE] or the end.
func stream(t *testing.T, ctx context.Context, url, body string) (events []testCompletion, done bool) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST %s: status %d: %s", url, resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q, want text/event-stream", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("SSE line %q is not a data line", line)
		}
		if data == "[DONE]" {
			if sc.Scan() && strings.TrimSpace(sc.Text()) != "" {
				t.Errorf("data after [DONE]: %q", sc.Text())
			}
			return events, true
		}
		var ev testCompletion
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			t.Fatalf("SSE event %q: %v", data, err)
		}
		events = append(events, ev)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading the stream: %v", err)
	}
	return events, false
}

// joined concatenates the text of streamed events.
func joined(events []testCompletion) string {
	var sb strings.Builder
	for _, ev := range events {
		sb.WriteString(ev.text())
	}
	return sb.String()
}

// generated runs req on n directly and returns its prompt and generated
// text.
func generated(t *testing.T, ctx context.Context, n *Node, req infer.Request) (prompt, text string) {
	t.Helper()
	var p, g strings.Builder
	if _, err := n.Generate(ctx, req, func(tk infer.Token) error {
		if tk.Prompt {
			p.Write(tk.Piece)
		} else {
			g.Write(tk.Piece)
		}
		return nil
	}); err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return p.String(), g.String()
}

// TestHTTPAPI drives the OpenAI-compatible API of a node serving
// stories260K whole: models, completions and chat, streamed or not, with
// greedy text equal to REFERENCE.md Case 2.
func TestHTTPAPI(t *testing.T) {
	ref := reftest.Read(t)
	want := strings.TrimSuffix(ref.Case2Text, "\n")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n, base := startRefNode(t, ctx, nil)

	t.Run("models", func(t *testing.T) {
		r := do(t, ctx, "GET", base+"/v1/models", "")
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		list := decode[struct {
			Object string        `json:"object"`
			Data   []modelObject `json:"data"`
		}](t, r)
		if list.Object != "list" || len(list.Data) != 1 {
			t.Fatalf("got %s, want a list of one model", r.body)
		}
		m := list.Data[0]
		if m.ID != n.Model() || m.Object != "model" || m.OwnedBy != "strata" || m.Name != "stories260K" || m.Created == 0 || m.ContextLength != 512 {
			t.Errorf("model entry %+v, want id %s, name stories260K, context 512", m, n.Model())
		}
		for _, id := range []string{n.Model(), "stories260K"} {
			if r := do(t, ctx, "GET", base+"/v1/models/"+id, ""); r.status != http.StatusOK || decode[modelObject](t, r).ID != n.Model() {
				t.Errorf("GET /v1/models/%s: %d %s", id, r.status, r.body)
			}
		}
	})

	t.Run("health and status", func(t *testing.T) {
		for _, path := range []string{"/healthz"} {
			if r := do(t, ctx, "GET", base+path, ""); r.status != http.StatusOK || strings.TrimSpace(string(r.body)) != "ok" {
				t.Errorf("GET %s: %d %q, want 200 ok", path, r.status, r.body)
			}
		}
		r := do(t, ctx, "GET", base+"/api/status", "")
		if st := decode[Status](t, r); r.status != http.StatusOK || st.Model != n.Model() || st.Peer != n.ID() || !st.Covered {
			t.Errorf("GET /api/status: %d %s", r.status, r.body)
		}
	})

	t.Run("completion", func(t *testing.T) {
		for _, model := range []string{"", n.Model(), "stories260K"} {
			body := fmt.Sprintf(`{"model":%q,"prompt":"","temperature":0,"max_tokens":200}`, model)
			r := do(t, ctx, "POST", base+"/v1/completions", body)
			if r.status != http.StatusOK {
				t.Fatalf("model %q: status %d: %s", model, r.status, r.body)
			}
			c := decode[testCompletion](t, r)
			if c.text() != want {
				t.Errorf("model %q: got\n%s\nwant\n%s", model, c.text(), want)
			}
			if c.Object != "text_completion" || !strings.HasPrefix(c.ID, "cmpl-") || c.Model != n.Model() || c.finish() != "length" {
				t.Errorf("model %q: object %q id %q model %q finish %q", model, c.Object, c.ID, c.Model, c.finish())
			}
			if c.Usage == nil || *c.Usage != (usage{PromptTokens: 1, CompletionTokens: 200, TotalTokens: 201}) {
				t.Errorf("model %q: usage %+v, want 1 + 200 = 201", model, c.Usage)
			}
		}
	})

	t.Run("prompt array", func(t *testing.T) {
		r := do(t, ctx, "POST", base+"/v1/completions", `{"prompt":[""],"temperature":0,"max_tokens":200}`)
		if c := decode[testCompletion](t, r); r.status != http.StatusOK || c.text() != want {
			t.Errorf("status %d, text %q", r.status, c.text())
		}
	})

	t.Run("stream", func(t *testing.T) {
		events, done := stream(t, ctx, base+"/v1/completions",
			`{"prompt":"","temperature":0,"max_tokens":200,"stream":true,"stream_options":{"include_usage":true}}`)
		if !done {
			t.Fatal("stream ended without [DONE]")
		}
		if got := joined(events); got != want {
			t.Errorf("streamed text\n%s\nwant\n%s", got, want)
		}
		// 200 pieces (a piece may be empty only if unprintable), then finish, then usage.
		if len(events) < 3 {
			t.Fatalf("%d events", len(events))
		}
		fin, last := events[len(events)-2], events[len(events)-1]
		if fin.finish() != "length" || fin.text() != "" {
			t.Errorf("finish event %+v, want finish_reason length and no text", fin)
		}
		if last.Usage == nil || last.Usage.CompletionTokens != 200 || last.Usage.PromptTokens != 1 || len(last.Choices) != 0 {
			t.Errorf("usage event %+v", last)
		}
		for i, ev := range events[:len(events)-2] {
			if ev.Object != "text_completion" || ev.finish() != "" || ev.ID != events[0].ID || ev.Usage != nil {
				t.Fatalf("event %d: %+v", i, ev)
			}
		}
		if pieces := len(events) - 2; pieces != 200 {
			t.Errorf("%d text events, want one per token (200)", pieces)
		}
	})

	t.Run("prompt and echo", func(t *testing.T) {
		req := infer.Request{Prompt: "Once upon a time", MaxTokens: 40}
		prompt, gen := generated(t, ctx, n, req)
		if prompt != "Once upon a time" {
			t.Fatalf("prompt pieces %q", prompt)
		}
		for _, echo := range []bool{false, true} {
			body := fmt.Sprintf(`{"prompt":"Once upon a time","temperature":0,"max_tokens":40,"echo":%t}`, echo)
			wantText := gen
			if echo {
				wantText = prompt + gen
			}
			r := do(t, ctx, "POST", base+"/v1/completions", body)
			c := decode[testCompletion](t, r)
			if r.status != http.StatusOK || c.text() != wantText {
				t.Errorf("echo %t: %d %q, want %q", echo, r.status, c.text(), wantText)
			}
			if c.Usage == nil || c.Usage.PromptTokens != 5 || c.Usage.CompletionTokens != 40 {
				t.Errorf("echo %t: usage %+v, want 5 prompt tokens (BOS + 4) and 40", echo, c.Usage)
			}
			events, _ := stream(t, ctx, base+"/v1/completions", strings.Replace(body, "{", `{"stream":true,`, 1))
			if got := joined(events); got != wantText {
				t.Errorf("echo %t streamed: %q, want %q", echo, got, wantText)
			}
		}
	})

	t.Run("default max_tokens", func(t *testing.T) {
		r := do(t, ctx, "POST", base+"/v1/completions", `{"prompt":"Once"}`)
		if c := decode[testCompletion](t, r); r.status != http.StatusOK || c.Usage == nil || c.Usage.CompletionTokens > 16 {
			t.Errorf("%d %s, want at most 16 tokens", r.status, r.body)
		}
	})

	t.Run("stop sequences", func(t *testing.T) {
		for _, tc := range []struct{ stop, cut string }{
			{`"Lily"`, "Lily"},
			{`["zzz","e was a"]`, "e was a"}, // spans token pieces
			{`["park.", "red ball"]`, "park."},
		} {
			wantText := want[:strings.Index(want, tc.cut)]
			body := fmt.Sprintf(`{"prompt":"","temperature":0,"max_tokens":200,"stop":%s}`, tc.stop)
			r := do(t, ctx, "POST", base+"/v1/completions", body)
			c := decode[testCompletion](t, r)
			if r.status != http.StatusOK || c.text() != wantText || c.finish() != "stop" {
				t.Errorf("stop %s: %d %q finish %q, want %q and stop", tc.stop, r.status, c.text(), c.finish(), wantText)
			}
			if c.Usage == nil || c.Usage.CompletionTokens >= 200 {
				t.Errorf("stop %s: usage %+v, want generation cut short", tc.stop, c.Usage)
			}
			events, done := stream(t, ctx, base+"/v1/completions", strings.Replace(body, "{", `{"stream":true,`, 1))
			if got := joined(events); !done || got != wantText || events[len(events)-1].finish() != "stop" {
				t.Errorf("stop %s streamed: %q, want %q", tc.stop, got, wantText)
			}
		}
	})

	t.Run("chat", func(t *testing.T) {
		msgs := `[{"role":"system","content":"You tell stories."},{"role":"user","content":[{"type":"text","text":"Tell me one."}]}]`
		_, gen := generated(t, ctx, n, infer.Request{Prompt: "System: You tell stories.\nUser: Tell me one.\nAssistant:", MaxTokens: 30})
		if i := strings.Index(gen, "\nUser:"); i >= 0 {
			gen = gen[:i]
		}
		r := do(t, ctx, "POST", base+"/v1/chat/completions", `{"model":"stories260K","temperature":0,"max_completion_tokens":30,"messages":`+msgs+`}`)
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		c := decode[testCompletion](t, r)
		if c.Object != "chat.completion" || !strings.HasPrefix(c.ID, "chatcmpl-") || len(c.Choices) != 1 || c.Choices[0].Message == nil ||
			c.Choices[0].Message.Role != "assistant" || c.text() != gen || c.Usage == nil || c.Usage.CompletionTokens == 0 {
			t.Errorf("chat completion %s, want content %q", r.body, gen)
		}
		events, done := stream(t, ctx, base+"/v1/chat/completions", `{"stream":true,"temperature":0,"max_tokens":30,"messages":`+msgs+`}`)
		if !done || len(events) < 2 {
			t.Fatalf("%d events, done %t", len(events), done)
		}
		if d := events[0].Choices[0].Delta; d == nil || d.Role != "assistant" {
			t.Errorf("first chunk %+v, want the assistant role", events[0])
		}
		if got := joined(events); got != gen {
			t.Errorf("streamed chat %q, want %q", got, gen)
		}
		for _, ev := range events {
			if ev.Object != "chat.completion.chunk" {
				t.Errorf("chunk object %q", ev.Object)
			}
		}
		if f := events[len(events)-1].finish(); f != c.finish() || f == "" {
			t.Errorf("streamed finish %q, non-streamed %q", f, c.finish())
		}
	})

	t.Run("errors", func(t *testing.T) { testErrors(t, ctx, base) })

	t.Run("busy", func(t *testing.T) { testBusy(t, ctx, n, base, want) })

	// After every bad request above, the node still serves.
	r := do(t, ctx, "POST", base+"/v1/completions", `{"prompt":"","temperature":0,"max_tokens":200}`)
	if c := decode[testCompletion](t, r); r.status != http.StatusOK || c.text() != want {
		t.Errorf("after the errors: %d %q", r.status, c.text())
	}
}

// testErrors sends bad requests and checks each status and error object.
func testErrors(t *testing.T, ctx context.Context, base string) {
	huge := `{"prompt":"` + strings.Repeat("a", maxBody) + `"}`
	long := strings.Repeat("Once upon a time there was a dog. ", 60)
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		typ, param, code         string
	}{
		{"malformed JSON", "POST", "/v1/completions", `{"prompt":`, 400, typeInvalid, "", "invalid_json"},
		{"not an object", "POST", "/v1/completions", `[1,2]`, 400, typeInvalid, "", ""},
		{"empty body", "POST", "/v1/completions", ``, 400, typeInvalid, "", ""},
		{"wrong type", "POST", "/v1/completions", `{"max_tokens":"ten"}`, 400, typeInvalid, "max_tokens", "invalid_type"},
		{"prompt of token ids", "POST", "/v1/completions", `{"prompt":[1,2,3]}`, 400, typeInvalid, "prompt", "invalid_type"},
		{"two prompts", "POST", "/v1/completions", `{"prompt":["a","b"]}`, 400, typeInvalid, "prompt", "invalid_type"},
		{"n", "POST", "/v1/completions", `{"prompt":"a","n":2}`, 400, typeInvalid, "n", ""},
		{"zero max_tokens", "POST", "/v1/completions", `{"prompt":"a","max_tokens":0}`, 400, typeInvalid, "max_tokens", ""},
		{"temperature", "POST", "/v1/completions", `{"prompt":"a","temperature":3}`, 400, typeInvalid, "temperature", ""},
		{"top_p", "POST", "/v1/completions", `{"prompt":"a","top_p":1.5}`, 400, typeInvalid, "top_p", ""},
		{"five stops", "POST", "/v1/completions", `{"prompt":"a","stop":["a","b","c","d","e"]}`, 400, typeInvalid, "stop", ""},
		{"logprobs", "POST", "/v1/completions", `{"prompt":"a","logprobs":2}`, 400, typeInvalid, "logprobs", ""},
		{"unknown model", "POST", "/v1/completions", `{"model":"gpt-4","prompt":"a"}`, 404, typeNotFound, "model", "model_not_found"},
		{"unknown model, chat", "POST", "/v1/chat/completions", `{"model":"gpt-4","messages":[{"role":"user","content":"hi"}]}`, 404, typeNotFound, "model", "model_not_found"},
		{"unknown model info", "GET", "/v1/models/gpt-4", ``, 404, typeNotFound, "model", "model_not_found"},
		{"context", "POST", "/v1/completions", `{"prompt":"a","max_tokens":600}`, 400, typeInvalid, "", "context_length_exceeded"},
		{"context, streamed", "POST", "/v1/completions", `{"prompt":"a","max_tokens":600,"stream":true}`, 400, typeInvalid, "", "context_length_exceeded"},
		{"long prompt", "POST", "/v1/completions", `{"prompt":"` + long + `"}`, 400, typeInvalid, "", "context_length_exceeded"},
		{"long chat", "POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":"` + long + `"}],"stream":true}`, 400, typeInvalid, "", "context_length_exceeded"},
		{"too large", "POST", "/v1/completions", huge, 413, typeInvalid, "", "request_too_large"},
		{"no messages", "POST", "/v1/chat/completions", `{"messages":[]}`, 400, typeInvalid, "messages", ""},
		{"bad role", "POST", "/v1/chat/completions", `{"messages":[{"role":"wizard","content":"hi"}]}`, 400, typeInvalid, "messages", ""},
		{"image part", "POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":[{"type":"image_url"}]}]}`, 400, typeInvalid, "content", "invalid_type"},
		{"wrong method", "GET", "/v1/completions", ``, 405, typeInvalid, "", "method_not_allowed"},
		{"wrong method, chat", "PUT", "/v1/chat/completions", `{}`, 405, typeInvalid, "", "method_not_allowed"},
		{"unknown path", "GET", "/v1/engines", ``, 404, typeInvalid, "", "not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, ctx, tc.method, base+tc.path, tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			e := decode[testCompletion](t, r).Error
			if e == nil || e.Message == "" || e.Type != tc.typ {
				t.Fatalf("error object %s, want type %s", r.body, tc.typ)
			}
			if got := fmt.Sprint(e.Param); tc.param != "" && got != tc.param || tc.param == "" && e.Param != nil {
				t.Errorf("param %v, want %q", e.Param, tc.param)
			}
			if got := fmt.Sprint(e.Code); tc.code != "" && got != tc.code {
				t.Errorf("code %v, want %q", e.Code, tc.code)
			}
			if tc.status == 405 && r.header.Get("Allow") == "" {
				t.Error("405 without Allow")
			}
		})
	}
}

// testBusy fills the node's request slots with requests that wait inside
// emit, checks that the API answers 429 with Retry-After, then frees them
// and checks that the API serves again.
func testBusy(t *testing.T, ctx context.Context, n *Node, base, want string) {
	release := make(chan struct{})
	var wg sync.WaitGroup
	defer func() {
		close(release)
		wg.Wait()
	}()
	full := false
	for i := 0; i < 4096 && !full; i++ {
		entered := make(chan error, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			once := sync.Once{}
			_, err := n.Generate(ctx, infer.Request{MaxTokens: 4}, func(infer.Token) error {
				once.Do(func() { entered <- nil })
				<-release
				return nil
			})
			once.Do(func() { entered <- err })
		}()
		switch err := <-entered; {
		case errors.Is(err, infer.ErrBusy):
			full = true
		case err != nil:
			t.Fatalf("filling request slots: %v", err)
		}
	}
	if !full {
		t.Fatal("4096 requests ran at once without the entry refusing one")
	}
	for _, body := range []string{`{"prompt":"a"}`, `{"prompt":"a","stream":true}`} {
		r := do(t, ctx, "POST", base+"/v1/completions", body)
		e := decode[testCompletion](t, r).Error
		if r.status != http.StatusTooManyRequests || e == nil || e.Type != typeRateLimit || r.header.Get("Retry-After") == "" {
			t.Errorf("%s while full: %d %s (Retry-After %q), want 429 rate_limit_error", body, r.status, r.body, r.header.Get("Retry-After"))
		}
	}
	r := do(t, ctx, "POST", base+"/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}]}`)
	if r.status != http.StatusTooManyRequests {
		t.Errorf("chat while full: %d %s, want 429", r.status, r.body)
	}
}

// TestHTTPDisconnect drops a client in the middle of a stream: the node
// stops generating, frees the request and serves the next one.
func TestHTTPDisconnect(t *testing.T) {
	ref := reftest.Read(t)
	want := strings.TrimSuffix(ref.Case2Text, "\n")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	logs := newLogRecorder()
	n, base := startRefNode(t, ctx, slog.New(logs))

	rctx, drop := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(rctx, "POST", base+"/v1/completions",
		strings.NewReader(`{"prompt":"","temperature":0,"max_tokens":511,"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "data: {") {
		t.Fatalf("first line %q, %v", line, err)
	}
	drop()
	resp.Body.Close()

	deadline := time.Now().Add(20 * time.Second)
	for n.Status().Requests != 0 || !logs.has("node: HTTP client went away") {
		if time.Now().After(deadline) {
			t.Fatalf("after the client left: %d requests running, disconnect logged %t", n.Status().Requests, logs.has("node: HTTP client went away"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	r := do(t, ctx, "POST", base+"/v1/completions", `{"prompt":"","temperature":0,"max_tokens":200}`)
	if c := decode[testCompletion](t, r); r.status != http.StatusOK || c.text() != want {
		t.Errorf("after the disconnect: %d %q", r.status, c.text())
	}
}

// TestHTTPMesh serves the API from nodes that hold only part of the
// model: three nodes serve blocks 0:2, 2:4 and 4:5 and the API of the
// middle and last ones gives the reference text.
func TestHTTPMesh(t *testing.T) {
	ref := reftest.Read(t)
	want := strings.TrimSuffix(ref.Case2Text, "\n")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var nodes []*Node
	for i, span := range []string{"0:2", "2:4", "4:5"} {
		dir, id := refRepo(t)
		cfg := Config{Repo: dir, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Model: id, Blocks: span,
			AdvertEvery: 300 * time.Millisecond}
		if i > 0 {
			cfg.Bootstrap, cfg.HTTP = nodes[0].Addrs()[:1], "127.0.0.1:0"
		}
		nd, err := Start(ctx, cfg)
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		t.Cleanup(func() { nd.Close() })
		nodes = append(nodes, nd)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !nodes[1].Covered() || !nodes[2].Covered() {
		if time.Now().After(deadline) {
			t.Fatal("the nodes' peer tables do not cover the model after 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, nd := range nodes[1:] {
		base := "http://" + nd.HTTPAddr()
		r := do(t, ctx, "POST", base+"/v1/completions", `{"prompt":"","temperature":0,"max_tokens":200}`)
		if c := decode[testCompletion](t, r); r.status != http.StatusOK || c.text() != want {
			t.Errorf("via %s: %d %s", nd.HTTPAddr(), r.status, bytes.TrimSpace(r.body))
		}
		events, done := stream(t, ctx, base+"/v1/completions", `{"prompt":"","temperature":0,"max_tokens":200,"stream":true}`)
		if got := joined(events); !done || got != want {
			t.Errorf("streamed via %s: %q", nd.HTTPAddr(), got)
		}
		if st := nd.Status(); st.Requests != 0 {
			t.Errorf("%d requests still running after the stream", st.Requests)
		}
	}
}

// TestHTTPNoRoute asks a node that serves only blocks 0:2, alone in its
// mesh, for a completion: 503 with Retry-After, and its API keeps serving.
func TestHTTPNoRoute(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir, id := refRepo(t)
	n, err := Start(ctx, Config{Repo: dir, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Model: id, Blocks: "0:2", HTTP: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	base := "http://" + n.HTTPAddr()
	for _, body := range []string{`{"prompt":"Once upon a time"}`, `{"prompt":"Once","stream":true}`} {
		r := do(t, ctx, "POST", base+"/v1/completions", body)
		e := decode[testCompletion](t, r).Error
		if r.status != http.StatusServiceUnavailable || e == nil || e.Type != typeServer || e.Code != "no_route" || r.header.Get("Retry-After") == "" {
			t.Errorf("%s: %d %s (Retry-After %q), want 503 no_route", body, r.status, r.body, r.header.Get("Retry-After"))
		}
	}
	if r := do(t, ctx, "GET", base+"/v1/models", ""); r.status != http.StatusOK {
		t.Errorf("GET /v1/models after the failures: %d", r.status)
	}
	if st := n.Status(); st.Requests != 0 {
		t.Errorf("%d requests still running", st.Requests)
	}
}

// BenchmarkHTTPCompletion measures greedy generation through the HTTP
// API of one node serving stories260K whole, streamed and not.
func BenchmarkHTTPCompletion(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, _ := refRepo(b)
	n, err := Start(ctx, Config{Repo: dir, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, HTTP: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	base := "http://" + n.HTTPAddr()
	for _, streamed := range []bool{false, true} {
		b.Run(fmt.Sprintf("stream=%t", streamed), func(b *testing.B) {
			body := fmt.Sprintf(`{"prompt":"","temperature":0,"max_tokens":200,"stream":%t}`, streamed)
			tokens := 0
			start := time.Now()
			for b.Loop() {
				resp, err := http.Post(base+"/v1/completions", "application/json", strings.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d, %v", resp.StatusCode, err)
				}
				tokens += 200
			}
			b.ReportMetric(float64(tokens)/time.Since(start).Seconds(), "tok/s")
		})
	}
}
