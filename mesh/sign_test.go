package mesh

import "testing"

func TestSignVerify(t *testing.T) {
	a := newTestMesh(t, Config{})
	b := newTestMesh(t, Config{})
	msg := []byte("round 3 vote")
	sig, err := a.Sign(msg)
	if err != nil {
		t.Fatal(err)
	}
	if !Verify(a.ID().String(), msg, sig) {
		t.Fatal("valid signature rejected")
	}
	for name, ok := range map[string]bool{
		"other signer":  Verify(b.ID().String(), msg, sig),
		"other message": Verify(a.ID().String(), []byte("round 4 vote"), sig),
		"truncated sig": Verify(a.ID().String(), msg, sig[:len(sig)-1]),
		"bad peer id":   Verify("not-a-peer", msg, sig),
		"empty peer id": Verify("", msg, sig),
		"nil signature": Verify(a.ID().String(), msg, nil),
	} {
		if ok {
			t.Errorf("%s: accepted", name)
		}
	}
}
