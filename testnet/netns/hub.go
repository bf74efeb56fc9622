//go:build linux

package netns

import (
	"encoding/binary"
	"fmt"
	"math/rand"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// hub is the User backend: one TUN device per node namespace, its file
// held here; what a node sends is read from its device, delayed by the
// node's link and written to the device of the destination.
type hub struct {
	n     *Net
	tuns  []*os.File
	group atomic.Pointer[[]int] // partition: group of each node; nil when whole
	wg    sync.WaitGroup
	stats []linkStats
}

// linkStats count one node's outgoing packets.
type linkStats struct {
	sent, lost, cut, dropped atomic.Int64
}

// maxQueue bounds the time a packet waits behind others for a
// rate-limited link (a router's buffer); later packets are dropped.
const maxQueue = 500 * time.Millisecond

// packet is a packet on its way to node dst, to be delivered at at.
type packet struct {
	data []byte
	dst  int
	at   time.Time
}

func newHub(n *Net) (*hub, error) {
	h := &hub{n: n, stats: make([]linkStats, len(n.names))}
	for i, ns := range n.names {
		// The device is made here and moved into the namespace: its file
		// stays attached to it.
		name := fmt.Sprintf("st%x-%d", os.Getpid()&0xffffff, seq.Add(1))
		f, err := openTUN(name)
		if err != nil {
			h.close()
			return nil, err
		}
		h.tuns = append(h.tuns, f)
		for _, args := range [][]string{
			{"link", "set", "dev", name, "netns", ns},
			{"-n", ns, "link", "set", "dev", name, "name", "wan0"},
			{"-n", ns, "addr", "add", n.IP(i) + "/24", "dev", "wan0"},
			{"-n", ns, "link", "set", "dev", "wan0", "up"},
		} {
			if err := ip(args...); err != nil {
				h.close()
				return nil, err
			}
		}
	}
	for i := range h.tuns {
		q := make(chan packet, 4096)
		h.wg.Add(2)
		go h.read(i, q, rand.New(rand.NewSource(n.opts.Seed+int64(i))))
		go h.deliver(i, q)
	}
	return h, nil
}

// openTUN creates the TUN device name (IPv4/IPv6 packets, no header) and
// returns its file, non-blocking so that Close ends a pending Read.
func openTUN(name string) (*os.File, error) {
	fd, err := syscall.Open("/dev/net/tun", syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("netns: open /dev/net/tun: %w", err)
	}
	var ifr [40]byte // struct ifreq
	copy(ifr[:syscall.IFNAMSIZ-1], name)
	binary.NativeEndian.PutUint16(ifr[syscall.IFNAMSIZ:], syscall.IFF_TUN|syscall.IFF_NO_PI)
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TUNSETIFF, uintptr(unsafe.Pointer(&ifr[0]))); e != 0 {
		syscall.Close(fd)
		return nil, fmt.Errorf("netns: create TUN device %s: %w", name, e)
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

// read takes node i's outgoing packets, decides their fate by i's link
// and queues them for delivery in order.
func (h *hub) read(i int, q chan<- packet, rng *rand.Rand) {
	defer h.wg.Done()
	defer close(q)
	link := h.n.opts.link(i)
	st := &h.stats[i]
	buf := make([]byte, 1<<16)
	var free, last time.Time // when the link is next free to send; the last delivery time
	for {
		k, err := h.tuns[i].Read(buf)
		if err != nil {
			return
		}
		if k < 20 || buf[0]>>4 != 4 {
			continue // IPv4 only; the namespaces have no other addresses
		}
		dst := index([4]byte(buf[16:20]), len(h.tuns))
		if dst < 0 || dst == i {
			continue
		}
		if link.Loss > 0 && rng.Float64() < link.Loss {
			st.lost.Add(1)
			continue
		}
		now := time.Now()
		at := now
		if link.Rate > 0 {
			free = later(free, now).Add(time.Duration(int64(k) * 8 * int64(time.Second) / link.Rate))
			if free.Sub(now) > maxQueue {
				free = free.Add(-time.Duration(int64(k) * 8 * int64(time.Second) / link.Rate))
				st.dropped.Add(1)
				continue
			}
			at = free
		}
		d := link.Delay
		if link.Jitter > 0 {
			d += time.Duration(rng.Int63n(int64(2*link.Jitter)+1)) - link.Jitter
		}
		at = later(at.Add(d), last) // in order, like one wire
		last = at
		select {
		case q <- packet{data: append([]byte(nil), buf[:k]...), dst: dst, at: at}:
		default:
			st.dropped.Add(1)
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// deliver writes node i's queued packets to their destinations when due,
// unless a partition lies between.
func (h *hub) deliver(i int, q <-chan packet) {
	defer h.wg.Done()
	st := &h.stats[i]
	t := time.NewTimer(0)
	<-t.C
	for p := range q {
		if d := time.Until(p.at); d > 0 {
			t.Reset(d)
			<-t.C
		}
		if g := h.group.Load(); g != nil && (*g)[i] != (*g)[p.dst] {
			st.cut.Add(1)
			continue
		}
		if _, err := h.tuns[p.dst].Write(p.data); err != nil {
			st.dropped.Add(1)
			continue
		}
		st.sent.Add(1)
	}
}

func (h *hub) partition(g []int) {
	if g == nil {
		h.group.Store(nil)
		return
	}
	h.group.Store(&g)
}

// close closes the devices, which ends the goroutines.
func (h *hub) close() {
	for _, f := range h.tuns {
		f.Close()
	}
	h.wg.Wait()
}

// Stats count the packets a node sent through the User backend.
type Stats struct {
	Sent    int64 // delivered
	Lost    int64 // dropped by the link's loss
	Cut     int64 // dropped by a partition
	Dropped int64 // dropped by a full queue or a failed write
}

// Stats returns the counters of every node's link (User backend; nil for
// Kernel, whose counters `tc -s qdisc` shows in each namespace).
func (n *Net) Stats() []Stats {
	if n.hub == nil {
		return nil
	}
	out := make([]Stats, len(n.hub.stats))
	for i := range out {
		s := &n.hub.stats[i]
		out[i] = Stats{Sent: s.sent.Load(), Lost: s.lost.Load(), Cut: s.cut.Load(), Dropped: s.dropped.Load()}
	}
	return out
}
