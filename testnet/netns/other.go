//go:build !linux

package netns

import "errors"

// Available reports that network namespaces exist only on Linux.
func Available() error { return errors.New("netns: network namespaces need Linux") }
