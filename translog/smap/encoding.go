package smap

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// MaxProofSize bounds an encoded proof: the depth, a full bitmap, 256
// siblings and another key's entry.
const MaxProofSize = 2 + Depth/8 + Depth*HashSize + 1 + KeySize + 8 + HashSize

// Bytes returns the proof's encoding:
//
//	u16be depth                    0 … 256
//	bitmap, ⌈depth/8⌉ bytes        bit d (most significant first) set when
//	                               the sibling at depth d+1 is not empty;
//	                               the unused low bits are 0
//	the non-empty siblings         32 bytes each, top first
//	u8 end                         0 the key's leaf, 1 empty, 2 another leaf
//	for end 2: key ‖ u64be seq ‖ head hash
//
// There is one encoding of each proof: ParseProof refuses any other.
func (p Proof) Bytes() []byte {
	depth := min(len(p.Siblings), Depth)
	bm := make([]byte, (depth+7)/8)
	out := binary.BigEndian.AppendUint16(nil, uint16(depth))
	var hs []byte
	for d, s := range p.Siblings[:depth] {
		if s != EmptyHash {
			bm[d/8] |= 0x80 >> (d % 8)
			hs = append(hs, s[:]...)
		}
	}
	out = append(append(out, bm...), hs...)
	out = append(out, byte(p.End))
	if p.End == EndOther {
		out = append(out, p.Other.Key[:]...)
		out = binary.BigEndian.AppendUint64(out, p.Other.Value.Seq)
		out = append(out, p.Other.Value.Head[:]...)
	}
	return out
}

// ParseProof reads a proof's encoding (Proof.Bytes), strictly: a depth of
// at most 256, unused bitmap bits 0, no sibling spelled out that is
// EmptyHash, a known end, nothing after it. It checks the shape only;
// Verify checks the proof.
func ParseProof(b []byte) (Proof, error) {
	if len(b) > MaxProofSize {
		return Proof{}, fmt.Errorf("%w: %d bytes, at most %d", ErrBadProof, len(b), MaxProofSize)
	}
	if len(b) < 2 {
		return Proof{}, fmt.Errorf("%w: %d bytes, too short for a depth", ErrBadProof, len(b))
	}
	depth := int(binary.BigEndian.Uint16(b))
	if depth > Depth {
		return Proof{}, fmt.Errorf("%w: depth %d, at most %d", ErrBadProof, depth, Depth)
	}
	b = b[2:]
	nbm := (depth + 7) / 8
	if len(b) < nbm {
		return Proof{}, fmt.Errorf("%w: the bitmap of depth %d is cut short", ErrBadProof, depth)
	}
	bm := b[:nbm]
	b = b[nbm:]
	if depth%8 != 0 && bm[nbm-1]&(0xff>>(depth%8)) != 0 {
		return Proof{}, fmt.Errorf("%w: bitmap bits set beyond depth %d", ErrBadProof, depth)
	}
	set := 0
	for _, x := range bm {
		set += bits.OnesCount8(x)
	}
	if len(b) < set*HashSize+1 {
		return Proof{}, fmt.Errorf("%w: %d siblings and an end announced, %d bytes left", ErrBadProof, set, len(b))
	}
	p := Proof{Siblings: make([]Hash, depth)}
	for d := range depth {
		if bm[d/8]&(0x80>>(d%8)) == 0 {
			p.Siblings[d] = EmptyHash
			continue
		}
		copy(p.Siblings[d][:], b[:HashSize])
		b = b[HashSize:]
		if p.Siblings[d] == EmptyHash {
			return Proof{}, fmt.Errorf("%w: sibling at depth %d is spelled out but empty", ErrBadProof, d+1)
		}
	}
	p.End = End(b[0])
	b = b[1:]
	switch p.End {
	case EndValue, EndEmpty:
	case EndOther:
		if len(b) != KeySize+8+HashSize {
			return Proof{}, fmt.Errorf("%w: another leaf of %d bytes, want %d", ErrBadProof, len(b), KeySize+8+HashSize)
		}
		copy(p.Other.Key[:], b)
		p.Other.Value.Seq = binary.BigEndian.Uint64(b[KeySize:])
		copy(p.Other.Value.Head[:], b[KeySize+8:])
		b = nil
	default:
		return Proof{}, fmt.Errorf("%w: unknown end %d", ErrBadProof, p.End)
	}
	if len(b) != 0 {
		return Proof{}, fmt.Errorf("%w: %d bytes after the end", ErrBadProof, len(b))
	}
	return p, nil
}
