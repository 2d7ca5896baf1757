// The SQL parser (internal): script text -> syntax tree (ast.h), on a PEGTL grammar.
//
// Errors are kCodeValidation statuses (rill/base/error.h) whose message names the line, the
// column and the offending token, e.g.
//   "SQL syntax error at line 3, column 14 near 'FORM': expected FROM".
// Any input, however malformed or deep, gets a status, never a crash (nesting deeper than 200
// levels is refused as an error).
#ifndef RILL_SQL_PARSER_H_
#define RILL_SQL_PARSER_H_

#include <string_view>

#include "absl/status/statusor.h"
#include "sql/ast.h"

namespace rill::sql {

// Parses a script: CREATE STREAM and CREATE PUMP statements separated by ';'.
absl::StatusOr<ast::Script> ParseScript(std::string_view sql);

// Parses one scalar expression (the whole text). For tests and for expressions given outside a
// script.
absl::StatusOr<ast::ExprPtr> ParseExpression(std::string_view text);

}  // namespace rill::sql

#endif  // RILL_SQL_PARSER_H_
