package consensus

import "testing"

func TestQuorum(t *testing.T) {
	// More than two thirds of n: with f faulty members out of n = 3f+1,
	// two quorums intersect in at least f+1 members, one of them honest.
	for _, tc := range []struct{ n, want int }{
		{1, 1}, {2, 2}, {3, 3}, {4, 3}, {5, 4}, {6, 5}, {7, 5}, {10, 7}, {100, 67},
	} {
		if got := Quorum(tc.n); got != tc.want {
			t.Errorf("Quorum(%d) = %d, want %d", tc.n, got, tc.want)
		}
		if q := Quorum(tc.n); 3*q <= 2*tc.n {
			t.Errorf("Quorum(%d) = %d is not more than 2/3", tc.n, q)
		}
		if q := Quorum(tc.n); tc.n > 1 && 3*(q-1) > 2*tc.n {
			t.Errorf("Quorum(%d) = %d is not the smallest", tc.n, q)
		}
	}
}
