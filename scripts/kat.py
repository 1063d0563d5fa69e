#!/usr/bin/env python3
"""Known-answer vectors for mysecure's formats, computed independently of
the Go code (issue 16): HKDF-SHA256 subkeys, the content format (header and
AES-256-GCM blocks bound to block number and header), and EME-AES-256 file
names (EME written here from Halevi-Rogaway's description, with AES-ECB from
the 'cryptography' package as the only primitive).

Run once; the output (testdata/kat/vectors.json) is committed and the Go tests
check their implementation against it. Nothing here runs in CI.

    python3 scripts/kat.py > testdata/kat/vectors.json
"""
import base64
import hashlib
import json
import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def subkey(master, volume_id, purpose, category):
    info = ("mysecure/v1/" + purpose + "/" + category).encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=volume_id, info=info).derive(master)


# ---- content ----
MAGIC = b"MYSEC\x00"
BLOCK = 4096


def header(file_id, key_id):
    return MAGIC + struct.pack(">H", 1) + file_id + key_id


def seal_file(key, hdr, plain, nonces):
    out = bytearray(hdr)
    aes = AESGCM(key)
    for n in range(0, (len(plain) + BLOCK - 1) // BLOCK):
        block = plain[n * BLOCK:(n + 1) * BLOCK]
        ad = struct.pack(">Q", n) + hdr
        # 16-byte nonces: AESGCM accepts them (GHASH-derived counter), as Go's NewGCMWithNonceSize(16)
        out += nonces[n] + aes.encrypt(nonces[n], block, ad)
    return bytes(out)


# ---- EME (Halevi & Rogaway, "A Parallelizable Enciphering Mode", 2003) ----
def gf_mul2(b):
    # multiply by x in GF(2^128), little-endian bytes as in the EME paper's
    # reference (and rfjakob/eme): shift left by one bit, reduce with 0x87
    out = bytearray(16)
    carry = 0
    for i in range(16):
        out[i] = ((b[i] << 1) | carry) & 0xFF
        carry = b[i] >> 7
    if carry:
        out[0] ^= 0x87
    return bytes(out)


def xor(a, b):
    return bytes(x ^ y for x, y in zip(a, b))


def eme_encrypt(key, tweak, p):
    assert len(tweak) == 16 and len(p) % 16 == 0 and 16 <= len(p) <= 16 * 128
    ecb = Cipher(algorithms.AES(key), modes.ECB())
    enc = lambda b: ecb.encryptor().update(b)
    m = len(p) // 16
    L = enc(bytes(16))
    L = gf_mul2(L)  # L = 2 * E(0)
    ppp = []
    Lj = L
    for j in range(m):
        pj = p[16 * j:16 * (j + 1)]
        ppp.append(enc(xor(pj, Lj)))
        Lj = gf_mul2(Lj)
    mp = tweak
    for x in ppp:
        mp = xor(mp, x)
    mc = enc(mp)
    M = xor(mp, mc)
    ccc = [None] * m
    Mj = M
    for j in range(1, m):
        Mj = gf_mul2(Mj)
        ccc[j] = xor(ppp[j], Mj)
    cc1 = mc
    for j in range(1, m):
        cc1 = xor(cc1, ccc[j])
    ccc[0] = xor(cc1, tweak)
    out = bytearray()
    Lj = L
    for j in range(m):
        out += xor(enc(ccc[j]), Lj)
        Lj = gf_mul2(Lj)
    return bytes(out)


def pkcs7(b):
    n = 16 - len(b) % 16
    return b + bytes([n]) * n


def enc_name(key, diriv, name):
    return base64.urlsafe_b64encode(eme_encrypt(key, diriv, pkcs7(name.encode()))).rstrip(b"=").decode()


def det(label, n):
    # deterministic "random" bytes for the vectors
    out = b""
    i = 0
    while len(out) < n:
        out += hashlib.sha256(label.encode() + struct.pack(">I", i)).digest()
        i += 1
    return out[:n]


def main():
    master = det("master", 32)
    volume_id = det("volume", 16)
    v = {"generator": "scripts/kat.py (Python 'cryptography' package)", "master": master.hex(), "volume_id": volume_id.hex(),
         "subkeys": [], "content": [], "names": []}
    for purpose in ["content", "names", "key-id", "config-mac", "rules", "catalog"]:
        cats = ["mysql", "mysqlbackup"] if purpose in ("content", "names", "key-id") else [""]
        for c in cats:
            v["subkeys"].append({"purpose": purpose, "category": c, "key": subkey(master, volume_id, purpose, c).hex()})
    ck = subkey(master, volume_id, "content", "mysql")
    kid = subkey(master, volume_id, "key-id", "mysql")[:8]
    for size in [1, 4095, 4096, 4097, 3 * 4096 + 100]:
        plain = det("plain%d" % size, size)
        hdr = header(det("fileid%d" % size, 16), kid)
        nonces = [det("nonce%d/%d" % (size, n), 16) for n in range((size + BLOCK - 1) // BLOCK)]
        v["content"].append({"category": "mysql", "plain_sha256": hashlib.sha256(plain).hexdigest(), "plain_seed": "plain%d" % size,
                             "size": size, "file": base64.b64encode(seal_file(ck, hdr, plain, nonces)).decode()})
    nk = subkey(master, volume_id, "names", "mysql")
    diriv = det("diriv", 16)
    for name in ["a", "ibdata1", "0123456789abcde", "0123456789abcdef", "ib_logfile0", "\u00e9t\u00e9.ibd", "x" * 100, "y" * 255]:
        v["names"].append({"category": "mysql", "diriv": diriv.hex(), "name": name, "encrypted": enc_name(nk, diriv, name)})
    json.dump(v, __import__("sys").stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
