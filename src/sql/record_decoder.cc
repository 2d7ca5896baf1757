#include "sql/record_decoder.h"

#include <simdjson.h>

#include <charconv>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "rill/base/error.h"
#include "sql/convert.h"
#include "sql/record_encoder.h"

namespace rill::sql {
namespace {

// absl::string_view is not std::string_view in Debian's Abseil.
absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

constexpr size_t kMaxColumns = 1000;

absl::Status FormatError(std::string_view message) {
  return MakeError(ErrorCode::kInvalidArgument, message);
}

// `element` as minified JSON text, appended.
void WriteJson(const simdjson::dom::element& element, std::string* out) {
  char buffer[32];
  switch (element.type()) {
    case simdjson::dom::element_type::ARRAY: {
      out->push_back('[');
      bool first = true;
      simdjson::dom::array array;
      if (element.get(array) != simdjson::SUCCESS) return;
      for (const simdjson::dom::element child : array) {
        if (!first) out->push_back(',');
        first = false;
        WriteJson(child, out);
      }
      out->push_back(']');
      return;
    }
    case simdjson::dom::element_type::OBJECT: {
      out->push_back('{');
      bool first = true;
      simdjson::dom::object object;
      if (element.get(object) != simdjson::SUCCESS) return;
      for (const simdjson::dom::key_value_pair field : object) {
        if (!first) out->push_back(',');
        first = false;
        AppendJsonString(field.key, out);
        out->push_back(':');
        WriteJson(field.value, out);
      }
      out->push_back('}');
      return;
    }
    case simdjson::dom::element_type::INT64: {
      auto [end, ec] =
          std::to_chars(buffer, buffer + sizeof(buffer), element.get_int64().value_unsafe());
      out->append(buffer, static_cast<size_t>(end - buffer));
      return;
    }
    case simdjson::dom::element_type::UINT64: {
      auto [end, ec] =
          std::to_chars(buffer, buffer + sizeof(buffer), element.get_uint64().value_unsafe());
      out->append(buffer, static_cast<size_t>(end - buffer));
      return;
    }
    case simdjson::dom::element_type::DOUBLE: {
      auto [end, ec] =
          std::to_chars(buffer, buffer + sizeof(buffer), element.get_double().value_unsafe());
      out->append(buffer, static_cast<size_t>(end - buffer));
      return;
    }
    case simdjson::dom::element_type::STRING:
      AppendJsonString(element.get_string().value_unsafe(), out);
      return;
    case simdjson::dom::element_type::BOOL:
      out->append(element.get_bool().value_unsafe() ? "true" : "false");
      return;
    case simdjson::dom::element_type::NULL_VALUE:
      out->append("null");
      return;
  }
}

// The text of a JSON number (integers exactly, doubles in their shortest form).
std::string_view NumberText(const simdjson::dom::element& element, char* buffer, size_t size) {
  std::to_chars_result r{buffer, std::errc()};
  switch (element.type()) {
    case simdjson::dom::element_type::INT64:
      r = std::to_chars(buffer, buffer + size, element.get_int64().value_unsafe());
      break;
    case simdjson::dom::element_type::UINT64:
      r = std::to_chars(buffer, buffer + size, element.get_uint64().value_unsafe());
      break;
    default:
      r = std::to_chars(buffer, buffer + size, element.get_double().value_unsafe());
      break;
  }
  return std::string_view(buffer, static_cast<size_t>(r.ptr - buffer));
}

}  // namespace

struct RecordDecoder::Json {
  simdjson::dom::parser parser;
  std::vector<char> padded;  // the record, followed by SIMDJSON_PADDING readable bytes
  size_t size = 0;           // the record's length in `padded`
  Value millis;              // a number into TIMESTAMP, as DECIMAL(18,3) milliseconds
  // The raw text of fractions: the same record iterated on demand (after the DOM parse has
  // validated it), at most once per record and only when a fraction reaches a column that is
  // not DOUBLE.
  simdjson::ondemand::parser raw_parser;
  simdjson::ondemand::document raw_document;
  bool raw_ready = false;
};

std::string_view RecordDecoder::RawNumber(size_t column, size_t row_index) {
  namespace od = simdjson::ondemand;
  Json& json = *json_;
  if (!json.raw_ready) {
    if (json.raw_parser.iterate(json.padded.data(), json.size, json.padded.size())
            .get(json.raw_document) != simdjson::SUCCESS) {
      return {};
    }
    json.raw_ready = true;
  }
  json.raw_document.rewind();
  od::value v;
  if (json.raw_document.get_value().get(v) != simdjson::SUCCESS) return {};
  // Keys are compared as written (find_field does not unescape): a key with an escape sequence
  // finds nothing here and the caller falls back to the double's shortest text.
  const auto step_to = [&v](bool is_index, size_t index, std::string_view key) {
    if (!is_index) return v.find_field(key).get(v) == simdjson::SUCCESS;
    od::array array;
    if (v.get_array().get(array) != simdjson::SUCCESS) return false;
    size_t i = 0;
    for (auto child : array) {
      if (i++ == index) return child.get(v) == simdjson::SUCCESS;
    }
    return false;
  };
  for (const PathStep& step : row_path_) {
    if (!step_to(step.is_index, step.index, step.key)) return {};
  }
  if (row_per_element_ && !step_to(true, row_index, {})) return {};
  for (const PathStep& step : column_paths_[column]) {
    if (!step_to(step.is_index, step.index, step.key)) return {};
  }
  std::string_view raw = v.raw_json_token();
  while (!raw.empty() &&
         (raw.back() == ' ' || raw.back() == '\t' || raw.back() == '\n' || raw.back() == '\r')) {
    raw.remove_suffix(1);
  }
  if (raw.empty() || (raw.front() != '-' && (raw.front() < '0' || raw.front() > '9'))) return {};
  return raw;
}

RecordDecoder::RecordDecoder(const RecordFormat& format)
    : format_(format), schema_(SchemaOf(format)), values_(format.columns.size()) {}

RecordDecoder::~RecordDecoder() = default;

absl::Status RecordDecoder::ParsePath(std::string_view text, bool row_path, Path* path) {
  const auto bad = [&](std::string_view why) {
    return FormatError(absl::StrCat(row_path ? "record row path '" : "column mapping '", Av(text),
                                    "': ", Av(why)));
  };
  path->clear();
  if (text.empty() || text[0] != '$') return bad("must start with '$'");
  size_t pos = 1;
  bool all_elements = false;
  while (pos < text.size()) {
    if (all_elements) return bad("[0:] must come last");
    if (text[pos] == '.') {
      ++pos;
      const size_t start = pos;
      while (pos < text.size() && text[pos] != '.' && text[pos] != '[' && text[pos] != ']') ++pos;
      if (pos == start) return bad("empty member name");
      PathStep step;
      step.key.assign(text.substr(start, pos - start));
      path->push_back(std::move(step));
    } else if (text[pos] == '[') {
      const size_t close = text.find(']', pos);
      if (close == std::string_view::npos) return bad("missing ']'");
      const std::string_view inside = text.substr(pos + 1, close - pos - 1);
      pos = close + 1;
      if (inside == "0:") {
        if (!row_path) return bad("[0:] is for the record row path only");
        all_elements = true;
        continue;
      }
      size_t index = 0;
      auto [end, ec] = std::from_chars(inside.data(), inside.data() + inside.size(), index);
      if (inside.empty() || ec != std::errc() || end != inside.data() + inside.size()) {
        return bad("an index must be digits");
      }
      PathStep step;
      step.is_index = true;
      step.index = index;
      path->push_back(std::move(step));
    } else {
      return bad("expected '.' or '['");
    }
  }
  if (row_path && !all_elements && !path->empty()) {
    return bad("must be \"$\" or end in [0:]");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<RecordDecoder>> RecordDecoder::Create(const RecordFormat& format) {
  if (format.columns.empty() || format.columns.size() > kMaxColumns) {
    return FormatError(absl::StrCat("a record format has 1..", kMaxColumns, " columns, not ",
                                    format.columns.size()));
  }
  absl::flat_hash_set<std::string_view> names;
  for (const RecordColumn& column : format.columns) {
    if (column.name.empty()) return FormatError("a column name is empty");
    if (!names.insert(column.name).second) {
      return FormatError(absl::StrCat("duplicate column name '", column.name, "'"));
    }
    if (!IsValidColumnType(column.type)) {
      return FormatError(
          absl::StrCat("column ", column.name, ": invalid type ", ColumnTypeName(column.type)));
    }
  }
  std::unique_ptr<RecordDecoder> decoder(new RecordDecoder(format));
  if (format.type == RecordFormatType::kJson) {
    Path row_path;
    absl::Status status = ParsePath(format.record_row_path, true, &row_path);
    if (!status.ok()) return status;
    decoder->row_per_element_ = format.record_row_path != "$";
    decoder->row_path_ = std::move(row_path);
    for (const RecordColumn& column : format.columns) {
      Path path;
      status =
          ParsePath(column.mapping.empty() ? "$." + column.name : column.mapping, false, &path);
      if (!status.ok()) return status;
      decoder->column_paths_.push_back(std::move(path));
    }
    decoder->json_ = std::make_unique<Json>();
  } else if (format.type == RecordFormatType::kCsv) {
    if (format.row_delimiter.empty() || format.column_delimiter.empty()) {
      return FormatError("CSV delimiters must not be empty");
    }
    if (format.row_delimiter == format.column_delimiter) {
      return FormatError("CSV row and column delimiters must differ");
    }
    if (format.row_delimiter.find('"') != std::string::npos ||
        format.column_delimiter.find('"') != std::string::npos) {
      return FormatError("CSV delimiters must not contain '\"'");
    }
  } else {
    return FormatError("unknown record format type");
  }
  return decoder;
}

void RecordDecoder::ColumnError(size_t column, std::string_view message) {
  error_.assign("column ");
  error_.append(schema_[column].name);
  error_.append(": ");
  error_.append(message);
}

void RecordDecoder::Decode(std::string_view data,
                           absl::FunctionRef<void(std::vector<Value>&)> on_row,
                           absl::FunctionRef<void(std::string_view reason)> on_error) {
  row_offset_ = 0;
  if (format_.type == RecordFormatType::kJson) {
    DecodeJson(data, on_row, on_error);
  } else {
    DecodeCsv(data, on_row, on_error);
  }
}

void RecordDecoder::DecodeJson(std::string_view data,
                               absl::FunctionRef<void(std::vector<Value>&)> on_row,
                               absl::FunctionRef<void(std::string_view)> on_error) {
  using simdjson::dom::element;
  using simdjson::dom::element_type;
  Json& json = *json_;
  if (json.padded.size() < data.size() + simdjson::SIMDJSON_PADDING) {
    json.padded.resize(data.size() + simdjson::SIMDJSON_PADDING);
  }
  if (!data.empty()) std::memcpy(json.padded.data(), data.data(), data.size());
  json.size = data.size();
  json.raw_ready = false;
  std::memset(json.padded.data() + data.size(), 0, simdjson::SIMDJSON_PADDING);
  const simdjson::simdjson_result<element> parsed =
      json.parser.parse(reinterpret_cast<const uint8_t*>(json.padded.data()), data.size(), false);
  if (parsed.error() != simdjson::SUCCESS) {
    error_.assign("malformed JSON: ");
    error_.append(simdjson::error_message(parsed.error()));
    on_error(error_);
    return;
  }
  // Follows `path` from `from`; false when a step is missing.
  const auto follow = [](element from, const Path& path, element* to) {
    for (const PathStep& step : path) {
      element child;
      if (step.is_index) {
        simdjson::dom::array array;
        if (from.get(array) != simdjson::SUCCESS) return false;
        if (array.at(step.index).get(child) != simdjson::SUCCESS) return false;
      } else {
        simdjson::dom::object object;
        if (from.get(object) != simdjson::SUCCESS) return false;
        if (object.at_key(step.key).get(child) != simdjson::SUCCESS) return false;
      }
      from = child;
    }
    *to = from;
    return true;
  };
  // Converts one column; false (with error_ set) when it does not convert.
  const auto convert = [&](size_t c, const element& e, size_t row_index) {
    const ColumnType& type = schema_[c].type;
    Value* out = &values_[c];
    char buffer[64];
    bool ok = true;
    reason_.clear();
    switch (e.type()) {
      case element_type::NULL_VALUE:
        SetNull(type, out);
        return true;
      case element_type::BOOL: {
        const bool b = e.get_bool().value_unsafe();
        if (type.type == SqlType::kVarchar || type.type == SqlType::kTimestamp) {
          ok = ConvertText(b ? "true" : "false", type, out, &reason_);
        } else {
          ok = ConvertText(b ? "1" : "0", type, out, &reason_);
        }
        break;
      }
      case element_type::INT64:
      case element_type::UINT64:
      case element_type::DOUBLE: {
        std::string_view text;
        if (e.type() == element_type::DOUBLE && type.type != SqlType::kDouble) {
          text = RawNumber(c, row_index);
        }
        if (text.empty()) text = NumberText(e, buffer, sizeof(buffer));
        if (type.type == SqlType::kTimestamp) {
          static constexpr ColumnType kMillis{SqlType::kDecimal, 0, 18, 3};
          if (!ConvertText(text, kMillis, &json.millis, &reason_)) {
            reason_.assign("cannot convert '");
            reason_.append(text);
            reason_.append("' to TIMESTAMP: out of range");
            ColumnError(c, reason_);
            return false;
          }
          out->type = SqlType::kTimestamp;
          out->null = false;
          out->scale = 0;
          out->i = json.millis.i;
          out->s.clear();
          return true;
        }
        ok = ConvertText(text, type, out, &reason_);
        break;
      }
      case element_type::STRING:
        ok = ConvertText(e.get_string().value_unsafe(), type, out, &reason_);
        break;
      case element_type::ARRAY:
      case element_type::OBJECT:
        if (type.type != SqlType::kVarchar) {
          reason_.assign(e.type() == element_type::ARRAY ? "cannot convert an array to "
                                                         : "cannot convert an object to ");
          reason_.append(SqlTypeName(type.type));
          ColumnError(c, reason_);
          return false;
        }
        scratch_.clear();
        WriteJson(e, &scratch_);
        ok = ConvertText(scratch_, type, out, &reason_);
        break;
    }
    if (!ok) ColumnError(c, reason_);
    return ok;
  };
  const auto decode_row = [&](const element& row, size_t row_index) {
    for (size_t c = 0; c < column_paths_.size(); ++c) {
      element e;
      if (!follow(row, column_paths_[c], &e)) {
        SetNull(schema_[c].type, &values_[c]);
      } else if (!convert(c, e, row_index)) {
        on_error(error_);
        return;
      }
    }
    on_row(values_);
  };
  const element root = parsed.value_unsafe();
  if (!row_per_element_) {
    decode_row(root, 0);
    return;
  }
  element rows;
  simdjson::dom::array array;
  if (!follow(root, row_path_, &rows) || rows.get(array) != simdjson::SUCCESS) {
    error_.assign("record row path ");
    error_.append(format_.record_row_path);
    error_.append(": no array there");
    on_error(error_);
    return;
  }
  size_t row_index = 0;
  for (const element row : array) decode_row(row, row_index++);
}

void RecordDecoder::DecodeCsv(std::string_view data,
                              absl::FunctionRef<void(std::vector<Value>&)> on_row,
                              absl::FunctionRef<void(std::string_view)> on_error) {
  const std::string_view rd = format_.row_delimiter;
  const std::string_view cd = format_.column_delimiter;
  const size_t columns = schema_.size();
  const size_t n = data.size();
  const auto at = [&](size_t i, std::string_view delimiter) {
    return data.compare(i, delimiter.size(), delimiter) == 0;
  };
  size_t pos = 0;
  while (pos < n) {
    if (at(pos, rd)) {  // an empty row
      pos += rd.size();
      continue;
    }
    row_offset_ = pos;
    size_t fields = 0;
    bool failed = false;
    bool row_done = false;
    while (!row_done) {
      std::string_view text;
      bool quoted = false;
      if (pos < n && data[pos] == '"') {
        quoted = true;
        scratch_.clear();
        ++pos;
        bool closed = false;
        while (pos < n) {
          const size_t quote = data.find('"', pos);
          if (quote == std::string_view::npos) break;
          scratch_.append(data.data() + pos, quote - pos);
          pos = quote + 1;
          if (pos < n && data[pos] == '"') {
            scratch_.push_back('"');
            ++pos;
          } else {
            closed = true;
            break;
          }
        }
        if (!closed) {
          if (!failed) error_.assign("malformed CSV: unterminated quoted field");
          failed = true;
          pos = n;
          break;
        }
        if (pos < n && !at(pos, cd) && !at(pos, rd)) {
          if (!failed) {
            error_.assign("malformed CSV: text after the closing quote of field ");
            error_.append(std::to_string(fields + 1));
          }
          failed = true;
          const size_t next = data.find(rd, pos);
          pos = next == std::string_view::npos ? n : next + rd.size();
          break;
        }
        text = scratch_;
      } else {
        const size_t start = pos;
        while (pos < n && !at(pos, cd) && !at(pos, rd)) ++pos;
        text = data.substr(start, pos - start);
      }
      if (fields < columns && !failed) {
        if (text.empty() && !quoted) {
          SetNull(schema_[fields].type, &values_[fields]);
        } else {
          reason_.clear();
          if (!ConvertText(text, schema_[fields].type, &values_[fields], &reason_)) {
            ColumnError(fields, reason_);
            failed = true;
          }
        }
      }
      ++fields;
      if (pos >= n) {
        row_done = true;
      } else if (at(pos, rd)) {
        pos += rd.size();
        row_done = true;
      } else {
        pos += cd.size();
        if (pos >= n) {  // a column delimiter ends the data: one more, empty, field
          if (fields < columns && !failed) SetNull(schema_[fields].type, &values_[fields]);
          ++fields;
          row_done = true;
        }
      }
    }
    if (!failed && fields < columns) {
      error_.assign("CSV row has ");
      error_.append(std::to_string(fields));
      error_.append(fields == 1 ? " field, " : " fields, ");
      error_.append(std::to_string(columns));
      error_.append(" columns expected");
      failed = true;
    }
    if (failed) {
      on_error(error_);
    } else {
      on_row(values_);
    }
  }
}

}  // namespace rill::sql
