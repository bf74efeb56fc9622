// Package shards is Strata's content addressing: the shard file format,
// the model manifest, CIDs, the on-disk object store with pins and
// garbage collection, and the fetch-by-CID content protocol. It does not
// import libp2p: streams come from an Opener (mesh.Mesh satisfies it) and
// ServeContent is registered as a mesh stream handler.
//
// # Objects and CIDs
//
// Every object (shard, manifest) is named by the CIDv1 of its exact bytes,
// codec raw (0x55), multihash sha2-256 (see Sum); the string form is base32,
// "bafkrei…". Verify, CheckCID and ParseCID reject any other kind of CID.
//
// # Container format
//
// A shard is a tensor container in the safetensors layout:
//
//	offset 0      u64 little-endian N, the header length
//	offset 8      N bytes of UTF-8 JSON header
//	offset 8+N    tensor data, raw little-endian, back to back
//
// The header is one JSON object. The optional key "__metadata__" maps to an
// object of string values. Every other key is a tensor name mapping to
//
//	{"dtype": "F32" | "U8" | "Q8_0" | "Q4_0", "shape": [d0, d1, ...], "data_offsets": [begin, end]}
//
// where the offsets are relative to the start of the data section and
// end-begin = product(shape) × 4 for F32, × 1 for U8 (product of [] is 1).
// Q8_0 and Q4_0 are block-quantized (package tensor, QFormat): the last
// dimension is cut into blocks of 32 values, the last block of each row
// padded with zeros, and each block is a little-endian binary16 scale
// followed by 32 int8 values (Q8_0, 34 bytes) or 16 bytes of 4-bit values
// (Q4_0, 18 bytes); end-begin = product(leading dims) × ⌈d_last/32⌉ ×
// block size, and the rank is at least 1.
//
// Decode accepts any valid container and rejects, with ErrFormat: a header
// length over MaxHeaderSize or the file; malformed JSON, duplicate keys,
// unknown fields; dtypes other than these four; more than MaxRank
// dimensions; sizes that overflow or disagree with the offsets; and tensor
// data that overlaps, leaves a gap, or leaves trailing bytes.
//
// Encode writes the canonical form, so equal content gives equal bytes and
// equal CIDs: "__metadata__" first (if any) with keys sorted, then tensor
// entries sorted by name, each as {"dtype","shape","data_offsets"} in that
// order, compact JSON, header padded with spaces to a multiple of 8 bytes;
// data laid out in the order the tensors were given.
//
// # Shards
//
// Block shard i holds the tensors of transformer block i, named as
// model.Block.Tensors names them: all F32, or, for a quantized model, the
// two norms in F32 and the seven matrices [rows, cols] all in Q8_0 or all
// in Q4_0 (DecodeBlock checks every scale is finite and every padding
// value zero, so a quantized block has exactly one encoding); with metadata
// {"strata.kind":"block","strata.index":"<i>"}. The head shard holds the
// token embedding, final norm and (when not shared) classifier as F32
// tensors, plus the tokenizer as a U8 tensor "tokenizer" holding the
// llama2.c tokenizer.bin bytes, with metadata
// {"strata.kind":"head","strata.tokenizer":"llama2c"} (or, for a byte-level
// BPE tokenizer, model.ReadBPE's format and "strata.tokenizer":"bpe", and
// "strata.chat" naming its chat format, model.ChatML or model.ChatLlama3,
// when it has one). A
// block of a model with q/k/v biases (Qwen2) also holds "bq", "bk" and "bv"
// in F32 after its other tensors. DecodeBlock and
// DecodeHead check the metadata and that the tensors are exactly those of
// the config (ErrShard otherwise).
//
// # Manifest
//
// A manifest is compact JSON with fields in this order:
//
//	{"format":"strata/manifest/1","name":"…","config":{…model.Config…},
//	 ["weights":"q8_0"|"q4_0",]
//	 "head":{"cid":"bafk…","size":N[,"chunks":[…]]},
//	 "blocks":[{"cid":…,"size":…[,"chunks":[…]]}, …],
//	 "chunk_size":1048576,"parent":"bafk…" or ""}
//
// A shard larger than chunk_size carries "chunks": the sha2-256 of each
// chunk_size piece (the last one shorter), as 64 lowercase hex digits, so a
// fetcher can verify each piece as it arrives (Manifest.VerifyChunk). A
// shard of at most one chunk has no list; its CID verifies it. "parent" is
// the CID of the manifest this version was trained from. "weights" names
// the format of every block's matrices when the model is quantized and is
// absent for float32 (so float32 manifests and their CIDs are as before);
// Load checks each block against it. The head stays F32.
//
// The model id is the CID of the manifest. To give every model exactly one
// id, DecodeManifest accepts only the canonical encoding that
// Manifest.Encode produces (json.Marshal of the fields above, no
// whitespace) and validates everything: format, config, one ref per layer,
// CIDs, sizes (at most MaxObjectSize), chunk_size and chunk counts.
//
// # Store
//
// A Store keeps objects as files dir/objects/<cid>. Put writes a temp file,
// fsyncs it and renames it into place, so a crash never leaves a partial
// object under a CID. Get re-hashes every object it reads and returns
// ErrCorrupt, never the bytes, on mismatch. Import and ImportModel split a
// model into shards and store them with their manifest; Load reads back a
// span of blocks (and optionally the head), verifying every object.
//
// Store.ReadAt reads a byte range of an object. Each version of an object
// file (by size and modification time) is hashed in full the first time it
// is read this way; later range reads trust that result, and a file that
// fails the check is never read from (ErrCorrupt).
//
// # Pins and garbage collection
//
// Pin, Unpin and Pins keep a set of protected CIDs in dir/pins (one CID per
// line, replaced atomically). GC removes every object that is neither
// pinned nor named by a pinned manifest present in the store (pinning a
// model's manifest protects its head and blocks), and every partial file
// whose object is unprotected and not being fetched.
//
// # Content protocol
//
// ContentProtocol ("/strata/content/1") serves any object by CID. A stream
// carries requests in sequence, which a client may pipeline; the server
// answers each in order:
//
//	request   u8 n, n bytes binary CID, u64 offset, u32 length (big-endian)
//	response  u8 status, u64 object size, u32 m, then m bytes
//
// Length is at most MaxRequest (4 MiB); length 0 asks for the size only.
// With status 0 (ok) m equals the requested length and the bytes are the
// object's range. Other statuses (1 not found, 2 range beyond the object,
// 3 bad request, 4 unavailable) carry an m ≤ 1024 byte UTF-8 message; after
// a bad request the server closes the stream. The server applies read
// deadlines (first request, idle) and write deadlines when the stream
// supports them, serves only verified objects, and writes through a
// bounded buffer so a slow reader only slows itself down.
//
// A Fetcher fetches one object from several providers at once: each
// provider gets one stream with up to Parallel chunks in flight, chunks
// are taken from a shared queue, each is verified against its digest as
// it arrives and written at its offset into dir/partial/<cid> (never under
// objects/). A provider that sends a chunk failing verification, or
// breaks the protocol, is banned for the rest of the fetch, the evidence
// (peer, CID, chunk, expected and actual digest) is logged and kept
// (Banned), and its chunks go to the other providers. The fetcher also
// hashes the whole object as the chunks arrive, feeding them to one
// sha2-256 in index order (chunks that arrive ahead of a gap are held in
// memory up to a bound, else read back from the partial file), so the
// check of the complete file against the CID needs no second pass over
// it; both checks always run. Chunk writes bypass the page cache
// (O_DIRECT) where the system supports it and the write is block-aligned,
// and otherwise go through it with writeback started at once. The
// complete file is verified against the CID, synced and renamed into
// objects/. A fetch that
// starts on an existing partial file hashes it chunk by chunk and only
// fetches chunks that do not match, so a crash never costs verified bytes
// and never makes unverified bytes trusted. A local write failure (disk
// full) removes the partial file.
//
// All input from files and peers is treated as hostile: decoders are
// bounded, validated and return errors wrapping the package's ErrX
// sentinels; they never panic.
package shards
