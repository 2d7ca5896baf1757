#include "sql/reference_table.h"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "rill/base/error.h"
#include "sql/record_decoder.h"

namespace rill::sql {

absl::StatusOr<std::vector<std::vector<Value>>> LoadReferenceTable(const std::string& path,
                                                                   const RecordFormat& format) {
  absl::StatusOr<std::unique_ptr<RecordDecoder>> decoder = RecordDecoder::Create(format);
  if (!decoder.ok()) return decoder.status();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return MakeError(ErrorCode::kResourceNotFound,
                     absl::StrCat("reference data file not found: ", path));
  }
  const uintmax_t size = std::filesystem::file_size(path, ec);
  if (ec) {
    return MakeError(ErrorCode::kInternalFailure,
                     absl::StrCat("cannot read reference data file ", path, ": ", ec.message()));
  }
  if (size > kMaxReferenceTableBytes) {
    return MakeError(ErrorCode::kLimitExceeded,
                     absl::StrCat("reference data file ", path, " has ", size,
                                  " bytes, more than the limit of ", kMaxReferenceTableBytes));
  }
  std::string data(static_cast<size_t>(size), '\0');
  std::ifstream in(path, std::ios::binary);
  if (!in || !in.read(data.data(), static_cast<std::streamsize>(size))) {
    return MakeError(ErrorCode::kInternalFailure,
                     absl::StrCat("cannot read reference data file ", path));
  }

  std::vector<std::vector<Value>> rows;
  std::string error;
  const auto on_row = [&](std::vector<Value>& values) { rows.push_back(values); };
  if (format.type == RecordFormatType::kCsv) {
    const std::string_view all = data;
    (*decoder)->Decode(all, on_row, [&](std::string_view reason) {
      if (!error.empty()) return;
      const size_t offset = (*decoder)->row_offset();
      const int64_t line = 1 + std::count(all.begin(), all.begin() + offset, '\n');
      error = absl::StrCat("reference data file ", path, ", line ", line, ": ",
                           absl::string_view(reason.data(), reason.size()));
    });
  } else {
    std::string_view rest = data;
    int64_t line = 0;
    while (!rest.empty() && error.empty()) {
      ++line;
      const size_t end = rest.find('\n');
      std::string_view text = rest.substr(0, end);
      rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
      if (text.find_first_not_of(" \t\r") == std::string_view::npos) continue;
      (*decoder)->Decode(text, on_row, [&](std::string_view reason) {
        if (error.empty()) {
          error = absl::StrCat("reference data file ", path, ", line ", line, ": ",
                               absl::string_view(reason.data(), reason.size()));
        }
      });
    }
  }
  if (!error.empty()) return MakeError(ErrorCode::kInvalidArgument, error);
  return rows;
}

}  // namespace rill::sql
