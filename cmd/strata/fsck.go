package main

import (
	"fmt"
	"os"

	"github.com/strata-mesh/strata/shards"
)

type fsckCmd struct {
	Repo string `help:"Repo dir." required:"" type:"existingdir"`
}

// Run re-hashes every object of the repo against its CID. It prints one
// line per corrupt object and per stray file name on stdout, a summary on
// stderr, and fails when an object is corrupt.
func (c *fsckCmd) Run(e *env) error {
	st, err := shards.Open(c.Repo)
	if err != nil {
		return err
	}
	rep, err := st.Verify(e.ctx)
	if err != nil {
		return err
	}
	for _, o := range rep.Corrupt {
		fmt.Printf("corrupt  %s  %v\n", o.CID, o.Err)
	}
	for _, name := range rep.Stray {
		fmt.Printf("stray    %s  (not a CID; never served)\n", name)
	}
	fmt.Fprintf(os.Stderr, "%d objects, %d bytes verified in %s: %d corrupt, %d stray\n",
		rep.Objects, rep.Bytes, c.Repo, len(rep.Corrupt), len(rep.Stray))
	if len(rep.Corrupt) > 0 {
		return fmt.Errorf("%d corrupt objects in %s: they are never served, and fetching or importing the same content again replaces them",
			len(rep.Corrupt), c.Repo)
	}
	return nil
}
