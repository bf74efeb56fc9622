package node

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/strata-mesh/strata/infer"
	"github.com/strata-mesh/strata/model"
)

// The OpenAI-compatible API. Requests enter the mesh through Node.Generate,
// the path `strata generate` takes too, so this node is the entry peer.
//
// Token counts follow OpenAI: usage.prompt_tokens is the number of prompt
// tokens the model ran, which here includes the BOS token every prompt
// starts with (an empty prompt counts 1); usage.completion_tokens counts
// the generated tokens, the one holding a stop sequence included.

// Limits on OpenAI request fields.
const (
	maxStops       = 4   // stop sequences, as OpenAI allows
	maxStopLen     = 256 // bytes in one stop sequence
	maxChatEntries = 1024
)

// errStopSequence ends generation when a stop sequence appears.
var errStopSequence = errors.New("node: stop sequence reached")

// errClient marks a failure to write to the HTTP client: it went away.
var errClient = errors.New("node: HTTP client connection lost")

// fieldError is a request field with a valid JSON type but a shape this
// API does not take.
type fieldError struct{ field, msg string }

func (e *fieldError) Error() string { return fmt.Sprintf("field %q: %s", e.field, e.msg) }

// promptField is a completion prompt: a string, or an array holding one
// string. Token-id prompts and batches are not supported.
type promptField string

func (p *promptField) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		*p = promptField(s)
		return nil
	}
	var arr []json.RawMessage
	if json.Unmarshal(b, &arr) != nil {
		return &fieldError{"prompt", "must be a string or an array of one string"}
	}
	if len(arr) != 1 {
		return &fieldError{"prompt", fmt.Sprintf("an array of %d prompts; this API takes exactly one", len(arr))}
	}
	if json.Unmarshal(arr[0], &s) != nil {
		return &fieldError{"prompt", "token-id prompts are not supported; send the text"}
	}
	*p = promptField(s)
	return nil
}

// stopField is OpenAI's stop: a string or an array of strings.
type stopField []string

func (f *stopField) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*f = nil
		return nil
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		*f = stopField{s}
		return nil
	}
	var arr []string
	if json.Unmarshal(b, &arr) != nil {
		return &fieldError{"stop", "must be a string or an array of strings"}
	}
	*f = arr
	return nil
}

// chatContent is a message's content: a string, or an array of parts of
// which only text parts are supported.
type chatContent string

func (c *chatContent) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		*c = chatContent(s)
		return nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(b, &parts) != nil {
		return &fieldError{"content", "must be a string or an array of text parts"}
	}
	var sb strings.Builder
	for _, p := range parts {
		if p.Type != "text" {
			return &fieldError{"content", fmt.Sprintf("content part of type %q is not supported; only text", p.Type)}
		}
		sb.WriteString(p.Text)
	}
	*c = chatContent(sb.String())
	return nil
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// sampling holds the fields completions and chat completions share.
type sampling struct {
	Model         string         `json:"model"`
	MaxTokens     *int           `json:"max_tokens"`
	Temperature   *float64       `json:"temperature"`
	TopP          *float64       `json:"top_p"`
	Seed          *int64         `json:"seed"`
	Stream        bool           `json:"stream"`
	StreamOptions *streamOptions `json:"stream_options"`
	N             *int           `json:"n"`
	Stop          stopField      `json:"stop"`
}

type completionRequest struct {
	sampling
	Prompt   promptField `json:"prompt"`
	Echo     bool        `json:"echo"`
	Logprobs *int        `json:"logprobs"`
	BestOf   *int        `json:"best_of"`
	Suffix   *string     `json:"suffix"`
}

type chatMessage struct {
	Role    string      `json:"role"`
	Content chatContent `json:"content"`
}

