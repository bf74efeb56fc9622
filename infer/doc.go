// Package infer runs inference sessions across the mesh: route planning,
// the hop-to-hop activation protocol and the entry peer's generation loop.
//
// The entry peer (any peer a client dials) tokenizes the prompt, embeds it,
// plans a chain of peers covering blocks [0, L) with Plan, and opens the
// chain: it sends an open frame to the first hop, which opens the next, and
// so on; the last hop opens a return stream back to the entry. Every hop
// acknowledges only once the chain below it is ready, so a chain that
// cannot be built fails at once with an error naming the peer.
//
// Activations then flow server to server: each step frame carries the
// hidden states of one or more consecutive positions; each hop runs its
// blocks with its per-session KV cache and forwards the result; the last
// hop returns the final position's hidden state to the entry, which
// applies the head and samples. Errors travel back up the chain. Closing
// the entry's stream ends the session on every hop, freeing its cache.
//
// Wire format (ProtocolID, one stream per session per link): frames of a
// 1-byte type, a 4-byte big-endian length and a payload. Control frames
// (open, return, error, request, token, done) are JSON of at most 64 KiB;
// step and result frames are a u32 position, a u32 count n and n·dim
// little-endian float32 values, at most 256 MiB. Every frame is checked
// against these limits and the model's shape before use; a peer that
// breaks the protocol gets an error frame and its stream is closed.
//
// Greedy output does not depend on how the blocks are split: every hop
// runs the same float32 kernels on the same inputs as a single process.
//
// A peer serving several versions of a model at once (a federated round
// committed a new one) registers a Mux instead of one Service. It hands an
// open frame to the Service of the model it names, a return frame to the
// Service fronting that session, and a client request to the version it
// names or else the newest added. An open frame for a model the peer does
// not serve is refused with CodeRefused, as a Service refuses blocks it
// does not hold, so the entry routes around the peer. A removed version
// takes no new sessions or requests, but finishes the sessions it runs and
// still receives the return streams of the requests it fronts.
//
// The entry bans a peer that fails a chain (see BanMin). A ban ends early
// when the peer's adverts show a new start time (Server.Started) or when a
// chain through it opens; while every holder of some blocks is banned, the
// banned holders are tried rather than the request failing, and when none
// answers the error names the blocks and the last failure of their holders.
//
// Plan is pure; Service and Mux own no goroutines beyond those serving a
// stream or a request, and they never touch libp2p: the node adapts its
// host to the Transport interface.
package infer
