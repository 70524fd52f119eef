package identity

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/soukhq/souk/platform/apperr"
)

// Argon2Params are argon2id's cost parameters (RFC 9106). The encoded hash
// records them, so they can be raised without invalidating stored hashes.
type Argon2Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes over the memory
	Threads uint8  // lanes
	SaltLen uint32 // bytes
	KeyLen  uint32 // bytes
}

// DefaultArgon2 is 64 MiB, 2 passes, 2 lanes, a 16-byte salt and a 32-byte
// key: above OWASP's minimum (19 MiB, t=2, p=1), and ~60 ms per hash on one
// core of a current server. See docs/adr/0011-passwords-and-login-throttling.md.
var DefaultArgon2 = Argon2Params{Memory: 64 * 1024, Time: 2, Threads: 2, SaltLen: 16, KeyLen: 32}

// The bounds Validate enforces on configured parameters, and the (wider)
// bounds a stored hash is parsed with, so that a corrupt or planted hash
// cannot make one verification allocate gigabytes.
const (
	minArgon2Memory   = 19 * 1024 // OWASP's floor for argon2id
	maxArgon2Memory   = 1 << 20   // 1 GiB
	maxArgon2Time     = 20
	minSaltLen        = 16
	maxSaltLen        = 64
	minKeyLen         = 16
	maxKeyLen         = 64
	minPasswordChars  = 10
	maxPasswordChars  = 256
	argon2PHCIdentity = "argon2id"
)

func (p Argon2Params) validate() error {
	switch {
	case p.Memory < minArgon2Memory || p.Memory > maxArgon2Memory:
		return fmt.Errorf("memory %d KiB: want %d to %d", p.Memory, minArgon2Memory, maxArgon2Memory)
	case p.Time < 1 || p.Time > maxArgon2Time:
		return fmt.Errorf("time %d: want 1 to %d", p.Time, maxArgon2Time)
	case p.Threads < 1:
		return errors.New("threads: want at least 1")
	case p.SaltLen < minSaltLen || p.SaltLen > maxSaltLen:
		return fmt.Errorf("salt length %d: want %d to %d", p.SaltLen, minSaltLen, maxSaltLen)
	case p.KeyLen < minKeyLen || p.KeyLen > maxKeyLen:
		return fmt.Errorf("key length %d: want %d to %d", p.KeyLen, minKeyLen, maxKeyLen)
	}
	return nil
}

// hasher hashes and verifies passwords with argon2id. At most
// GOMAXPROCS hashes run at once (each holds Memory KiB while it runs), so a
// flood of logins queues instead of exhausting memory. It is safe for
// concurrent use.
type hasher struct {
	params Argon2Params
	slots  chan struct{}
	// dummy is an encoded hash with params, a random salt and a random
	// key (which no password can match), verified when the account does
	// not exist so that the answer takes as long as for a wrong password.
	dummy string
	// verifications counts verify calls (tests check that an unknown
	// account costs one, like a wrong password).
	verifications atomic.Int64
}

func newHasher(p Argon2Params) *hasher {
	salt, key := make([]byte, p.SaltLen), make([]byte, p.KeyLen)
	_, _ = rand.Read(salt)
	_, _ = rand.Read(key)
	return &hasher{params: p, slots: make(chan struct{}, runtime.GOMAXPROCS(0)), dummy: encodeHash(p, salt, key)}
}

// acquire waits for a hashing slot, or for ctx to end.
func (h *hasher) acquire(ctx context.Context) error {
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return apperr.Wrap(ctx.Err(), apperr.Unavailable, "too many password checks in progress; retry")
	}
}

func (h *hasher) release() { <-h.slots }

