// Fuzzes the SQL parser: ParseScript and ParseExpression over arbitrary bytes must never crash,
// hang nor overflow the stack, and must fail only with a kCodeValidation status whose message
// names a line and column. A script that parses must parse again to the same shape (the parse is
// a function of the text).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "rill/base/error.h"
#include "sql/parser.h"

namespace rill::sql {
namespace {

void CheckError(const absl::Status& status) {
  FUZZ_CHECK(GetErrorCode(status) == ErrorCode::kCodeValidation);
  const std::string_view message(status.message().data(), status.message().size());
  FUZZ_CHECK(message.starts_with("SQL syntax error"));
}

void CheckScript(std::string_view text) {
  absl::StatusOr<ast::Script> script = ParseScript(text);
  if (!script.ok()) {
    CheckError(script.status());
    return;
  }
  absl::StatusOr<ast::Script> again = ParseScript(text);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->statements.size() == script->statements.size());
  for (const ast::Statement& statement : script->statements) {
    if (statement.kind == ast::Statement::Kind::kCreateStream) {
      FUZZ_CHECK(!statement.create_stream.name.empty());
      FUZZ_CHECK(!statement.create_stream.columns.empty());
    } else {
      FUZZ_CHECK(!statement.create_pump.target.empty());
      FUZZ_CHECK(!statement.create_pump.select.items.empty());
    }
  }
}

void CheckExpression(std::string_view text) {
  absl::StatusOr<ast::ExprPtr> expr = ParseExpression(text);
  if (!expr.ok()) {
    CheckError(expr.status());
    return;
  }
  FUZZ_CHECK(*expr != nullptr);
  FUZZ_CHECK((*expr)->pos.line >= 1 && (*expr)->pos.column >= 1);
}

}  // namespace
}  // namespace rill::sql

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  rill::sql::CheckScript(input);
  rill::sql::CheckExpression(input);
  return 0;
}