type chatRequest struct {
	sampling
	Messages            []chatMessage `json:"messages"`
	MaxCompletionTokens *int          `json:"max_completion_tokens"`
	Logprobs            *bool         `json:"logprobs"`
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

type completionChoice struct {
	Text         string  `json:"text"`
	Index        int     `json:"index"`
	Logprobs     any     `json:"logprobs"`
	FinishReason *string `json:"finish_reason"`
}

type completionObject struct {
	ID      string             `json:"id"`
	Object  string             `json:"object"`
	Created int64              `json:"created"`
	Model   string             `json:"model"`
	Choices []completionChoice `json:"choices"`
	Usage   *usage             `json:"usage,omitempty"`
}

type chatDelta struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

type chatChoice struct {
	Index        int          `json:"index"`
	Message      *chatMessage `json:"message,omitempty"`
	Delta        *chatDelta   `json:"delta,omitempty"`
	Logprobs     any          `json:"logprobs"`
	FinishReason *string      `json:"finish_reason"`
}

type chatObject struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   *usage       `json:"usage,omitempty"`
}

// modelObject is one entry of /v1/models. Name is the manifest's name,
// which requests may use in place of the CID.
type modelObject struct {
	ID            string `json:"id"`
	Object        string `json:"object"`
	Created       int64  `json:"created"`
	OwnedBy       string `json:"owned_by"`
	Name          string `json:"name,omitempty"`
	ContextLength int    `json:"context_length,omitempty"`
	Layers        int    `json:"layers,omitempty"`
}

// handleModels lists the model this node serves (none if it serves none).
func (n *Node) handleModels(w http.ResponseWriter, r *http.Request) {
	data := []modelObject{}
	if m, ok := n.modelObject(); ok {
		data = append(data, m)
	}
	writeJSON(w, http.StatusOK, struct {
		Object string        `json:"object"`
		Data   []modelObject `json:"data"`
	}{"list", data})
}

// handleModel describes one model, by CID or name.
func (n *Node) handleModel(w http.ResponseWriter, r *http.Request) {
	if _, e := n.modelFor(r.PathValue("id")); e != nil {
		writeError(w, e)
		return
	}
	m, _ := n.modelObject()
	writeJSON(w, http.StatusOK, m)
}

func (n *Node) modelObject() (modelObject, bool) {
	if n.ver().id == "" || n.ver().man == nil {
		return modelObject{}, false
	}
	return modelObject{
		ID: n.ver().id, Object: "model", Created: n.started.Unix(), OwnedBy: "strata",
		Name: n.ver().man.Name, ContextLength: n.ver().man.Config.SeqLen, Layers: n.ver().man.Config.NLayers,
	}, true
}

// modelFor resolves a requested model, its CID or manifest name ("" is
// this node's model), to the CID.
func (n *Node) modelFor(name string) (string, *apiError) {
	if n.ver().id == "" || n.ver().man == nil {
		return "", &apiError{Status: http.StatusNotFound, Type: typeNotFound, Code: "model_not_found", Param: "model",
			Message: "this node serves no model"}
	}
	if name == "" || name == n.ver().id || name == n.ver().man.Name {
		return n.ver().id, nil
	}
	return "", &apiError{Status: http.StatusNotFound, Type: typeNotFound, Code: "model_not_found", Param: "model",
		Message: fmt.Sprintf("model %q is not served by this node; it serves %s (%q), see GET /v1/models", name, n.ver().id, n.ver().man.Name)}
}

