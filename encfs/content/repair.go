package content

import (
	"fmt"
	"io"
)

// TailRepair says what RepairTail cut from a store file.
type TailRepair struct {
	Block      int64 // the torn block: the file's last stored block
	StoredFrom int64 // store file size before
	StoredTo   int64 // and after
	PlainFrom  int64 // plaintext size before (-1: the stored size was impossible)
	PlainTo    int64 // plaintext size after
}

func (r *TailRepair) String() string {
	return fmt.Sprintf("torn last block %d cut: %d -> %d stored bytes, plaintext %d -> %d bytes",
		r.Block, r.StoredFrom, r.StoredTo, r.PlainFrom, r.PlainTo)
}

// RepairTail checks the end of store file b and cuts a torn last block
// away. It returns nil and no error when there was nothing to cut or the
// damage is not a torn tail; an error only when b cannot be read or cut.
// Call it before Open, with nothing else using b.
//
// A process killed in the middle of its store write (the daemon under
// kill -9) leaves the part of the write the kernel had already copied: when
// that write extended the file, the last stored block is cut short or
// holds new bytes followed by old ones, fails authentication, and the file
// reads as an error from that block on (or does not open, when the stored
// size leaves the block no room for a byte). RepairTail cuts only such a
// tail:
//
//   - only the last stored block is ever cut, and only when it does not
//     authenticate at its stored length;
//   - the block before it (if any) must authenticate as a whole block (or
//     be a hole): a file with more damage than its last block is left as
//     it is, and reads as an error;
//   - if a prefix of the torn block authenticates (a shrinking Truncate
//     killed between sealing the new last block and cutting the store
//     file), the file is cut after that prefix; otherwise at the start of
//     the torn block, a block boundary.
//
// What remains is authentic: every byte was sealed at its position in
// this file. The file may be shorter than any size it ever had on the
// mount, by at most the torn block: writes after the last fsync are not
// promised. Whoever can write the store could cut the file there anyway
// (docs/threat-model.md).
func RepairTail(b Backing, key *Key, name string) (*TailRepair, error) {
	fi, err := b.Stat()
	if err != nil {
		return nil, fmt.Errorf("failed to stat %s: %w", name, err)
	}
	stored := fi.Size()
	if stored <= HeaderSize {
		return nil, nil // empty, a lone header, or a cut header: not ours
	}
	hdr := make([]byte, HeaderSize)
	if _, err := b.ReadAt(hdr, 0); err != nil {
		return nil, fmt.Errorf("failed to read header of %s: %w", name, err)
	}
	h, err := ParseHeader(hdr)
	if err != nil || h.KeyID != key.id {
		return nil, nil // Open reports it
	}
	blk := (stored - HeaderSize) / CipherBlockSize
	if (stored-HeaderSize)%CipherBlockSize == 0 {
		blk--
	}
	start := blockOffset(blk)
	last := make([]byte, stored-start)
	if _, err := b.ReadAt(last, start); err != nil && err != io.EOF {
		return nil, fmt.Errorf("failed to read %s: %w", name, err)
	}
	plain := make([]byte, BlockSize)
	ad := make([]byte, 0, 8+HeaderSize)
	if len(last) > BlockOverhead {
		if _, err := key.openBlock(plain, last, blk, hdr, ad); err == nil {
			return nil, nil // sound
		}
	}
	if blk > 0 {
		prev := make([]byte, CipherBlockSize)
		if _, err := b.ReadAt(prev, blockOffset(blk-1)); err != nil {
			return nil, fmt.Errorf("failed to read %s: %w", name, err)
		}
		if _, err := key.openBlock(plain, prev, blk-1, hdr, ad); err != nil {
			return nil, nil // more than the tail is damaged
		}
	}
	to := start
	for n := len(last) - 1; n > BlockOverhead; n-- {
		if allZero(last[:n]) {
			break // no sealed block starts with a nonce of zeros
		}
		if _, err := key.openBlock(plain, last[:n], blk, hdr, ad); err == nil {
			to = start + int64(n)
			break
		}
	}
	if err := b.Truncate(to); err != nil {
		return nil, fmt.Errorf("failed to cut the torn end of %s: %w", name, err)
	}
	r := &TailRepair{Block: blk, StoredFrom: stored, StoredTo: to, PlainFrom: -1}
	if ps, err := PlainSize(stored); err == nil {
		r.PlainFrom = ps
	}
	r.PlainTo, _ = PlainSize(to)
	return r, nil
}
