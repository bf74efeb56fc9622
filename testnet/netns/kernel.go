//go:build linux

package netns

import (
	"fmt"
	"strconv"
	"time"
)

// kernel is the Kernel backend: node i's eth0 is one end of a veth pair
// whose other end, p<i>, is a port of bridge br0 in the hub namespace;
// node i's link is a netem (or tbf) qdisc on its eth0. A partition moves
// the ports of every group but the first onto bridge br<k> of their own.
type kernel struct {
	n       *Net
	hub     string // the hub namespace
	bridges int    // bridges made so far (br0 ... br<bridges-1>)
}

func newKernel(n *Net) (*kernel, error) {
	k := &kernel{n: n, hub: n.prefix + "hub"}
	if err := ip("netns", "add", k.hub); err != nil {
		return nil, err
	}
	if err := k.bridge(0); err != nil {
		return k, err
	}
	for i, ns := range n.names {
		port := "p" + strconv.Itoa(i)
		for _, args := range [][]string{
			{"link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", port, "netns", k.hub},
			{"-n", k.hub, "link", "set", "dev", port, "master", "br0", "up"},
			{"-n", ns, "addr", "add", n.IP(i) + "/24", "dev", "eth0"},
			{"-n", ns, "link", "set", "dev", "eth0", "up"},
		} {
			if err := ip(args...); err != nil {
				return k, err
			}
		}
		if args := qdisc(n.opts.link(i)); args != nil {
			if err := run("ip", append([]string{"netns", "exec", ns, "tc", "qdisc", "add", "dev", "eth0", "root"}, args...)...); err != nil {
				return k, err
			}
		}
	}
	return k, nil
}

// qdisc is the tc qdisc that shapes a link as l says, or nil.
func qdisc(l Link) []string {
	ms := func(d time.Duration) string { return strconv.FormatInt(d.Microseconds(), 10) + "us" }
	switch {
	case l.Delay > 0 || l.Loss > 0:
		args := []string{"netem", "limit", "10000", "delay", ms(l.Delay)}
		if l.Jitter > 0 {
			args = append(args, ms(l.Jitter))
		}
		if l.Loss > 0 {
			args = append(args, "loss", strconv.FormatFloat(100*l.Loss, 'f', -1, 64)+"%")
		}
		if l.Rate > 0 {
			args = append(args, "rate", strconv.FormatInt(l.Rate, 10)+"bit")
		}
		return args
	case l.Rate > 0:
		burst := max(l.Rate/8/100, 3200) // 10 ms of data, at least two full frames
		return []string{"tbf", "rate", strconv.FormatInt(l.Rate, 10) + "bit", "burst", strconv.FormatInt(burst, 10),
			"latency", "500ms"}
	}
	return nil
}

// bridge makes bridge br<k> in the hub namespace if it does not exist yet.
func (k *kernel) bridge(b int) error {
	for ; k.bridges <= b; k.bridges++ {
		br := "br" + strconv.Itoa(k.bridges)
		if err := ip("-n", k.hub, "link", "add", br, "type", "bridge"); err != nil {
			return err
		}
		if err := ip("-n", k.hub, "link", "set", "dev", br, "up"); err != nil {
			return err
		}
	}
	return nil
}

// partition puts each node's port on the bridge of its group: groups are
// numbered in order of their lowest node, the first on br0.
func (k *kernel) partition(g []int) error {
	bridgeOf := map[int]int{}
	for i := range k.n.names {
		b := 0
		if g != nil {
			var ok bool
			if b, ok = bridgeOf[g[i]]; !ok {
				b = len(bridgeOf)
				bridgeOf[g[i]] = b
			}
		}
		if err := k.bridge(b); err != nil {
			return err
		}
		if err := ip("-n", k.hub, "link", "set", "dev", "p"+strconv.Itoa(i), "master", "br"+strconv.Itoa(b)); err != nil {
			return fmt.Errorf("netns: partition: %w", err)
		}
	}
	return nil
}

func (k *kernel) close() error { return ip("netns", "del", k.hub) }