// prepare checks the shared fields and turns them into an infer.Request
// without its prompt. maxTokens is the default for max_tokens (0: until
// the context is full).
func (n *Node) prepare(s *sampling, maxTokens *int, defaultMax int) (infer.Request, []string, *apiError) {
	bad := func(param, format string, a ...any) (infer.Request, []string, *apiError) {
		return infer.Request{}, nil, &apiError{Status: http.StatusBadRequest, Type: typeInvalid, Param: param,
			Message: fmt.Sprintf(format, a...)}
	}
	id, e := n.modelFor(s.Model)
	if e != nil {
		return infer.Request{}, nil, e
	}
	req := infer.Request{Model: id, MaxTokens: defaultMax, Temperature: 1, TopP: 1}
	if s.N != nil && *s.N != 1 {
		return bad("n", "n = %d: only one choice per request is supported", *s.N)
	}
	if maxTokens != nil {
		if *maxTokens < 1 {
			return bad("max_tokens", "max_tokens = %d: must be at least 1", *maxTokens)
		}
		req.MaxTokens = *maxTokens
	}
	if t := s.Temperature; t != nil {
		if !(*t >= 0 && *t <= 2) {
			return bad("temperature", "temperature %g is outside [0, 2]", *t)
		}
		req.Temperature = float32(*t)
	}
	if p := s.TopP; p != nil {
		if !(*p >= 0 && *p <= 1) {
			return bad("top_p", "top_p %g is outside [0, 1]", *p)
		}
		req.TopP = float32(*p)
		if *p == 0 { // the nucleus holds only the most likely token
			req.Temperature = 0
		}
	}
	if s.Seed != nil {
		req.Seed = uint64(*s.Seed)
	} else {
		req.Seed = mrand.Uint64()
	}
	var stops []string
	for _, x := range s.Stop {
		if len(x) > maxStopLen {
			return bad("stop", "a stop sequence of %d bytes exceeds %d", len(x), maxStopLen)
		}
		if x != "" {
			stops = append(stops, x)
		}
	}
	if len(stops) > maxStops {
		return bad("stop", "%d stop sequences; at most %d", len(stops), maxStops)
	}
	return req, stops, nil
}

// handleCompletions serves POST /v1/completions.
func (n *Node) handleCompletions(w http.ResponseWriter, r *http.Request) {
	var cr completionRequest
	if e := readJSON(w, r, &cr); e != nil {
		writeError(w, e)
		return
	}
	req, stops, e := n.prepare(&cr.sampling, cr.MaxTokens, 16)
	switch {
	case e != nil:
	case cr.Logprobs != nil && *cr.Logprobs > 0:
		e = &apiError{Status: http.StatusBadRequest, Type: typeInvalid, Param: "logprobs", Message: "logprobs are not supported"}
	case cr.BestOf != nil && *cr.BestOf != 1:
		e = &apiError{Status: http.StatusBadRequest, Type: typeInvalid, Param: "best_of", Message: "best_of other than 1 is not supported"}
	case cr.Suffix != nil && *cr.Suffix != "":
		e = &apiError{Status: http.StatusBadRequest, Type: typeInvalid, Param: "suffix", Message: "suffix is not supported"}
	}
	if e != nil {
		writeError(w, e)
		return
	}
	req.Prompt = string(cr.Prompt)
	obj := completionObject{ID: "cmpl-" + rand.Text(), Object: "text_completion", Created: time.Now().Unix(), Model: req.Model}
	choice := func(text string, finish *string) []completionChoice {
		return []completionChoice{{Text: text, FinishReason: finish}}
	}
	ctx := r.Context()
	if !cr.Stream {
		var text strings.Builder
		finish, u, err := n.complete(ctx, req, cr.Echo, stops, func(s string) error { text.WriteString(s); return nil })
		if err != nil {
			n.fail(w, r, nil, err)
			return
		}
		obj.Choices, obj.Usage = choice(text.String(), &finish), &u
		writeJSON(w, http.StatusOK, obj)
		return
	}
	s := &sse{w: w}
	finish, u, err := n.complete(ctx, req, cr.Echo, stops, func(text string) error {
		obj.Choices = choice(text, nil)
		return s.send(obj)
	})
	if err != nil {
		n.fail(w, r, s, err)
		return
	}
	obj.Choices = choice("", &finish)
	err = s.send(obj)
	if err == nil && cr.StreamOptions != nil && cr.StreamOptions.IncludeUsage {
		obj.Choices, obj.Usage = []completionChoice{}, &u
		err = s.send(obj)
	}
	if err == nil {
		err = s.done()
	}
	if err != nil {
		n.log.Debug("node: HTTP stream ended early", "path", r.URL.Path, "err", err)
	}
}

// chatStop ends a chat reply where the model starts the user's next turn.
const chatStop = "\nUser:"

