package kmip

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// Operations (KMIP 1.4, 9.1.3.2.27).
const (
	opCreate   = 0x01
	opActivate = 0x12
	opEncrypt  = 0x1F
	opDecrypt  = 0x20
)

const (
	objectSymmetricKey = 0x02
	algAES             = 0x03
	modeGCM            = 0x09
	usageEncrypt       = 0x04
	usageDecrypt       = 0x08
	statusSuccess      = 0
)

// ServerError is a KMIP operation the server refused.
type ServerError struct {
	Op      string
	Reason  uint32
	Message string
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("kmip: the key server refused %s (reason %d): %s", e.Op, e.Reason, e.Message)
}

// ErrUnreachable wraps failures to reach the key server or to complete
// the TLS handshake.
var ErrUnreachable = errors.New("kmip: key server unreachable")

// Client talks to one key server. It opens one connection per operation
// (the kms slot needs one or two per unlock).
type Client struct {
	// Addr is host:port (5696 is KMIP's port).
	Addr string
	// TLS carries the client certificate and the CA that signs the
	// server's certificate.
	TLS *tls.Config
	// Timeout bounds each operation (default 10s).
	Timeout time.Duration
}

func (c *Client) call(ctx context.Context, name string, op uint32, payload Item) (Item, error) {
	to := c.Timeout
	if to == 0 {
		to = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, to)
	defer cancel()
	d := tls.Dialer{Config: c.TLS, NetDialer: &net.Dialer{}}
	conn, err := d.DialContext(ctx, "tcp", c.Addr)
	if err != nil {
		return Item{}, fmt.Errorf("%w: %s: %w", ErrUnreachable, c.Addr, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	req := Struct(TagRequestMessage,
		Struct(TagRequestHeader,
			Struct(TagProtocolVersion, Int32(TagProtocolVersionMajor, 1), Int32(TagProtocolVersionMinor, 4)),
			Int32(TagBatchCount, 1)),
		Struct(TagBatchItem, Enum(TagOperation, op), payload))
	// Requests and answers carry the kms slot's master key: wipe the
	// buffers once used (decoded items are copies).
	out := req.Marshal()
	_, err = conn.Write(out)
	clear(out)
	if err != nil {
		return Item{}, fmt.Errorf("%w: %s: %w", ErrUnreachable, c.Addr, err)
	}
	hdr := make([]byte, 8)
	if _, err := io.ReadFull(conn, hdr); err != nil {
		// A server that refuses the client certificate closes the
		// connection after the handshake.
		return Item{}, fmt.Errorf("%w: %s: no answer to %s (a server that does not accept the client certificate closes the connection): %w", ErrUnreachable, c.Addr, name, err)
	}
	n, err := MessageLength(hdr)
	if err != nil {
		return Item{}, err
	}
	msg := make([]byte, n)
	defer clear(msg)
	copy(msg, hdr)
	if _, err := io.ReadFull(conn, msg[8:]); err != nil {
		return Item{}, fmt.Errorf("%w: %s: %w", ErrUnreachable, c.Addr, err)
	}
	resp, err := Unmarshal(msg)
	if err != nil {
		return Item{}, err
	}
	if resp.Tag != TagResponseMessage {
		return Item{}, fmt.Errorf("%w: not a response message", ErrMalformed)
	}
	bi, ok := resp.Find(TagBatchItem)
	if !ok {
		return Item{}, fmt.Errorf("%w: response without a batch item", ErrMalformed)
	}
	st, ok := bi.Find(TagResultStatus)
	if !ok {
		return Item{}, fmt.Errorf("%w: response without a result status", ErrMalformed)
	}
	if st.Int != statusSuccess {
		e := &ServerError{Op: name}
		if r, ok := bi.Find(TagResultReason); ok {
			e.Reason = uint32(r.Int)
		}
		if m, ok := bi.Find(TagResultMessage); ok {
			e.Message = string(m.Bytes)
		}
		return Item{}, e
	}
	p, _ := bi.Find(TagResponsePayload)
	return p, nil
}

func attr(name string, v Item) Item {
	v.Tag = TagAttributeValue
	return Struct(TagAttribute, Text(TagAttributeName, name), v)
}

// CreateKey makes a new AES-256 key for encrypt and decrypt on the server,
// activates it, and returns its unique identifier.
func (c *Client) CreateKey(ctx context.Context) (string, error) {
	p, err := c.call(ctx, "Create", opCreate, Struct(TagRequestPayload,
		Enum(TagObjectType, objectSymmetricKey),
		Struct(TagTemplateAttribute,
			attr("Cryptographic Algorithm", Enum(0, algAES)),
			attr("Cryptographic Length", Int32(0, 256)),
			attr("Cryptographic Usage Mask", Int32(0, usageEncrypt|usageDecrypt)))))
	if err != nil {
		return "", err
	}
	id, ok := p.Find(TagUniqueIdentifier)
	if !ok || len(id.Bytes) == 0 {
		return "", fmt.Errorf("%w: Create answered no identifier", ErrMalformed)
	}
	if _, err := c.call(ctx, "Activate", opActivate, Struct(TagRequestPayload, Text(TagUniqueIdentifier, string(id.Bytes)))); err != nil {
		return "", err
	}
	return string(id.Bytes), nil
}

func gcmParams() Item {
	return Struct(TagCryptographicParameters,
		Enum(TagBlockCipherMode, modeGCM),
		Enum(TagCryptographicAlgorithm, algAES),
		Int32(TagTagLength, 16))
}

// Sealed is what Encrypt returns: all three are needed to decrypt.
type Sealed struct {
	Nonce      []byte
	Ciphertext []byte
	Tag        []byte
}

// Encrypt has the server seal plain with key id in AES-256-GCM, binding
// ad under a random 96-bit nonce chosen here (pykmip would otherwise pick
// a 128-bit one).
func (c *Client) Encrypt(ctx context.Context, id string, plain, ad []byte) (Sealed, error) {
	nonce := make([]byte, 12)
	if _, err := rand.Read(nonce); err != nil {
		return Sealed{}, err
	}
	items := []Item{Text(TagUniqueIdentifier, id), gcmParams(), ByteString(TagData, plain),
		ByteString(TagIVCounterNonce, nonce), ByteString(TagAuthenticatedEncryptionAD, ad)}
	p, err := c.call(ctx, "Encrypt", opEncrypt, Struct(TagRequestPayload, items...))
	if err != nil {
		return Sealed{}, err
	}
	var s Sealed
	d, ok1 := p.Find(TagData)
	tg, ok2 := p.Find(TagAuthenticatedEncryptionTg)
	if !ok1 || !ok2 {
		return Sealed{}, fmt.Errorf("%w: Encrypt answered without data or tag", ErrMalformed)
	}
	s.Ciphertext, s.Tag = d.Bytes, tg.Bytes
	s.Nonce = nonce
	if len(s.Nonce) != 12 || len(s.Tag) != 16 || len(s.Ciphertext) != len(plain) {
		return Sealed{}, fmt.Errorf("%w: Encrypt answered a %d-byte nonce, %d-byte tag, %d-byte ciphertext", ErrMalformed, len(s.Nonce), len(s.Tag), len(s.Ciphertext))
	}
	return s, nil
}

// Decrypt has the server open s with key id and ad. A tampered s or a
// wrong ad is refused by the server (a ServerError).
func (c *Client) Decrypt(ctx context.Context, id string, s Sealed, ad []byte) ([]byte, error) {
	p, err := c.call(ctx, "Decrypt", opDecrypt, Struct(TagRequestPayload,
		Text(TagUniqueIdentifier, id), gcmParams(), ByteString(TagData, s.Ciphertext),
		ByteString(TagIVCounterNonce, s.Nonce), ByteString(TagAuthenticatedEncryptionAD, ad),
		ByteString(TagAuthenticatedEncryptionTg, s.Tag)))
	if err != nil {
		return nil, err
	}
	d, ok := p.Find(TagData)
	if !ok {
		return nil, fmt.Errorf("%w: Decrypt answered no data", ErrMalformed)
	}
	return d.Bytes, nil
}
