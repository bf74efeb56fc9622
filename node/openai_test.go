package node

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-mesh/strata/infer"
	"github.com/strata-mesh/strata/internal/reftest"
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
		"--engine-strict=false", "openai@"+version)
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