// chatPrompt renders messages in the model's chat format (model.RenderChat)
// when its tokenizer has one, and otherwise with the plain template used
// for models without a chat template of their own: each message becomes
// "<Role>: <content>\n", with the role capitalised (System, Developer,
// User, Assistant, Tool), and the prompt ends with "Assistant:" for the
// model to continue. It returns the prompt and the strings that end the
// reply: the format's end-of-turn markers, or "\nUser:", where the model
// would begin the next user turn.
func chatPrompt(format string, msgs []chatMessage) (string, []string, *apiError) {
	bad := func(f string, a ...any) (string, []string, *apiError) {
		return "", nil, &apiError{Status: http.StatusBadRequest, Type: typeInvalid, Param: "messages", Message: fmt.Sprintf(f, a...)}
	}
	if len(msgs) == 0 {
		return bad("messages is empty; send at least one message")
	}
	if len(msgs) > maxChatEntries {
		return bad("%d messages exceed the limit of %d", len(msgs), maxChatEntries)
	}
	ms := make([]model.ChatMessage, len(msgs))
	for i, m := range msgs {
		switch m.Role {
		case "system", "developer", "user", "assistant", "tool":
		default:
			return bad("messages[%d]: unknown role %q; use system, developer, user, assistant or tool", i, m.Role)
		}
		ms[i] = model.ChatMessage{Role: m.Role, Content: string(m.Content)}
	}
	if format != "" {
		prompt, stops, err := model.RenderChat(format, ms)
		if err != nil {
			return "", nil, &apiError{Status: http.StatusInternalServerError, Type: typeServer, Message: err.Error()}
		}
		return prompt, stops, nil
	}
	var sb strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&sb, "%s%s: %s\n", strings.ToUpper(m.Role[:1]), m.Role[1:], m.Content)
	}
	sb.WriteString("Assistant:")
	return sb.String(), []string{chatStop}, nil
}

// handleChat serves POST /v1/chat/completions with the template of
// chatPrompt.
func (n *Node) handleChat(w http.ResponseWriter, r *http.Request) {
	var cr chatRequest
	if e := readJSON(w, r, &cr); e != nil {
		writeError(w, e)
		return
	}
	maxTokens := cr.MaxTokens
	if cr.MaxCompletionTokens != nil {
		maxTokens = cr.MaxCompletionTokens
	}
	req, stops, e := n.prepare(&cr.sampling, maxTokens, 0)
	if e == nil && cr.Logprobs != nil && *cr.Logprobs {
		e = &apiError{Status: http.StatusBadRequest, Type: typeInvalid, Param: "logprobs", Message: "logprobs are not supported"}
	}
	var ends []string
	if e == nil {
		var format string
		if tok := n.ver().tok; tok != nil {
			format = tok.Chat()
		}
		req.Prompt, ends, e = chatPrompt(format, cr.Messages)
	}
	if e != nil {
		writeError(w, e)
		return
	}
	stops = append(stops, ends...)
	obj := chatObject{ID: "chatcmpl-" + rand.Text(), Object: "chat.completion", Created: time.Now().Unix(), Model: req.Model}
	ctx := r.Context()
	if !cr.Stream {
		var text strings.Builder
		finish, u, err := n.complete(ctx, req, false, stops, func(s string) error { text.WriteString(s); return nil })
		if err != nil {
			n.fail(w, r, nil, err)
			return
		}
		msg := &chatMessage{Role: "assistant", Content: chatContent(text.String())}
		obj.Choices, obj.Usage = []chatChoice{{Message: msg, FinishReason: &finish}}, &u
		writeJSON(w, http.StatusOK, obj)
		return
	}
	obj.Object = "chat.completion.chunk"
	s := &sse{w: w}
	delta := func(d chatDelta, finish *string) error {
		obj.Choices = []chatChoice{{Delta: &d, FinishReason: finish}}
		return s.send(obj)
	}
	finish, u, err := n.complete(ctx, req, false, stops, func(text string) error {
		if !s.started {
			empty := ""
			if err := delta(chatDelta{Role: "assistant", Content: &empty}, nil); err != nil {
				return err
			}
		}
		return delta(chatDelta{Content: &text}, nil)
	})
	if err != nil {
		n.fail(w, r, s, err)
		return
	}
	if !s.started { // nothing was generated: the role still comes first
		empty := ""
		err = delta(chatDelta{Role: "assistant", Content: &empty}, nil)
	}
	if err == nil {
		err = delta(chatDelta{}, &finish)
	}
	if err == nil && cr.StreamOptions != nil && cr.StreamOptions.IncludeUsage {
		obj.Choices, obj.Usage = []chatChoice{}, &u
		err = s.send(obj)
	}
	if err == nil {
		err = s.done()
	}
	if err != nil {
		n.log.Debug("node: HTTP stream ended early", "path", r.URL.Path, "err", err)
	}
}

