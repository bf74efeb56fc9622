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

// PrevoteBytes is what a member signs to prevote result (empty: skip) in
// view of round, which started from base.
func PrevoteBytes(round Round, view uint32, base, result string) []byte {
	return voteBytes("strata/consensus/prevote/v2\x00", round, view, base, result, false)
}

// PrecommitBytes is what a member signs to precommit result (empty: skip)
// in view of round, which started from base. Certificates hold these.
func PrecommitBytes(round Round, view uint32, base, result string) []byte {
	return voteBytes("strata/consensus/precommit/v2\x00", round, view, base, result, false)
}

// BallotBytes is what a member signs for a vote message m of either
// phase, nil votes included.
func BallotBytes(m Message) []byte {
	domain := "strata/consensus/prevote/v2\x00"
	if m.Kind == KindPrecommit {
		domain = "strata/consensus/precommit/v2\x00"
	}
	return voteBytes(domain, m.Round, m.View, m.Base, m.Result, m.Nil)
}

func voteBytes(domain string, round Round, view uint32, base, result string, isNil bool) []byte {
	b := []byte(domain)
	b = binary.BigEndian.AppendUint64(b, uint64(round))
	b = binary.BigEndian.AppendUint32(b, view)
	b = appendStr(b, base)
	b = appendStr(b, result)
	if isNil {
		b = append(b, 1)
	}
	return b
}

// ProposalBytes is what a proposer signs for a proposal message.
func ProposalBytes(m Message) []byte {
	b := []byte("strata/consensus/propose/v2\x00")
	b = binary.BigEndian.AppendUint64(b, uint64(m.Round))
	b = binary.BigEndian.AppendUint32(b, m.View)
	b = binary.BigEndian.AppendUint32(b, m.POL)
	b = appendStr(b, m.Base)
	b = appendStr(b, m.Rule)
	b = appendStr(b, m.Result)
	b = binary.AppendUvarint(b, uint64(len(m.Deltas)))
	for _, d := range m.Deltas {
		b = appendStr(b, d)
	}
	return b
}

// VerifyCertificate checks that cert holds valid precommits over (Round,
// View, Base, Result) from at least quorum distinct roster members (0:
// Quorum(len(roster))).
func VerifyCertificate(roster []string, quorum int, cert Certificate, verify func(peer string, msg, sig []byte) bool) error {
	if cert.Round == 0 {
		return fmt.Errorf("%w: round 0", ErrCertificate)
	}
	if cert.View >= MaxViews {
		return fmt.Errorf("%w: view %d", ErrCertificate, cert.View)
	}
	if len(cert.Votes) > MaxRoster {
		return fmt.Errorf("%w: %d votes", ErrCertificate, len(cert.Votes))
	}
	member := make(map[string]bool, len(roster))
	for _, p := range roster {
		member[p] = true
	}
	msg := PrecommitBytes(cert.Round, cert.View, cert.Base, cert.Result)
	if got, q := validVotes(member, msg, cert.Votes, verify), quorumOf(len(roster), quorum); got < q {
		return fmt.Errorf("%w: round %d has %d valid votes, need %d", ErrCertificate, cert.Round, got, q)
	}
	return nil
}

// validVotes counts the distinct members whose signature over msg is in
// votes.
func validVotes(member map[string]bool, msg []byte, votes []Vote, verify func(peer string, msg, sig []byte) bool) int {
	seen := make(map[string]bool, len(votes))
	for _, v := range votes {
		if member[v.From] && !seen[v.From] && verify(v.From, msg, v.Sig) {
			seen[v.From] = true
		}
	}
	return len(seen)
}

// VerifyChain checks a history of certificates starting at round 1 from
// genesis: each is valid for roster, rounds are consecutive, and each
// starts from the previous one's Next. It returns the base of the round
// after the last certificate.
func VerifyChain(roster []string, quorum int, genesis string, chain []Certificate, verify func(peer string, msg, sig []byte) bool) (string, error) {
	base := genesis
	for i, c := range chain {
		if c.Round != Round(i+1) {
			return "", fmt.Errorf("%w: certificate %d is for round %d, want %d", ErrCertificate, i, c.Round, i+1)
		}
		if c.Base != base {
			return "", fmt.Errorf("%w: round %d starts from %q, want %q", ErrCertificate, c.Round, c.Base, base)
		}
		if err := VerifyCertificate(roster, quorum, c, verify); err != nil {
			return "", err
		}
		base = c.Next()
	}
	return base, nil
}