// hash returns the PHC-style encoding of password's argon2id hash with a
// new random salt: $argon2id$v=19$m=65536,t=2,p=2$<salt>$<key> (unpadded
// standard base64).
func (h *hasher) hash(ctx context.Context, password string) (string, error) {
	salt := make([]byte, h.params.SaltLen)
	_, _ = rand.Read(salt) // crypto/rand never fails on supported platforms
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, h.params.Time, h.params.Memory, h.params.Threads, h.params.KeyLen)
	h.release()
	return encodeHash(h.params, salt, key), nil
}

// verify reports whether password matches the encoded hash, and whether the
// hash was made with other parameters than the current ones (the caller
// then stores a fresh hash). An encoded hash that cannot be parsed is an
// error, never a match.
func (h *hasher) verify(ctx context.Context, password, encoded string) (ok, stale bool, err error) {
	p, salt, want, err := decodeHash(encoded)
	if err != nil {
		return false, false, err
	}
	h.verifications.Add(1)
	if err := h.acquire(ctx); err != nil {
		return false, false, err
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	h.release()
	return subtle.ConstantTimeCompare(got, want) == 1, p != h.params, nil
}

// verifyDummy spends the time of a verification on the dummy hash: the
// account does not exist, and nobody may tell that from the timing.
func (h *hasher) verifyDummy(ctx context.Context, password string) error {
	_, _, err := h.verify(ctx, password, h.dummy)
	return err
}

var b64 = base64.RawStdEncoding

func encodeHash(p Argon2Params, salt, key []byte) string {
	return fmt.Sprintf("$%s$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2PHCIdentity, argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

var errBadHash = errors.New("stored password hash is not an argon2id hash this service can read")

func decodeHash(encoded string) (p Argon2Params, salt, key []byte, err error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != argon2PHCIdentity {
		return p, nil, nil, errBadHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, nil, nil, errBadHash
	}
	var threads uint32
	if n, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &threads); err != nil || n != 3 ||
		fmt.Sprintf("m=%d,t=%d,p=%d", p.Memory, p.Time, threads) != parts[3] {
		return p, nil, nil, errBadHash
	}
	if p.Memory < 8 || p.Memory > maxArgon2Memory || p.Time < 1 || p.Time > maxArgon2Time || threads < 1 || threads > 255 {
		return p, nil, nil, errBadHash
	}
	p.Threads = uint8(threads)
	if salt, err = b64.Strict().DecodeString(parts[4]); err != nil || len(salt) < 8 || len(salt) > maxSaltLen {
		return p, nil, nil, errBadHash
	}
	if key, err = b64.Strict().DecodeString(parts[5]); err != nil || len(key) < minKeyLen || len(key) > maxKeyLen {
		return p, nil, nil, errBadHash
	}
	p.SaltLen, p.KeyLen = uint32(len(salt)), uint32(len(key))
	return p, salt, key, nil
}

// checkPassword applies the password policy to a new password: 10 to 256
// characters of valid UTF-8, not one character repeated, not the account's
// email address (nor the part before its @).
func checkPassword(v *apperr.Validation, password, email string) {
	const field = "password"
	n := utf8.RuneCountInString(password)
	switch {
	case password == "":
		v.Add(field, "required", "password is required")
		return
	case !utf8.ValidString(password):
		v.Add(field, "invalid", "password must be valid UTF-8 text")
		return
	case n < minPasswordChars:
		v.Addf(field, "too_short", "password must have at least %d characters", minPasswordChars)
		return
	case n > maxPasswordChars:
		v.Addf(field, "too_long", "password must have at most %d characters", maxPasswordChars)
		return
	}
	first, _ := utf8.DecodeRuneInString(password)
	if strings.Trim(password, string(first)) == "" {
		v.Add(field, "too_weak", "password must not be one character repeated")
		return
	}
	email = strings.ToLower(strings.TrimSpace(email))
	local, _, _ := strings.Cut(email, "@")
	if lower := strings.ToLower(password); email != "" && (lower == email || lower == local) {
		v.Add(field, "too_weak", "password must not be your email address")
	}
}
