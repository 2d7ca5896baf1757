#include "storage/aead.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <climits>

#include "rill/base/error.h"

namespace rill::internal {

absl::Status RandomBytes(void* out, size_t size) {
  if (size > static_cast<size_t>(INT_MAX) ||
      RAND_bytes(static_cast<unsigned char*>(out), static_cast<int>(size)) != 1) {
    return InternalFailureError("the random number generator failed (OpenSSL RAND_bytes)");
  }
  return absl::OkStatus();
}

void SecureZero(void* data, size_t size) {
  if (size != 0) OPENSSL_cleanse(data, size);
}

void Aes256Gcm::CtxDeleter::operator()(evp_cipher_ctx_st* ctx) const { EVP_CIPHER_CTX_free(ctx); }

absl::StatusOr<Aes256Gcm> Aes256Gcm::Create(std::string_view key) {
  if (key.size() != kAeadKeyBytes) {
    return absl::InvalidArgumentError("an AES-256 key is exactly 32 bytes");
  }
  std::unique_ptr<evp_cipher_ctx_st, CtxDeleter> ctx(EVP_CIPHER_CTX_new());
  // The key schedule is computed once here; Seal and Open only set the nonce.
  if (ctx == nullptr ||
      EVP_CipherInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr,
                        reinterpret_cast<const unsigned char*>(key.data()), nullptr, 1) != 1) {
    return InternalFailureError("OpenSSL could not set up AES-256-GCM");
  }
  return Aes256Gcm(std::move(ctx));
}

Aes256Gcm::Aes256Gcm(Aes256Gcm&&) noexcept = default;
Aes256Gcm& Aes256Gcm::operator=(Aes256Gcm&&) noexcept = default;
Aes256Gcm::~Aes256Gcm() = default;

absl::Status Aes256Gcm::Seal(const void* nonce, std::string_view aad, std::string_view plaintext,
                             char* out, char* tag) {
  EVP_CIPHER_CTX* ctx = ctx_.get();
  int n = 0;
  if (plaintext.size() > static_cast<size_t>(INT_MAX) ||
      aad.size() > static_cast<size_t>(INT_MAX) ||
      EVP_CipherInit_ex(ctx, nullptr, nullptr, nullptr, static_cast<const unsigned char*>(nonce),
                        1) != 1 ||
      (!aad.empty() &&
       EVP_EncryptUpdate(ctx, nullptr, &n, reinterpret_cast<const unsigned char*>(aad.data()),
                         static_cast<int>(aad.size())) != 1) ||
      EVP_EncryptUpdate(ctx, reinterpret_cast<unsigned char*>(out), &n,
                        reinterpret_cast<const unsigned char*>(plaintext.data()),
                        static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx, reinterpret_cast<unsigned char*>(out) + n, &n) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, static_cast<int>(kAeadTagBytes), tag) != 1) {
    return InternalFailureError("AES-256-GCM encryption failed");
  }
  return absl::OkStatus();
}

absl::Status Aes256Gcm::Open(const void* nonce, std::string_view aad, std::string_view ciphertext,
                             const char* tag, char* out) {
  EVP_CIPHER_CTX* ctx = ctx_.get();
  int n = 0;
  if (ciphertext.size() > static_cast<size_t>(INT_MAX) ||
      aad.size() > static_cast<size_t>(INT_MAX) ||
      EVP_CipherInit_ex(ctx, nullptr, nullptr, nullptr, static_cast<const unsigned char*>(nonce),
                        0) != 1 ||
      (!aad.empty() &&
       EVP_DecryptUpdate(ctx, nullptr, &n, reinterpret_cast<const unsigned char*>(aad.data()),
                         static_cast<int>(aad.size())) != 1) ||
      EVP_DecryptUpdate(ctx, reinterpret_cast<unsigned char*>(out), &n,
                        reinterpret_cast<const unsigned char*>(ciphertext.data()),
                        static_cast<int>(ciphertext.size())) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, static_cast<int>(kAeadTagBytes),
                          const_cast<char*>(tag)) != 1) {
    return InternalFailureError("AES-256-GCM decryption failed");
  }
  if (EVP_DecryptFinal_ex(ctx, reinterpret_cast<unsigned char*>(out) + n, &n) != 1) {
    return absl::DataLossError("authentication failed (AES-256-GCM tag mismatch)");
  }
  return absl::OkStatus();
}

}  // namespace rill::internal
