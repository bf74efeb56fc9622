package consensus

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// Proposer returns the member of roster that proposes in (round, view):
// the one with the smallest sha256(round || view || id). Every node
// computes the same answer from the same roster.
func Proposer(roster []string, round Round, view uint32) string {
	var best string
	var bestSum [32]byte
	for i, p := range roster {
		var b [12]byte
		binary.BigEndian.PutUint64(b[:8], uint64(round))
		binary.BigEndian.PutUint32(b[8:], view)
		h := sha256.New()
		h.Write(b[:])
		h.Write([]byte(p))
		var sum [32]byte
		h.Sum(sum[:0])
		if i == 0 || string(sum[:]) < string(bestSum[:]) {
			best, bestSum = p, sum
		}
	}
	return best
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// VoteBytes is what a member signs to vote for result (empty: skip) in
// round, which started from base.
func VoteBytes(round Round, base, result string) []byte {
	b := []byte("strata/consensus/vote/v1\x00")
	b = binary.BigEndian.AppendUint64(b, uint64(round))
	b = appendStr(b, base)
	return appendStr(b, result)
}

// ProposalBytes is what a proposer signs for a proposal message.
func ProposalBytes(m Message) []byte {
	b := []byte("strata/consensus/propose/v1\x00")
	b = binary.BigEndian.AppendUint64(b, uint64(m.Round))
	b = binary.BigEndian.AppendUint32(b, m.View)
	b = appendStr(b, m.Base)
	b = appendStr(b, m.Rule)
	b = appendStr(b, m.Result)
	b = binary.AppendUvarint(b, uint64(len(m.Deltas)))
	for _, d := range m.Deltas {
		b = appendStr(b, d)
	}
	return b
}

// VerifyCertificate checks that cert holds valid votes over (Round, Base,
// Result) from at least Quorum(len(roster)) distinct roster members.
func VerifyCertificate(roster []string, cert Certificate, verify func(peer string, msg, sig []byte) bool) error {
	if cert.Round == 0 {
		return fmt.Errorf("%w: round 0", ErrCertificate)
	}
	if len(cert.Votes) > MaxRoster {
		return fmt.Errorf("%w: %d votes", ErrCertificate, len(cert.Votes))
	}
	member := make(map[string]bool, len(roster))
	for _, p := range roster {
		member[p] = true
	}
	msg := VoteBytes(cert.Round, cert.Base, cert.Result)
	seen := make(map[string]bool, len(cert.Votes))
	for _, v := range cert.Votes {
		if !member[v.From] || seen[v.From] || !verify(v.From, msg, v.Sig) {
			continue
		}
		seen[v.From] = true
	}
	if q := Quorum(len(roster)); len(seen) < q {
		return fmt.Errorf("%w: round %d has %d valid votes, need %d", ErrCertificate, cert.Round, len(seen), q)
	}
	return nil
}

// VerifyChain checks a history of certificates starting at round 1 from
// genesis: each is valid for roster, rounds are consecutive, and each
// starts from the previous one's Next. It returns the base of the round
// after the last certificate.
func VerifyChain(roster []string, genesis string, chain []Certificate, verify func(peer string, msg, sig []byte) bool) (string, error) {
	base := genesis
	for i, c := range chain {
		if c.Round != Round(i+1) {
			return "", fmt.Errorf("%w: certificate %d is for round %d, want %d", ErrCertificate, i, c.Round, i+1)
		}
		if c.Base != base {
			return "", fmt.Errorf("%w: round %d starts from %q, want %q", ErrCertificate, c.Round, c.Base, base)
		}
		if err := VerifyCertificate(roster, c, verify); err != nil {
			return "", err
		}
		base = c.Next()
	}
	return base, nil
}
