#include "base/sealed_token.h"

#include <cstring>
#include <vector>

#include "rill/base/md5.h"

namespace rill::internal {
namespace {

constexpr char kHex[] = "0123456789abcdef";

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

Md5Digest Check(std::string_view domain, std::string_view fields) {
  std::string checked(domain);
  checked.append(fields);
  return Md5(checked);
}

}  // namespace

std::string SealToken(std::string_view domain, std::string_view fields, size_t check_bytes) {
  const Md5Digest check = Check(domain, fields);
  std::string token;
  token.reserve(2 * (fields.size() + check_bytes));
  auto put = [&](uint8_t b) {
    token.push_back(kHex[b >> 4]);
    token.push_back(kHex[b & 15]);
  };
  for (char c : fields) put(static_cast<uint8_t>(c));
  for (size_t i = 0; i < check_bytes; ++i) put(check[i]);
  return token;
}

bool OpenToken(std::string_view domain, std::string_view token, size_t check_bytes, void* fields,
               size_t field_bytes) {
  if (token.size() != 2 * (field_bytes + check_bytes)) return false;
  std::vector<char> bytes(field_bytes + check_bytes);
  for (size_t i = 0; i < bytes.size(); ++i) {
    const int high = HexValue(token[2 * i]);
    const int low = HexValue(token[2 * i + 1]);
    if (high < 0 || low < 0) return false;
    bytes[i] = static_cast<char>(high * 16 + low);
  }
  const std::string_view field_view(bytes.data(), field_bytes);
  const Md5Digest check = Check(domain, field_view);
  if (std::memcmp(check.data(), bytes.data() + field_bytes, check_bytes) != 0) return false;
  std::memcpy(fields, bytes.data(), field_bytes);
  return true;
}

}  // namespace rill::internal
