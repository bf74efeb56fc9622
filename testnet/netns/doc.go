// Package netns runs a Strata mesh on one Linux machine as it would run
// across the internet: every node is a process in its own network
// namespace, with its own address, and every packet between two nodes
// crosses an emulated wide-area link with a one-way delay, jitter, loss
// and an optional rate limit.
//
// A Net is N namespaces, node i at 10.200.0.(i+1), joined by one of two
// backends:
//
//   - Kernel: a veth pair per node into a hub namespace holding a Linux
//     bridge, with `tc qdisc netem` (delay, jitter, loss, rate) on each
//     node's side of its pair. It needs the sch_netem qdisc; a rate limit
//     alone uses tbf.
//   - User: a TUN device per node, all held by this process, which
//     forwards each IPv4 packet to the namespace of its destination after
//     the delay, jitter, loss and rate of the sender's link. It needs only
//     /dev/net/tun, so it works on kernels built without netem.
//
// Either way a node's Link shapes what it sends: a packet from node a to
// node b is delayed once, by a's link, so two nodes whose links both have
// delay D see a round-trip time of 2D. Jitter is uniform in ±Jitter; the
// User backend keeps each link's packets in order (delays are made
// monotone), netem may reorder them.
//
// Partition cuts the mesh into groups that cannot reach each other (the
// Kernel backend moves the other groups' ports onto bridges of their own,
// the User backend drops the packets); Heal joins them again. Packets in
// flight when a cut starts are lost.
//
// Processes are started inside a namespace with `ip netns exec`, in their
// own process group, and receive SIGTERM if this process dies. Close stops
// them (SIGTERM, then SIGKILL), closes the links and deletes the
// namespaces; New first deletes namespaces left behind by a process that
// no longer exists. Everything here needs root (CAP_NET_ADMIN and
// CAP_SYS_ADMIN); Available says whether this machine can run it and why
// not.
package netns
