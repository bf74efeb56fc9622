package node

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-mesh/strata/infer"
	"github.com/strata-mesh/strata/internal/reftest"
	"github.com/strata-mesh/strata/model"
	"github.com/strata-mesh/strata/shards"
)

// openaiVersion reads the openai client version pinned in
// testdata/openai/package.json.
func openaiVersion(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "openai", "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	var pkg struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	if err := json.Unmarshal(raw, &pkg); err != nil {
		t.Fatalf("testdata/openai/package.json: %v", err)
	}
	v := pkg.Dependencies["openai"]
	if v == "" || strings.ContainsAny(v, "^~<>=* ") {
		t.Fatalf("testdata/openai/package.json pins openai at %q; want an exact version", v)
	}
	return v
}

// TestOpenAIClient drives the HTTP API with the official openai npm
// client: a non-streamed and a streamed greedy completion must give
// REFERENCE.md Case 2's text with the right usage counts. It needs node
// and npm, and the npm registry to install the client; without them it
// is skipped.
func TestOpenAIClient(t *testing.T) {
	if testing.Short() {
		t.Skip("installs the openai npm client; skipped with -short")
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("npm is not on PATH; install Node.js to run the openai client test")
	}
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not on PATH; install Node.js to run the openai client test")
	}
	ref := reftest.Read(t)
	want := strings.TrimSuffix(ref.Case2Text, "\n")
	version := openaiVersion(t)

	prefix := t.TempDir()
	ictx, icancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer icancel()
	install := exec.CommandContext(ictx, npm, "install", "--prefix", prefix, "--no-audit", "--no-fund", "--no-save",
		"openai@"+version)
	install.Env = append(os.Environ(), "npm_config_update_notifier=false")
	if out, err := install.CombinedOutput(); err != nil {
		t.Skipf("npm install openai@%s failed (is the npm registry reachable?): %v\n%s", version, err, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n, base := startRefNode(t, ctx, nil)
	script, err := filepath.Abs(filepath.Join("testdata", "openai", "client.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, nodeBin, script, base+"/v1", prefix)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node client.mjs: %v\n%s", err, stderr.Bytes())
	}
	var got struct {
		Model string `json:"model"`
		Plain struct {
			Text   string `json:"text"`
			Finish string `json:"finish"`
			Usage  usage  `json:"usage"`
		} `json:"plain"`
		Stream struct {
			Text   string `json:"text"`
			Finish string `json:"finish"`
			Usage  *usage `json:"usage"`
			Chunks int    `json:"chunks"`
		} `json:"stream"`
		Chat struct {
			Text     string `json:"text"`
			Streamed string `json:"streamed"`
			Finish   string `json:"finish"`
		} `json:"chat"`
		ErrorStatus int `json:"errorStatus"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("client output %q: %v\n%s", out, err, stderr.Bytes())
	}
	if got.Model != n.Model() {
		t.Errorf("models.list()[0].id = %q, want %s", got.Model, n.Model())
	}
	wantUsage := usage{PromptTokens: 1, CompletionTokens: 200, TotalTokens: 201}
	if got.Plain.Text != want || got.Plain.Finish != "length" || got.Plain.Usage != wantUsage {
		t.Errorf("completion: text %q, finish %q, usage %+v; want the reference, length, %+v",
			got.Plain.Text, got.Plain.Finish, got.Plain.Usage, wantUsage)
	}
	if got.Stream.Text != want || got.Stream.Finish != "length" || got.Stream.Usage == nil || *got.Stream.Usage != wantUsage {
		t.Errorf("streamed completion: text %q, finish %q, usage %+v; want the reference, length, %+v",
			got.Stream.Text, got.Stream.Finish, got.Stream.Usage, wantUsage)
	}
	if got.Stream.Chunks != 202 { // 200 pieces, the finish chunk, the usage chunk
		t.Errorf("streamed completion: %d chunks, want 202", got.Stream.Chunks)
	}
	_, chat := generated(t, ctx, n, infer.Request{Prompt: "User: Tell me a story.\nAssistant:", MaxTokens: 20})
	if i := strings.Index(chat, chatStop); i >= 0 {
		chat = chat[:i]
	}
	if got.Chat.Text != chat || got.Chat.Streamed != chat || got.Chat.Finish == "" {
		t.Errorf("chat: %q, streamed %q, finish %q; want %q", got.Chat.Text, got.Chat.Streamed, got.Chat.Finish, chat)
	}
	if got.ErrorStatus != 404 {
		t.Errorf("unknown model: the client saw status %d, want 404", got.ErrorStatus)
	}
}

// cutAt is the stopper's contract on whole text: cut at the occurrence of
// a stop sequence that ends first, the longest if several end there.
func cutAt(text string, stops []string) (string, bool) {
	cut, end := -1, -1
	for _, x := range stops {
		if x == "" {
			continue
		}
		i := strings.Index(text, x)
		if i >= 0 && (cut < 0 || i+len(x) < end || i+len(x) == end && i < cut) {
			cut, end = i, i+len(x)
		}
	}
	if cut < 0 {
		return text, false
	}
	return text[:cut], true
}

// runStopper feeds text to a stopper in pieces of the given lengths and
// returns what it passed on.
func runStopper(text string, stops []string, lens []int) (string, bool) {
	s := stopper{stops: stops}
	var out strings.Builder
	for _, l := range lens {
		piece := text[:min(l, len(text))]
		text = text[len(piece):]
		got, hit := s.add(piece)
		out.WriteString(got)
		if hit {
			return out.String(), true
		}
	}
	out.WriteString(s.flush())
	return out.String(), false
}

func TestStopper(t *testing.T) {
	for _, tc := range []struct {
		text  string
		stops []string
		lens  []int
		want  string
		hit   bool
	}{
		{"Once upon a time", nil, []int{4, 5, 7}, "Once upon a time", false},
		{"Once upon a time", []string{"upon"}, []int{4, 5, 7}, "Once ", true},
		{"Once upon a time", []string{"pon a"}, []int{6, 1, 1, 1, 1, 6}, "Once u", true},
		{"Once upon a time", []string{"time!"}, []int{4, 12}, "Once upon a time", false},
		{"abcd", []string{"abcd", "bc"}, []int{2, 2}, "a", true},
		{"abcd", []string{"abcd", "bc"}, []int{3, 1}, "a", true},
		{"abab", []string{"bab", "ab"}, []int{1, 1, 1, 1}, "", true},
		{"xyz", []string{"yz", "xyz"}, []int{3}, "", true},
	} {
		got, hit := runStopper(tc.text, tc.stops, tc.lens)
		if got != tc.want || hit != tc.hit {
			t.Errorf("%q stops %q pieces %v: got %q, %t; want %q, %t", tc.text, tc.stops, tc.lens, got, hit, tc.want, tc.hit)
		}
	}
}

// FuzzStopper checks that the stopper gives the whole-text cut however
// the text is split into pieces.
func FuzzStopper(f *testing.F) {
	f.Add("Once upon a time, there was a little girl", "girl", "a t", uint64(1))
	f.Add("abcd", "abcd", "bc", uint64(7))
	f.Add("aaaa", "aa", "", uint64(3))
	f.Add("", "x", "y", uint64(0))
	f.Fuzz(func(t *testing.T, text, stop1, stop2 string, seed uint64) {
		stops := []string{stop1, stop2}
		rng := rand.New(rand.NewPCG(seed, 1))
		var lens []int
		for rest := len(text); rest > 0; {
			l := rng.IntN(min(rest, 8) + 1) // empty pieces too
			lens = append(lens, l)
			rest -= l
		}
		var kept []string
		for _, x := range stops {
			if x != "" {
				kept = append(kept, x)
			}
		}
		want, wantHit := cutAt(text, kept)
		got, hit := runStopper(text, kept, lens)
		if got != want || hit != wantHit {
			t.Errorf("%q stops %q pieces %v: got %q, %t; want %q, %t", text, kept, lens, got, hit, want, wantHit)
		}
	})
}

// fuzzNode is a node with a model but no loaded blocks: every request the
// API accepts ends at generation with 503, so the fuzzer exercises
// decoding and validation without a mesh.
func fuzzNode() *Node {
	cfg := model.Config{Dim: 8, HiddenDim: 16, NLayers: 1, NHeads: 2, NKVHeads: 2, VocabSize: 32, SeqLen: 64}
	n := &Node{log: slog.New(slog.DiscardHandler)}
	n.v.Store(&version{id: "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
		man: &shards.Manifest{Name: "tiny", Config: cfg}})
	return n
}

// FuzzOpenAIRequest sends arbitrary bodies to the completion endpoints.
// Every answer must be an error object with a status the API documents
// (the node serves no blocks, so none can succeed), and every request
// that passes validation must be one infer accepts.
func FuzzOpenAIRequest(f *testing.F) {
	for _, seed := range []string{
		`{"prompt":"","temperature":0,"max_tokens":200}`,
		`{"model":"tiny","prompt":["Once"],"stop":["a","b"],"echo":true,"stream":true,"stream_options":{"include_usage":true}}`,
		`{"prompt":[1,2],"n":2,"top_p":0,"seed":-5}`,
		`{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":null}],"max_completion_tokens":3}`,
		`{"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"temperature":2.5}`,
		`{"prompt":`, `null`, `[]`, `{"max_tokens":1e99}`, `{"stop":[1]}`,
	} {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	n := fuzzNode()
	h := n.apiHandler()
	f.Fuzz(func(t *testing.T, body string, chat bool) {
		path := "/v1/completions"
		if chat {
			path = "/v1/chat/completions"
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, path, strings.NewReader(body)))
		switch w.Code {
		case http.StatusBadRequest, http.StatusNotFound, http.StatusRequestEntityTooLarge, http.StatusServiceUnavailable:
		default:
			t.Fatalf("status %d for %q: %s", w.Code, body, w.Body.Bytes())
		}
		var e struct {
			Error *apiError `json:"error"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == nil || e.Error.Message == "" || e.Error.Type == "" {
			t.Fatalf("not an error object for %q: %s", body, w.Body.Bytes())
		}

		// What passes validation is a request infer takes.
		var req infer.Request
		var stops []string
		var ae *apiError
		if chat {
			var cr chatRequest
			if json.Unmarshal([]byte(body), &cr) != nil {
				return
			}
			if req, stops, ae = n.prepare(&cr.sampling, cr.MaxTokens, 0); ae == nil {
				req.Prompt, _, ae = chatPrompt("", cr.Messages)
			}
			if ae == nil && !strings.HasSuffix(req.Prompt, "Assistant:") {
				t.Errorf("chat prompt %q does not end with the assistant's turn", req.Prompt)
			}
			if ae == nil {
				p, ends, e := chatPrompt(model.ChatML, cr.Messages)
				if e != nil || !strings.HasSuffix(p, "<|im_start|>assistant\n") || len(ends) == 0 {
					t.Errorf("ChatML prompt %q, stops %q, error %v: want the assistant's turn opened", p, ends, e)
				}
			}
		} else {
			var cr completionRequest
			if json.Unmarshal([]byte(body), &cr) != nil {
				return
			}
			req, stops, ae = n.prepare(&cr.sampling, cr.MaxTokens, 16)
			req.Prompt = string(cr.Prompt)
		}
		if ae != nil {
			return
		}
		if w.Code != http.StatusServiceUnavailable && w.Code != http.StatusBadRequest {
			t.Errorf("valid request %q answered %d", body, w.Code)
		}
		if len(req.Prompt) <= 1<<20 {
			if err := req.Validate(); err != nil {
				t.Errorf("prepared request %+v: %v", req, err)
			}
		}
		if req.Model != n.ver().id || len(stops) > maxStops {
			t.Errorf("prepared request %+v, stops %q", req, stops)
		}
	})
}
