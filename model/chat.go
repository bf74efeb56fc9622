package model

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Chat formats: the prompt layouts of instruction-tuned models that
// RenderChat knows. A model's own chat template (Jinja, in GGUF metadata
// "tokenizer.chat_template" or Hugging Face tokenizer_config.json) is not
// run; DetectChat recognises the family it belongs to by its markers, as
// the layouts below are fixed per family.
const (
	// ChatML: "<|im_start|>ROLE\nCONTENT<|im_end|>\n" per message (Qwen2,
	// Qwen2.5 and many fine-tunes).
	ChatML = "chatml"
	// ChatLlama3: "<|start_header_id|>ROLE<|end_header_id|>\n\nCONTENT<|eot_id|>"
	// per message, after the BOS the tokenizer adds (Llama 3.x Instruct).
	ChatLlama3 = "llama3"
)

// chatMarkers are the strings each format needs as single special tokens.
var chatMarkers = map[string][]string{
	ChatML:     {"<|im_start|>", "<|im_end|>"},
	ChatLlama3: {"<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"},
}

// MaxChatTemplate bounds a chat template read from a model's files.
const MaxChatTemplate = 1 << 20

// DetectChat returns the chat format a Jinja chat template belongs to, or
// "" if it is none RenderChat knows.
func DetectChat(template string) string {
	switch {
	case strings.Contains(template, "<|im_start|>") && strings.Contains(template, "<|im_end|>"):
		return ChatML
	case strings.Contains(template, "<|start_header_id|>") && strings.Contains(template, "<|eot_id|>"):
		return ChatLlama3
	}
	return ""
}

// Chat returns the tokenizer's chat format, "" if it has none.
func (t *Tokenizer) Chat() string { return t.chat }

// SetChat sets the chat format: "" for none, or a format whose markers are
// each one special token of this tokenizer (ErrTokenizer otherwise).
func (t *Tokenizer) SetChat(format string) error {
	if format == "" {
		t.chat = ""
		return nil
	}
	markers, ok := chatMarkers[format]
	if !ok {
		return fmt.Errorf("%w: unknown chat format %.32q", ErrTokenizer, format)
	}
	for _, m := range markers {
		if t.bpe == nil || len(t.Encode(m, false, false)) != 1 {
			return fmt.Errorf("%w: chat format %s needs %s as a special token, which this tokenizer lacks",
				ErrTokenizer, format, m)
		}
	}
	t.chat = format
	return nil
}

// ChatMessage is one message of a conversation.
type ChatMessage struct {
	Role    string // system, user, assistant, …
	Content string
}

// RenderChat lays msgs out in format and opens the assistant's turn. It
// returns the prompt and the strings that end the reply (the end-of-turn
// marker, which is also a stop token, and the start of a next turn).
func RenderChat(format string, msgs []ChatMessage) (prompt string, stops []string, err error) {
	var sb strings.Builder
	switch format {
	case ChatML:
		for _, m := range msgs {
			fmt.Fprintf(&sb, "<|im_start|>%s\n%s<|im_end|>\n", m.Role, m.Content)
		}
		sb.WriteString("<|im_start|>assistant\n")
		return sb.String(), []string{"<|im_end|>", "<|im_start|>"}, nil
	case ChatLlama3:
		for _, m := range msgs {
			fmt.Fprintf(&sb, "<|start_header_id|>%s<|end_header_id|>\n\n%s<|eot_id|>", m.Role, strings.TrimSpace(m.Content))
		}
		sb.WriteString("<|start_header_id|>assistant<|end_header_id|>\n\n")
		return sb.String(), []string{"<|eot_id|>", "<|start_header_id|>"}, nil
	}
	return "", nil, fmt.Errorf("%w: unknown chat format %.32q", ErrTokenizer, format)
}

// ChatTemplateFromConfig returns the chat template of a Hugging Face
// tokenizer_config.json: its "chat_template" string, or the template named
// "default" (else the first) of a list of {"name", "template"}; "" if it
// has none.
func ChatTemplateFromConfig(data []byte) (string, error) {
	if len(data) > MaxTokenizerJSON {
		return "", fmt.Errorf("%w: tokenizer_config.json is %d bytes, limit %d", ErrFormat, len(data), MaxTokenizerJSON)
	}
	var c struct {
		Template json.RawMessage `json:"chat_template"`
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return "", fmt.Errorf("%w: tokenizer_config.json: %v", ErrFormat, err)
	}
	if len(c.Template) == 0 || string(c.Template) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(c.Template, &s); err == nil {
		return s, nil
	}
	var list []struct {
		Name     string `json:"name"`
		Template string `json:"template"`
	}
	if err := json.Unmarshal(c.Template, &list); err != nil {
		return "", fmt.Errorf("%w: tokenizer_config.json: chat_template is neither a string nor a list of named templates", ErrFormat)
	}
	for _, t := range list {
		if t.Name == "default" {
			return t.Template, nil
		}
	}
	if len(list) > 0 {
		return list[0].Template, nil
	}
	return "", nil
}
