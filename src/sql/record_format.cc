#include "rill/sql/record_format.h"

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "rill/base/error.h"

namespace rill::sql {
namespace {

// absl::string_view is not std::string_view in Debian's Abseil.
absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

class TypeLexer {
 public:
  explicit TypeLexer(std::string_view text) : text_(text) {}

  void SkipSpaces() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\r' || text_[pos_] == '\n')) {
      ++pos_;
    }
  }
  // An upper-cased word of letters (empty if none).
  std::string Word() {
    SkipSpaces();
    std::string word;
    while (pos_ < text_.size() && ((text_[pos_] >= 'A' && text_[pos_] <= 'Z') ||
                                   (text_[pos_] >= 'a' && text_[pos_] <= 'z'))) {
      char c = text_[pos_++];
      if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
      word.push_back(c);
    }
    return word;
  }
  bool Consume(char c) {
    SkipSpaces();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  // A non-negative integer (at most 9 digits).
  bool Number(uint32_t* out) {
    SkipSpaces();
    uint32_t v = 0;
    int n = 0;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
      if (++n > 9) return false;
      v = v * 10 + static_cast<uint32_t>(text_[pos_++] - '0');
    }
    *out = v;
    return n > 0;
  }
  bool AtEnd() {
    SkipSpaces();
    return pos_ == text_.size();
  }
  size_t pos() const { return pos_; }
  void set_pos(size_t pos) { pos_ = pos; }

 private:
  std::string_view text_;
  size_t pos_ = 0;
};

absl::Status TypeError(std::string_view text, std::string_view why) {
  return MakeError(ErrorCode::kInvalidArgument, absl::StrCat("invalid column type '", Av(text), "'",
                                                             why.empty() ? "" : ": ", Av(why)));
}

}  // namespace

absl::StatusOr<ColumnType> ParseColumnType(std::string_view text) {
  TypeLexer lexer(text);
  const std::string word = lexer.Word();
  ColumnType type;
  if (word == "BOOLEAN") {
    type.type = SqlType::kBoolean;
  } else if (word == "INTEGER" || word == "INT" || word == "SMALLINT" || word == "TINYINT") {
    type.type = SqlType::kInteger;
  } else if (word == "BIGINT") {
    type.type = SqlType::kBigint;
  } else if (word == "DOUBLE" || word == "REAL" || word == "FLOAT") {
    type.type = SqlType::kDouble;
    if (word == "DOUBLE") {
      const size_t before = lexer.pos();
      if (lexer.Word() != "PRECISION") lexer.set_pos(before);
    }
  } else if (word == "DECIMAL" || word == "NUMERIC") {
    type.type = SqlType::kDecimal;
    uint32_t precision = 18;
    uint32_t scale = 0;
    if (lexer.Consume('(')) {
      if (!lexer.Number(&precision)) return TypeError(text, "expected a precision");
      if (lexer.Consume(',') && !lexer.Number(&scale)) {
        return TypeError(text, "expected a scale");
      }
      if (!lexer.Consume(')')) return TypeError(text, "expected ')'");
    }
    if (precision < 1 || precision > 18) {
      return TypeError(text, "DECIMAL precision must be 1..18");
    }
    if (scale > precision) return TypeError(text, "DECIMAL scale must be 0..precision");
    type.precision = static_cast<uint8_t>(precision);
    type.scale = static_cast<uint8_t>(scale);
  } else if (word == "VARCHAR" || word == "CHAR") {
    type.type = SqlType::kVarchar;
    uint32_t length = 0;
    if (!lexer.Consume('(')) return TypeError(text, "VARCHAR needs a length");
    if (!lexer.Number(&length)) return TypeError(text, "expected a length");
    if (!lexer.Consume(')')) return TypeError(text, "expected ')'");
    if (length < 1 || length > 65535) return TypeError(text, "VARCHAR length must be 1..65535");
    type.length = length;
  } else if (word == "TIMESTAMP") {
    type.type = SqlType::kTimestamp;
  } else {
    return TypeError(text, "unknown type");
  }
  if (!lexer.AtEnd()) return TypeError(text, "unexpected text after the type");
  return type;
}

Schema SchemaOf(const RecordFormat& format) {
  Schema schema;
  schema.reserve(format.columns.size());
  for (const RecordColumn& column : format.columns) schema.push_back({column.name, column.type});
  return schema;
}

}  // namespace rill::sql
