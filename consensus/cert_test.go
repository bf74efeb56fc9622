package consensus

import (
	"errors"
	"go/build"
	"strings"
	"testing"
)

func certFor(voters []string, r Round, view uint32, base, result string) Certificate {
	c := Certificate{Round: r, View: view, Base: base, Result: result}
	for _, v := range voters {
		c.Votes = append(c.Votes, Vote{From: v, Sig: sign(v, PrecommitBytes(r, view, base, result))})
	}
	return c
}

func TestVerifyCertificate(t *testing.T) {
	roster := []string{"a", "b", "c", "d"}
	good := certFor([]string{"a", "b", "c"}, 1, 0, "g", "r1")
	if err := VerifyCertificate(roster, 0, good, verify); err != nil {
		t.Fatalf("valid certificate: %v", err)
	}
	dup := certFor([]string{"a", "b"}, 1, 0, "g", "r1")
	dup.Votes = append(dup.Votes, dup.Votes[0])
	forged := certFor([]string{"a", "b"}, 1, 0, "g", "r1")
	forged.Votes = append(forged.Votes, Vote{From: "c", Sig: sign("a", PrecommitBytes(1, 0, "g", "r1"))})
	prevotes := certFor([]string{"a", "b"}, 1, 0, "g", "r1")
	prevotes.Votes = append(prevotes.Votes, Vote{From: "c", Sig: sign("c", PrevoteBytes(1, 0, "g", "r1"))})
	otherView := good
	otherView.View = 1
	hugeView := certFor([]string{"a", "b", "c"}, 1, MaxViews, "g", "r1")
	outsider := certFor([]string{"a", "b", "x"}, 1, 0, "g", "r1")
	otherResult := good
	otherResult.Result = "r2"
	for name, c := range map[string]Certificate{
		"too few":      certFor([]string{"a", "b"}, 1, 0, "g", "r1"),
		"duplicate":    dup,
		"forged":       forged,
		"outsider":     outsider,
		"other result": otherResult,
		"a prevote":    prevotes,
		"other view":   otherView,
		"view bound":   hugeView,
		"round 0":      certFor([]string{"a", "b", "c"}, 0, 0, "g", "r1"),
	} {
		if err := VerifyCertificate(roster, 0, c, verify); !errors.Is(err, ErrCertificate) {
			t.Errorf("%s: got %v, want ErrCertificate", name, err)
		}
	}
}

func TestVerifyChain(t *testing.T) {
	roster := []string{"a", "b", "c", "d"}
	q := []string{"b", "c", "d"}
	chain := []Certificate{
		certFor(q, 1, 0, "g", "r1"),
		certFor(q, 2, 0, "r1", ""), // skipped
		certFor(q, 3, 0, "r1", "r3"),
	}
	next, err := VerifyChain(roster, 0, "g", chain, verify)
	if err != nil || next != "r3" {
		t.Fatalf("VerifyChain = %q, %v; want r3, nil", next, err)
	}
	for name, bad := range map[string][]Certificate{
		"gap":         {chain[0], chain[2]},
		"wrong base":  {chain[0], certFor(q, 2, 0, "g", "r2")},
		"bad votes":   {chain[0], certFor([]string{"a"}, 2, 0, "r1", "r2")},
		"not genesis": {certFor(q, 1, 0, "other", "r1")},
	} {
		if _, err := VerifyChain(roster, 0, "g", bad, verify); !errors.Is(err, ErrCertificate) {
			t.Errorf("%s: got %v, want ErrCertificate", name, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{ID: "a", Rule: "fedavg", Roster: []string{"a", "b"}, Sign: func([]byte) []byte { return nil },
		Verify: verify, CollectTicks: 1, ViewTicks: 2, RoundTicks: 4}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for name, mut := range map[string]func(*Config){
		"no id":        func(c *Config) { c.ID = "" },
		"no rule":      func(c *Config) { c.Rule = "" },
		"no roster":    func(c *Config) { c.Roster = nil },
		"dup roster":   func(c *Config) { c.Roster = []string{"a", "a"} },
		"no signer":    func(c *Config) { c.Sign = nil },
		"timing":       func(c *Config) { c.ViewTicks = 1 },
		"round short":  func(c *Config) { c.RoundTicks = 1 },
		"many views":   func(c *Config) { c.RoundTicks = 2 * MaxViews },
		"empty member": func(c *Config) { c.Roster = []string{"a", ""} },
	} {
		c := ok
		mut(&c)
		if err := c.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: got %v, want ErrConfig", name, err)
		}
		if _, err := NewNode(c, "g", HardState{}); !errors.Is(err, ErrConfig) {
			t.Errorf("NewNode %s: got %v, want ErrConfig", name, err)
		}
	}
}

func TestProposerDeterministicAndSpread(t *testing.T) {
	roster := []string{"a", "b", "c", "d", "e"}
	count := map[string]int{}
	for r := Round(1); r <= 200; r++ {
		p := Proposer(roster, r, 0)
		if q := Proposer([]string{"e", "d", "c", "b", "a"}, r, 0); q != p {
			t.Fatalf("round %d: proposer depends on roster order: %s vs %s", r, p, q)
		}
		count[p]++
	}
	for _, id := range roster {
		if count[id] < 10 {
			t.Errorf("%s proposes %d of 200 rounds, want a fair share", id, count[id])
		}
	}
}

// TestImports keeps the package pure: standard library only, and no I/O,
// clock or global randomness.
func TestImports(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		if strings.Contains(imp, ".") || imp == "os" || imp == "net" || imp == "time" ||
			imp == "math/rand" || imp == "math/rand/v2" || strings.HasPrefix(imp, "net/") {
			t.Errorf("consensus imports %q", imp)
		}
	}
}