// complete runs req through the mesh with this node as the entry and
// passes the text to out in order: the prompt first if echo (in one piece,
// together with the first generated piece), then the generated pieces as
// they are, cut at the first stop sequence. A character whose bytes come
// in several tokens (byte-level BPE, SentencePiece byte fallback) is
// passed on whole once its last byte arrives, so streamed chunks never
// end inside a character; an unfinished one at the end of generation is
// passed on as it is. It returns the OpenAI finish
// reason: "stop" for the model's end of text or a stop sequence, "length"
// for max_tokens or the context.
func (n *Node) complete(ctx context.Context, req infer.Request, echo bool, stops []string, out func(string) error) (string, usage, error) {
	n.mu.Lock()
	serving := n.infer != nil
	n.mu.Unlock()
	if !serving {
		return "", usage{}, &apiError{Status: http.StatusServiceUnavailable, Type: typeServer, Code: "model_loading", RetryAfter: 5,
			Message: fmt.Sprintf("this node is still loading model %s; try again shortly", n.ver().id)}
	}
	tok := n.ver().tok
	cut := stopper{stops: stops}
	var (
		echoed strings.Builder
		hold   utf8Hold
	)
	generated := 0
	// send passes s on without a UTF-8 sequence cut at its end (a
	// character split over byte tokens), which waits for its other bytes;
	// the last call, final, passes on whatever is held.
	send := func(s string, final bool) error {
		if echoed.Len() > 0 {
			s = echoed.String() + s
			echoed.Reset()
		}
		s = hold.add(s)
		if final {
			s += hold.flush()
		}
		if s == "" {
			return nil
		}
		if err := out(s); err != nil {
			return fmt.Errorf("%w: %w", errClient, err)
		}
		return nil
	}
	st, err := n.Generate(ctx, req, func(tk infer.Token) error {
		if err := ctx.Err(); err != nil { // the client went away
			return err
		}
		piece := tk.Piece
		if len(piece) == 0 && tok != nil {
			// A SentencePiece byte-fallback token of a multi-byte
			// character: the printed piece drops the lone byte, as run.c
			// does; here it is text.
			if b := tok.Decode(-1, tk.ID); len(b) == 1 && b[0] >= utf8.RuneSelf {
				piece = []byte(b)
			}
		}
		if tk.Prompt {
			if echo {
				echoed.Write(piece)
			}
			return nil
		}
		generated++
		text, hit := cut.add(string(piece))
		if err := send(text, hit); err != nil {
			return err
		}
		if hit {
			return errStopSequence
		}
		return nil
	})
	u := usage{PromptTokens: st.PromptTokens, CompletionTokens: generated, TotalTokens: st.PromptTokens + generated}
	switch {
	case errors.Is(err, errStopSequence):
		return "stop", u, nil
	case err != nil:
		return "", u, err
	}
	if err := send(cut.flush(), true); err != nil {
		return "", u, err
	}
	if st.Stop == infer.StopBOS {
		return "stop", u, nil
	}
	return "length", u, nil
}

