// Command rawgcm is the baseline for the `file encrypt` benchmark: it reads
// IN in 1 MiB chunks, seals each 4 KiB block with plain crypto/aes
// AES-256-GCM (12-byte counter nonce, no additional data, no header, no
// stored nonce) on one goroutine, writes the result to OUT, syncs and
// closes it: the same I/O pattern as `mysecure file encrypt` with none of
// the format. The output is not decryptable on purpose (the key is random
// and forgotten); it exists to be timed and deleted.
//
// bench/format.sh times the whole process from outside, like it times
// mysecure. rawgcm also prints its own timings on standard error.
//
//	usage: rawgcm IN OUT
package main

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"time"
)

const (
	blockSize = 4096
	chunkSize = 1 << 20
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: rawgcm IN OUT")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintf(os.Stderr, "rawgcm: error: %v\n", err)
		os.Exit(1)
	}
}

func run(inPath, outPath string) error {
	start := time.Now()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	blk, err := aes.NewCipher(key)
	if err != nil {
		return err
	}
	aead, err := cipher.NewGCM(blk)
	if err != nil {
		return err
	}
	in, err := os.Open(inPath)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(outPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()

	plain := make([]byte, chunkSize)
	sealed := make([]byte, 0, chunkSize/blockSize*(blockSize+aead.Overhead()))
	nonce := make([]byte, aead.NonceSize())
	var ctr uint64
	var total int64
	var sealTime time.Duration
	for {
		n, rerr := io.ReadFull(in, plain)
		if n > 0 {
			t := time.Now()
			sealed = sealed[:0]
			for s := 0; s < n; s += blockSize {
				ctr++
				binary.BigEndian.PutUint64(nonce[4:], ctr)
				sealed = aead.Seal(sealed, nonce, plain[s:min(s+blockSize, n)], nil)
			}
			sealTime += time.Since(t)
			if _, err := out.Write(sealed); err != nil {
				return err
			}
			total += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	if err := out.Sync(); err != nil {
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	wall := time.Since(start)
	fmt.Fprintf(os.Stderr, "rawgcm: %d bytes in %.3f s (%.0f MB/s); sealing alone %.3f s (%.0f MB/s)\n",
		total, wall.Seconds(), float64(total)/wall.Seconds()/1e6,
		sealTime.Seconds(), float64(total)/sealTime.Seconds()/1e6)
	return nil
}
