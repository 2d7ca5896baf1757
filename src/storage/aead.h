// AES-256-GCM for encryption at rest (OpenSSL's EVP interface, which uses AES-NI where the CPU
// has it). Internal to rill.
//
// Why GCM: authenticated encryption, so a flipped bit, a swapped frame or a wrong key fails
// authentication instead of decrypting to garbage; the associated data binds a ciphertext to
// where it belongs (a frame header, a shard, a key id).
//
// Nonces: 12 bytes, never reused under one key. Callers use fresh random nonces (RandomBytes) or
// a counter under a key that lives for one process only.
//
// Thread safety: Aes256Gcm is not thread-safe (it owns one cipher context); use one per thread or
// under a lock. RandomBytes is thread-safe.
#ifndef RILL_STORAGE_AEAD_H_
#define RILL_STORAGE_AEAD_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

struct evp_cipher_ctx_st;

namespace rill::internal {

inline constexpr size_t kAeadKeyBytes = 32;
inline constexpr size_t kAeadNonceBytes = 12;
inline constexpr size_t kAeadTagBytes = 16;

// Fills `out` with `size` cryptographically random bytes (OpenSSL's RAND_bytes). kInternalFailure
// if the generator fails (it does not once seeded).
[[nodiscard]] absl::Status RandomBytes(void* out, size_t size);

// Overwrites `size` bytes at `data` with zeros in a way the compiler may not optimise away
// (OPENSSL_cleanse): for key material about to be freed. Thread-safe; allocates nothing.
void SecureZero(void* data, size_t size);

class Aes256Gcm {
 public:
  // `key`: exactly kAeadKeyBytes (else INVALID_ARGUMENT). Allocates one cipher context.
  [[nodiscard]] static absl::StatusOr<Aes256Gcm> Create(std::string_view key);

  Aes256Gcm(Aes256Gcm&&) noexcept;
  Aes256Gcm& operator=(Aes256Gcm&&) noexcept;
  ~Aes256Gcm();

  // Encrypts `plaintext` into `out` (plaintext.size() bytes; may equal plaintext.data()) and
  // writes the kAeadTagBytes tag to `tag`. `nonce`: kAeadNonceBytes. Allocates nothing.
  [[nodiscard]] absl::Status Seal(const void* nonce, std::string_view aad,
                                  std::string_view plaintext, char* out, char* tag);

  // Decrypts `ciphertext` into `out` (ciphertext.size() bytes; may equal ciphertext.data()) and
  // checks `tag`. DATA_LOSS "authentication failed" when the key, nonce, associated data,
  // ciphertext or tag differ from what Seal saw; `out` then holds nothing to use.
  [[nodiscard]] absl::Status Open(const void* nonce, std::string_view aad,
                                  std::string_view ciphertext, const char* tag, char* out);

 private:
  struct CtxDeleter {
    void operator()(evp_cipher_ctx_st* ctx) const;
  };
  explicit Aes256Gcm(std::unique_ptr<evp_cipher_ctx_st, CtxDeleter> ctx) : ctx_(std::move(ctx)) {}
  std::unique_ptr<evp_cipher_ctx_st, CtxDeleter> ctx_;
};

}  // namespace rill::internal

#endif  // RILL_STORAGE_AEAD_H_
