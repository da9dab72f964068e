package rpctest

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"sync"
)

// The metadata and runtime version come from @polkadot/types-support 16.5.6
// (metadata/v15/substrate-hex and substrate-ver): a Substrate kitchensink
// node, specName "node", specVersion 268. See testdata/README.md.
var (
	//go:embed testdata/metadata-v15-substrate.scale.gz
	metadataGz []byte
	//go:embed testdata/runtime-version.json
	runtimeVersionJSON []byte
)

var loadStatic = sync.OnceValues(func() (*static, error) {
	zr, err := gzip.NewReader(bytes.NewReader(metadataGz))
	if err != nil {
		return nil, fmt.Errorf("rpctest: metadata: %w", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("rpctest: metadata: %w", err)
	}
	if !bytes.HasPrefix(raw, []byte("meta")) {
		return nil, fmt.Errorf("rpctest: metadata: missing magic number")
	}
	var rv struct {
		SpecName    string `json:"specName"`
		SpecVersion uint32 `json:"specVersion"`
	}
	if err := json.Unmarshal(runtimeVersionJSON, &rv); err != nil || rv.SpecName == "" || rv.SpecVersion == 0 {
		return nil, fmt.Errorf("rpctest: bad runtime version (%v)", err)
	}
	var runtime bytes.Buffer
	if err := json.Compact(&runtime, runtimeVersionJSON); err != nil {
		return nil, fmt.Errorf("rpctest: runtime version: %w", err)
	}
	s := &static{metadataHex: hexString(raw), runtime: runtime.Bytes()}
	// Option<OpaqueMetadata>: Some, compact length, bytes.
	opaque := append([]byte{1}, compact(uint64(len(raw)))...)
	s.atVersionHex = hexString(append(opaque, raw...))
	return s, nil
})

// static is the chain data that never changes.
type static struct {
	metadataHex  string          // state_getMetadata
	atVersionHex string          // state_call Metadata_metadata_at_version(15)
	runtime      json.RawMessage // state_getRuntimeVersion
}

// metadataVersionsHex is the SCALE Vec<u32> [14, 15] that the runtime call
// Metadata_metadata_versions returns.
var metadataVersionsHex = hexString([]byte{8, 14, 0, 0, 0, 15, 0, 0, 0})

// emptyTrieRoot is the blake2 root of an empty trie, the extrinsics root of
// a block without extrinsics.
const emptyTrieRoot = "0x03170a2e7597b7b7e3d84c05391d139a62b157e78786d8c082f29dcf4c111314"

// Header is a Substrate block header in its JSON-RPC form.
type Header struct {
	ParentHash     string `json:"parentHash"`
	Number         string `json:"number"`
	StateRoot      string `json:"stateRoot"`
	ExtrinsicsRoot string `json:"extrinsicsRoot"`
	Digest         Digest `json:"digest"`
}

// Digest holds a header's digest items. The node's headers have none.
type Digest struct {
	Logs []string `json:"logs"`
}

// block is a header with its hash.
type block struct {
	number uint64
	hash   string
	header Header
}

// maxGap is the largest jump of SetBestBlock that is filled with blocks; a
// longer jump starts a new window of blocks whose first parent is synthetic.
const maxGap = 4096

// chain holds the genesis block and a window of consecutive blocks.
// Its methods are called with Node.mu held.
type chain struct {
	genesis   *block
	blocks    []*block // blocks[i].number == blocks[0].number+i
	finalized *block   // the best block unless finality is stalled
}

func newChain() *chain {
	g := makeBlock(0, hexString(make([]byte, 32)))
	return &chain{genesis: g, blocks: []*block{g}, finalized: g}
}

func (c *chain) best() *block { return c.blocks[len(c.blocks)-1] }

// byNumber returns the block at height n, or nil.
func (c *chain) byNumber(n uint64) *block {
	if n == 0 {
		return c.genesis
	}
	first := c.blocks[0].number
	if n < first || n-first >= uint64(len(c.blocks)) {
		return nil
	}
	return c.blocks[n-first]
}

// byHash returns the block with the given hash, or nil.
func (c *chain) byHash(h string) *block {
	if h == c.genesis.hash {
		return c.genesis
	}
	for i := len(c.blocks) - 1; i >= 0; i-- {
		if c.blocks[i].hash == h {
			return c.blocks[i]
		}
	}
	return nil
}

// next appends a block on top of the best one and returns it.
func (c *chain) next() *block {
	b := makeBlock(c.best().number+1, c.best().hash)
	c.blocks = append(c.blocks, b)
	return b
}

// setBest makes block n the best one, producing or dropping blocks.
func (c *chain) setBest(n uint64) {
	best := c.best().number
	switch {
	case n < c.blocks[0].number:
		c.blocks = []*block{c.genesis}
		for n > 0 && c.best().number < n {
			c.next()
		}
	case n <= best:
		c.blocks = c.blocks[:n-c.blocks[0].number+1]
	case n-best > maxGap:
		parent := blake2b256([]byte("rpctest parent " + strconv.FormatUint(n, 10)))
		c.blocks = []*block{makeBlock(n, hexString(parent[:]))}
	default:
		for c.best().number < n {
			c.next()
		}
	}
	if c.finalized.number > n {
		c.finalized = c.best() // a chain set back below its finalized block
	}
}

// makeBlock builds the header at height n on parent. The hash is the blake2
// hash of the SCALE-encoded header, as Substrate and polkadot-js compute it.
func makeBlock(n uint64, parent string) *block {
	state := blake2b256(binary.LittleEndian.AppendUint64([]byte("rpctest state "), n))
	h := Header{
		ParentHash:     parent,
		Number:         "0x" + strconv.FormatUint(n, 16),
		StateRoot:      hexString(state[:]),
		ExtrinsicsRoot: emptyTrieRoot,
		Digest:         Digest{Logs: []string{}},
	}
	return &block{number: n, hash: headerHash(h), header: h}
}

// headerHash encodes h as SCALE (parent, compact number, state root,
// extrinsics root, empty digest) and hashes it.
func headerHash(h Header) string {
	n, _ := strconv.ParseUint(h.Number[2:], 16, 64)
	var enc []byte
	enc = append(enc, mustHex(h.ParentHash)...)
	enc = append(enc, compact(n)...)
	enc = append(enc, mustHex(h.StateRoot)...)
	enc = append(enc, mustHex(h.ExtrinsicsRoot)...)
	enc = append(enc, 0) // no digest items
	sum := blake2b256(enc)
	return hexString(sum[:])
}

// compact is SCALE's compact encoding of an unsigned integer.
func compact(n uint64) []byte {
	switch {
	case n < 1<<6:
		return []byte{byte(n << 2)}
	case n < 1<<14:
		return binary.LittleEndian.AppendUint16(nil, uint16(n<<2|1))
	case n < 1<<30:
		return binary.LittleEndian.AppendUint32(nil, uint32(n<<2|2))
	}
	b := binary.LittleEndian.AppendUint64(nil, n)
	for len(b) > 4 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return append([]byte{byte(len(b)-4)<<2 | 3}, b...)
}

func hexString(b []byte) string { return "0x" + hex.EncodeToString(b) }

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s[2:])
	if err != nil {
		panic("rpctest: bad hex " + s)
	}
	return b
}
