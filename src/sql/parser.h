// The SQL parser (internal): script text -> syntax tree (ast.h), on a PEGTL grammar.
//
// Errors are kCodeValidation statuses (rill/base/error.h) whose message names the line, the
// column and the offending token, e.g.
//   "SQL syntax error at line 3, column 14 near 'FORM': expected FROM".
// TOKEN is the offending token (at most 20 bytes, unprintable bytes as \xNN) or "end of input".
// Errors found after the grammar matched (a literal or a type out of range, a bad TIMESTAMP or
// INTERVAL) have the same form, at the offending token. Any input, however malformed or deep,
// gets a status, never a crash: nesting deeper than 200 levels (parentheses, subqueries, CURSOR,
// CASE, function arguments, unary operators) is refused, and parsing is linear in the input.
//
// Lexical rules:
//   - Keywords and unquoted identifiers are case-insensitive; identifiers are
//     [A-Za-z_][A-Za-z0-9_$]*, folded to upper case. "Quoted" identifiers are kept exactly ("" is
//     a quote; "" alone is an error). Comments: -- to end of line, /* ... */.
//   - Reserved words, which cannot be unquoted identifiers (quote them: "FROM"):
//       ALL AND AS BETWEEN BY CASE CAST CREATE CROSS CURRENT_ROW_TIMESTAMP CURRENT_TIMESTAMP
//       CURSOR DISTINCT ELSE END ESCAPE EXCEPT FALSE FROM FULL GROUP HAVING IN INNER INSERT
//       INTERSECT INTERVAL INTO IS JOIN LEFT LIKE LOCALTIMESTAMP NOT NULL ON OR ORDER OUTER OVER
//       PARTITION PRECEDING RANGE RIGHT ROWS SELECT TABLE THEN TRUE UNION UNKNOWN WHEN WHERE
//       WINDOW WINDOWED
//   - Everything else is a keyword only where the grammar expects it, and an identifier
//     elsewhere: ROWTIME, STREAM, PUMP, STAGGER, DESCRIPTION, the type names, the time units,
//     ASC / DESC, and the special functions (FLOOR, CEIL, STEP, SUBSTRING, POSITION, TRIM,
//     EXTRACT). STREAM right after SELECT is the keyword (SELECT STREAM) unless FROM or ','
//     follows it; a column named STREAM first in a select list can always be written "STREAM".
//     TIMESTAMP followed by a string is a literal.
//   - Literals: 12 INTEGER (BIGINT when over 32 bits; over 64 bits is an error; -12 is unary
//     minus applied to 12), 1.50 DECIMAL with scale 2 (DOUBLE beyond 18 digits), 1.5E3 DOUBLE,
//     'it''s' VARCHAR, TRUE / FALSE, NULL, UNKNOWN (a NULL BOOLEAN), TIMESTAMP 'yyyy-MM-dd
//     HH:mm:ss[.fff]' (also 'yyyy-MM-dd HH:mm' and 'yyyy-MM-dd'), INTERVAL '5' MINUTE (units
//     MILLISECOND, SECOND (fraction allowed), MINUTE, HOUR, DAY, WEEK, each also plural; a sign
//     inside the quotes; DAY / HOUR / MINUTE TO HOUR / MINUTE / SECOND with fields separated by
//     ' ' or ':', e.g. INTERVAL '1:30' MINUTE TO SECOND). MONTH and YEAR intervals are refused.
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
