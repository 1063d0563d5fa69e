package kmip

import (
	"bytes"
	"testing"
)

func FuzzUnmarshal(f *testing.F) {
	f.Add(Struct(TagResponseMessage, Struct(TagBatchItem, Enum(TagResultStatus, 0), ByteString(TagData, []byte("abc")))).Marshal())
	f.Add(Struct(TagRequestMessage, Int32(TagBatchCount, 1), Text(TagUniqueIdentifier, "1"), Item{Tag: TagData, Type: TypeBoolean, Int: 1}).Marshal())
	f.Add([]byte{0x42, 0, 0x7b, 1, 0, 0, 0, 8})
	f.Fuzz(func(t *testing.T, b []byte) {
		it, err := Unmarshal(b)
		if err != nil {
			return
		}
		// What decodes re-encodes to the same bytes (padding aside).
		again, err := Unmarshal(it.Marshal())
		if err != nil {
			t.Fatalf("re-encoded item does not decode: %v", err)
		}
		if !bytes.Equal(again.Marshal(), it.Marshal()) {
			t.Fatal("encoding is not stable")
		}
	})
}

func TestRoundTrip(t *testing.T) {
	in := Struct(TagRequestMessage, Int32(TagBatchCount, -1), Enum(TagOperation, opEncrypt), ByteString(TagData, []byte("12345678901")))
	b := in.Marshal()
	if len(b)%8 != 0 {
		t.Fatalf("length %d is not a multiple of 8", len(b))
	}
	out, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := out.Find(TagData); string(d.Bytes) != "12345678901" {
		t.Fatalf("data %q", d.Bytes)
	}
	if c, _ := out.Find(TagBatchCount); c.Int != -1 {
		t.Fatalf("integer %d", c.Int)
	}
	if _, err := Unmarshal(b[:len(b)-8]); err == nil {
		t.Fatal("truncated message decoded")
	}
}