// fail reports a failed request: as an error object with its status if
// nothing was sent yet, else as an SSE error event that ends the stream.
// A client that went away gets nothing.
func (n *Node) fail(w http.ResponseWriter, r *http.Request, s *sse, err error) {
	if r.Context().Err() != nil || errors.Is(err, errClient) {
		n.log.Debug("node: HTTP client went away", "path", r.URL.Path, "err", err)
		return
	}
	e := errorOf(err)
	if e.Status >= 500 {
		n.log.Warn("node: HTTP request failed", "path", r.URL.Path, "status", e.Status, "err", err)
	} else {
		n.log.Debug("node: HTTP request refused", "path", r.URL.Path, "status", e.Status, "err", err)
	}
	if s == nil || !s.started {
		writeError(w, e)
		return
	}
	_ = s.send(e.body())
}

// stopper cuts generated text at the first of its stop sequences to end
// in the text. It
// holds back the end of the text while it could still be the start of a
// stop sequence, so a sequence split across pieces is found too.
type stopper struct {
	stops []string
	pend  string
}

// add takes the next piece and returns the text that is safe to pass on,
// and whether a stop sequence was reached (the text then ends before it).
func (s *stopper) add(piece string) (string, bool) {
	if len(s.stops) == 0 {
		return piece, false
	}
	s.pend += piece
	// Cut at the occurrence that ends first (then the longest): the text
	// is passed on as soon as no stop sequence can begin in it, so this is
	// the occurrence seen first however the text is split into pieces.
	cut, end := -1, -1
	for _, x := range s.stops {
		i := strings.Index(s.pend, x)
		if i >= 0 && (cut < 0 || i+len(x) < end || i+len(x) == end && i < cut) {
			cut, end = i, i+len(x)
		}
	}
	if cut >= 0 {
		out := s.pend[:cut]
		s.pend = ""
		return out, true
	}
	keep := 0
	for _, x := range s.stops {
		for k := min(len(x)-1, len(s.pend)); k > keep; k-- {
			if strings.HasSuffix(s.pend, x[:k]) {
				keep = k
				break
			}
		}
	}
	out := s.pend[:len(s.pend)-keep]
	s.pend = s.pend[len(s.pend)-keep:]
	return out, false
}

// flush returns the text held back when generation ends.
func (s *stopper) flush() string {
	out := s.pend
	s.pend = ""
	return out
}

// utf8Hold holds back the end of a byte stream while it is the start of
// a UTF-8 sequence still missing bytes, so text cut between tokens
// inside a character goes out whole: a JSON encoder would turn each
// part into U+FFFD. Bytes that cannot start or continue a valid sequence
// pass straight on, so nothing is held for long.
type utf8Hold struct{ pend string }

// add takes the next bytes and returns those that are safe to pass on.
func (h *utf8Hold) add(s string) string {
	if h.pend != "" {
		s = h.pend + s
	}
	cut := incompleteUTF8(s)
	h.pend = s[cut:]
	return s[:cut]
}

// flush returns the bytes held back when the stream ends.
func (h *utf8Hold) flush() string {
	out := h.pend
	h.pend = ""
	return out
}

// incompleteUTF8 returns where a UTF-8 sequence that is valid so far but
// short of bytes begins at the end of s, or len(s) if there is none.
func incompleteUTF8(s string) int {
	for i := len(s) - 1; i >= 0 && i > len(s)-utf8.UTFMax; i-- {
		if utf8.RuneStart(s[i]) {
			if utf8.FullRuneInString(s[i:]) {
				return len(s)
			}
			return i
		}
	}
	return len(s)
}

// sse writes a server-sent event stream; the headers go out with the
// first event, so an error before it still gets its HTTP status.
type sse struct {
	w       http.ResponseWriter
	started bool
}

func (s *sse) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("node: encoding an event: %w", err)
	}
	return s.write("data: " + string(b) + "\n\n")
}

func (s *sse) done() error { return s.write("data: [DONE]\n\n") }

func (s *sse) write(event string) error {
	if !s.started {
		h := s.w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no")
		s.w.WriteHeader(http.StatusOK)
		s.started = true
	}
	if _, err := s.w.Write([]byte(event)); err != nil {
		return err
	}
	return http.NewResponseController(s.w).Flush()
}
