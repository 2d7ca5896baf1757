// The SQL parser: a PEGTL grammar that builds a parse tree of the selected rules below, then a
// walk of that tree into the syntax tree (ast.h), which also checks literals and types.
//
// Linear time: every alternative that consumed a nested construct (parentheses, a subquery, a
// CASE) either succeeds or raises, so nothing nested is ever parsed twice. Tokens consume the
// whitespace and comments after them, so a failure position is always the start of a token.
#include "sql/parser.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <tao/pegtl.hpp>
#include <tao/pegtl/contrib/parse_tree.hpp>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "rill/base/error.h"

namespace rill::sql {
namespace {

namespace pegtl = tao::pegtl;

// Deeper nesting (parentheses, subqueries, CASE, unary operators) is refused: the parser and the
// tree walk recurse once per level, and a bounded depth bounds their stack.
constexpr int kMaxDepth = 200;

// The input, with the current nesting depth for Nest<>.
class SqlInput : public pegtl::memory_input<> {
 public:
  SqlInput(std::string_view text, const char* source)
      : pegtl::memory_input<>(text.data(), text.data() + text.size(), source) {}
  int depth = 0;
};

// ---------------------------------------------------------------------------------------------
// Lexical rules.

using pegtl::alnum;
using pegtl::alpha;
using pegtl::at;
using pegtl::digit;
using pegtl::eof;
using pegtl::eolf;
using pegtl::must;
using pegtl::not_at;
using pegtl::not_one;
using pegtl::one;
using pegtl::opt;
using pegtl::plus;
using pegtl::sor;
using pegtl::star;
using pegtl::string;
using pegtl::two;
using pegtl::until;

// An unterminated comment or quote is reported at its opening.
struct UnterminatedComment : pegtl::failure {
  static constexpr const char* Expected() { return "unterminated comment"; }
};
struct LineComment : pegtl::seq<two<'-'>, until<eolf>> {};
struct BlockComment : sor<pegtl::seq<string<'/', '*'>, until<string<'*', '/'>>>,
                          pegtl::seq<at<string<'/', '*'>>, pegtl::raise<UnterminatedComment>>> {};
struct Skip : star<sor<pegtl::space, LineComment, BlockComment>> {};

struct IdentFirst : sor<alpha, one<'_'>> {};
struct IdentOther : sor<alnum, one<'_', '$'>> {};

// A keyword: case-insensitive, not the prefix of a longer word.
template <typename Word>
struct Kw : pegtl::seq<Word, not_at<IdentOther>, Skip> {};

#define RILL_SQL_KEYWORD(Name, Text)                                     \
  struct Name : Kw<TAO_PEGTL_ISTRING(Text)> {                            \
    static constexpr const char* Expected() { return "expected " Text; } \
  }

RILL_SQL_KEYWORD(KwAll, "ALL");
RILL_SQL_KEYWORD(KwAnd, "AND");
RILL_SQL_KEYWORD(KwAs, "AS");
RILL_SQL_KEYWORD(KwAsc, "ASC");
RILL_SQL_KEYWORD(KwBetween, "BETWEEN");
RILL_SQL_KEYWORD(KwBigint, "BIGINT");
RILL_SQL_KEYWORD(KwBoolean, "BOOLEAN");
RILL_SQL_KEYWORD(KwBoth, "BOTH");
RILL_SQL_KEYWORD(KwBy, "BY");
RILL_SQL_KEYWORD(KwCase, "CASE");
RILL_SQL_KEYWORD(KwCast, "CAST");
RILL_SQL_KEYWORD(KwCeil, "CEIL");
RILL_SQL_KEYWORD(KwCeiling, "CEILING");
RILL_SQL_KEYWORD(KwChar, "CHAR");
RILL_SQL_KEYWORD(KwCharacter, "CHARACTER");
RILL_SQL_KEYWORD(KwCreate, "CREATE");
RILL_SQL_KEYWORD(KwCurrentRowTimestamp, "CURRENT_ROW_TIMESTAMP");
RILL_SQL_KEYWORD(KwCurrentTimestamp, "CURRENT_TIMESTAMP");
RILL_SQL_KEYWORD(KwCursor, "CURSOR");
RILL_SQL_KEYWORD(KwDec, "DEC");
RILL_SQL_KEYWORD(KwDecimal, "DECIMAL");
RILL_SQL_KEYWORD(KwDesc, "DESC");
RILL_SQL_KEYWORD(KwDescription, "DESCRIPTION");
RILL_SQL_KEYWORD(KwDistinct, "DISTINCT");
RILL_SQL_KEYWORD(KwDouble, "DOUBLE");
RILL_SQL_KEYWORD(KwElse, "ELSE");
RILL_SQL_KEYWORD(KwEnd, "END");
RILL_SQL_KEYWORD(KwEscape, "ESCAPE");
RILL_SQL_KEYWORD(KwExtract, "EXTRACT");
RILL_SQL_KEYWORD(KwFalse, "FALSE");
RILL_SQL_KEYWORD(KwFloat, "FLOAT");
RILL_SQL_KEYWORD(KwFloor, "FLOOR");
RILL_SQL_KEYWORD(KwFor, "FOR");
RILL_SQL_KEYWORD(KwFrom, "FROM");
RILL_SQL_KEYWORD(KwGroup, "GROUP");
RILL_SQL_KEYWORD(KwHaving, "HAVING");
RILL_SQL_KEYWORD(KwIn, "IN");
RILL_SQL_KEYWORD(KwInner, "INNER");
RILL_SQL_KEYWORD(KwInsert, "INSERT");
RILL_SQL_KEYWORD(KwInt, "INT");
RILL_SQL_KEYWORD(KwInteger, "INTEGER");
RILL_SQL_KEYWORD(KwInterval, "INTERVAL");
RILL_SQL_KEYWORD(KwInto, "INTO");
RILL_SQL_KEYWORD(KwIs, "IS");
RILL_SQL_KEYWORD(KwJoin, "JOIN");
RILL_SQL_KEYWORD(KwLeading, "LEADING");
RILL_SQL_KEYWORD(KwLeft, "LEFT");
RILL_SQL_KEYWORD(KwLike, "LIKE");
RILL_SQL_KEYWORD(KwLocalTimestamp, "LOCALTIMESTAMP");
RILL_SQL_KEYWORD(KwNot, "NOT");
RILL_SQL_KEYWORD(KwNull, "NULL");
RILL_SQL_KEYWORD(KwNumeric, "NUMERIC");
RILL_SQL_KEYWORD(KwOn, "ON");
RILL_SQL_KEYWORD(KwOr, "OR");
RILL_SQL_KEYWORD(KwOrder, "ORDER");
RILL_SQL_KEYWORD(KwOuter, "OUTER");
RILL_SQL_KEYWORD(KwOver, "OVER");
RILL_SQL_KEYWORD(KwPartition, "PARTITION");
RILL_SQL_KEYWORD(KwPosition, "POSITION");
RILL_SQL_KEYWORD(KwPreceding, "PRECEDING");
RILL_SQL_KEYWORD(KwPrecision, "PRECISION");
RILL_SQL_KEYWORD(KwPump, "PUMP");
RILL_SQL_KEYWORD(KwRange, "RANGE");
RILL_SQL_KEYWORD(KwReal, "REAL");
RILL_SQL_KEYWORD(KwReplace, "REPLACE");
RILL_SQL_KEYWORD(KwRows, "ROWS");
RILL_SQL_KEYWORD(KwSelect, "SELECT");
RILL_SQL_KEYWORD(KwSmallint, "SMALLINT");
RILL_SQL_KEYWORD(KwStagger, "STAGGER");
RILL_SQL_KEYWORD(KwStep, "STEP");
RILL_SQL_KEYWORD(KwStopped, "STOPPED");
RILL_SQL_KEYWORD(KwStream, "STREAM");
RILL_SQL_KEYWORD(KwSubstring, "SUBSTRING");
RILL_SQL_KEYWORD(KwTable, "TABLE");
RILL_SQL_KEYWORD(KwThen, "THEN");
RILL_SQL_KEYWORD(KwTimestamp, "TIMESTAMP");
RILL_SQL_KEYWORD(KwTinyint, "TINYINT");
RILL_SQL_KEYWORD(KwTo, "TO");
RILL_SQL_KEYWORD(KwTrailing, "TRAILING");
RILL_SQL_KEYWORD(KwTrim, "TRIM");
RILL_SQL_KEYWORD(KwTrue, "TRUE");
RILL_SQL_KEYWORD(KwUnknown, "UNKNOWN");
RILL_SQL_KEYWORD(KwVarchar, "VARCHAR");
RILL_SQL_KEYWORD(KwVarying, "VARYING");
RILL_SQL_KEYWORD(KwWhen, "WHEN");
RILL_SQL_KEYWORD(KwWhere, "WHERE");
RILL_SQL_KEYWORD(KwWindow, "WINDOW");
RILL_SQL_KEYWORD(KwWindowed, "WINDOWED");

#undef RILL_SQL_KEYWORD

// The reserved words (parser.h lists them), upper case and sorted for binary search.
constexpr std::string_view kReserved[] = {
    "ALL",
    "AND",
    "AS",
    "BETWEEN",
    "BY",
    "CASE",
    "CAST",
    "CREATE",
    "CROSS",
    "CURRENT_ROW_TIMESTAMP",
    "CURRENT_TIMESTAMP",
    "CURSOR",
    "DISTINCT",
    "ELSE",
    "END",
    "ESCAPE",
    "EXCEPT",
    "FALSE",
    "FROM",
    "FULL",
    "GROUP",
    "HAVING",
    "IN",
    "INNER",
    "INSERT",
    "INTERSECT",
    "INTERVAL",
    "INTO",
    "IS",
    "JOIN",
    "LEFT",
    "LIKE",
    "LOCALTIMESTAMP",
    "NOT",
    "NULL",
    "ON",
    "OR",
    "ORDER",
    "OUTER",
    "OVER",
    "PARTITION",
    "PRECEDING",
    "RANGE",
    "RIGHT",
    "ROWS",
    "SELECT",
    "TABLE",
    "THEN",
    "TRUE",
    "UNION",
    "UNKNOWN",
    "WHEN",
    "WHERE",
    "WINDOW",
    "WINDOWED",
};

static_assert(std::is_sorted(std::begin(kReserved), std::end(kReserved)));

bool IsReserved(std::string_view word) {
  if (word.size() > 21) return false;  // longer than the longest reserved word
  char upper[21];
  for (size_t i = 0; i < word.size(); ++i) upper[i] = absl::ascii_toupper(word[i]);
  const std::string_view key(upper, word.size());
  size_t lo = 0;
  size_t hi = std::size(kReserved);
  while (lo < hi) {
    const size_t mid = (lo + hi) / 2;
    if (kReserved[mid] < key) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo < std::size(kReserved) && kReserved[lo] == key;
}

bool IsIdentFirst(char c) { return absl::ascii_isalpha(c) || c == '_'; }
bool IsIdentOther(char c) { return absl::ascii_isalnum(c) || c == '_' || c == '$'; }

// An unquoted identifier that is not a reserved word. A custom rule, so that the reserved words
// are one lookup rather than an alternative per word.
struct UnquotedName {
  using rule_t = UnquotedName;
  using subs_t = pegtl::empty_list;
  template <typename ParseInput>
  static bool match(ParseInput& in) {
    const char* begin = in.current();
    const char* end = in.end();
    if (begin == end || !IsIdentFirst(*begin)) return false;
    const char* p = begin + 1;
    while (p != end && IsIdentOther(*p)) ++p;
    if (IsReserved(std::string_view(begin, static_cast<size_t>(p - begin)))) return false;
    in.bump_in_this_line(static_cast<size_t>(p - begin));
    return true;
  }
};

struct UnterminatedQuote : pegtl::failure {
  static constexpr const char* Expected() { return "unterminated quoted identifier"; }
};
struct QuotedName : sor<pegtl::seq<one<'"'>, star<sor<two<'"'>, not_one<'"'>>>, one<'"'>>,
                        pegtl::seq<at<one<'"'>>, pegtl::raise<UnterminatedQuote>>> {};
struct Name : pegtl::seq<sor<QuotedName, UnquotedName>, Skip> {
  static constexpr const char* Expected() { return "expected a name"; }
};

struct UnterminatedString : pegtl::failure {
  static constexpr const char* Expected() { return "unterminated string literal"; }
};
struct StringTok : sor<pegtl::seq<one<'\''>, star<sor<two<'\''>, not_one<'\''>>>, one<'\''>>,
                       pegtl::seq<at<one<'\''>>, pegtl::raise<UnterminatedString>>> {};
struct StringLit : pegtl::seq<StringTok, Skip> {
  static constexpr const char* Expected() { return "expected a string literal"; }
};

struct Exponent : pegtl::seq<one<'e', 'E'>, opt<one<'+', '-'>>, plus<digit>> {};
struct Number : pegtl::seq<sor<pegtl::seq<plus<digit>, opt<one<'.'>, star<digit>>>,
                               pegtl::seq<one<'.'>, plus<digit>>>,
                           opt<Exponent>> {};
struct NumberLit : pegtl::seq<Number, Skip> {};
struct UintTok : plus<digit> {};
struct UintLit : pegtl::seq<UintTok, Skip> {
  static constexpr const char* Expected() { return "expected an integer"; }
};

template <char... C>
struct Sym : pegtl::seq<string<C...>, Skip> {};
struct OpenParen : Sym<'('> {
  static constexpr const char* Expected() { return "expected '('"; }
};
struct CloseParen : Sym<')'> {
  static constexpr const char* Expected() { return "expected ')'"; }
};
struct Comma : Sym<','> {};
struct Dot : Sym<'.'> {};
struct StarMark : Sym<'*'> {};

template <typename Word>
struct UnitWord : pegtl::seq<Word, opt<one<'s', 'S'>>, not_at<IdentOther>, Skip> {};
struct TimeUnitTok
    : sor<UnitWord<TAO_PEGTL_ISTRING("MILLISECOND")>, UnitWord<TAO_PEGTL_ISTRING("SECOND")>,
          UnitWord<TAO_PEGTL_ISTRING("MINUTE")>, UnitWord<TAO_PEGTL_ISTRING("HOUR")>,
          UnitWord<TAO_PEGTL_ISTRING("DAY")>, UnitWord<TAO_PEGTL_ISTRING("WEEK")>,
          UnitWord<TAO_PEGTL_ISTRING("MONTH")>, UnitWord<TAO_PEGTL_ISTRING("YEAR")>> {
  static constexpr const char* Expected() {
    return "expected a time unit (MILLISECOND, SECOND, MINUTE, HOUR, DAY, WEEK, MONTH or YEAR)";
  }
};

// Open (a '(', CASE, NOT, a sign) then R, one level of nesting deeper; deeper than kMaxDepth
// raises, at Open.
template <typename Open, typename R>
struct Nest {
  using rule_t = Nest;
  using subs_t = pegtl::type_list<Open, R>;

  template <pegtl::apply_mode A, pegtl::rewind_mode M, template <typename...> class Action,
            template <typename...> class Control, typename ParseInput, typename... States>
  static bool match(ParseInput& in, States&&... st) {
    auto marker = in.template mark<M>();
    const auto open = in.iterator();
    if (!Control<Open>::template match<A, pegtl::rewind_mode::active, Action, Control>(in, st...)) {
      return false;
    }
    if (in.depth >= kMaxDepth) {
      throw pegtl::parse_error(
          absl::StrCat("nesting deeper than ", kMaxDepth, " levels is not supported"),
          pegtl::position(open, in.source()));
    }
    struct Guard {
      int& depth;
      ~Guard() { --depth; }
    } guard{++in.depth};
    return marker(
        Control<R>::template match<A, pegtl::rewind_mode::active, Action, Control>(in, st...));
  }
};

// ---------------------------------------------------------------------------------------------
// Types.

struct TBoolean : KwBoolean {};
struct TInteger : sor<KwInteger, KwInt, KwSmallint, KwTinyint> {};
struct TBigint : KwBigint {};
struct TDouble : sor<pegtl::seq<KwDouble, opt<KwPrecision>>, KwReal, KwFloat> {};
struct TDecimal
    : pegtl::seq<sor<KwDecimal, KwNumeric, KwDec>,
                 opt<OpenParen, must<UintLit>, opt<Comma, must<UintLit>>, must<CloseParen>>> {};
struct TVarchar : pegtl::seq<sor<KwVarchar, pegtl::seq<sor<KwCharacter, KwChar>, opt<KwVarying>>>,
                             opt<OpenParen, must<UintLit>, must<CloseParen>>> {};
struct TTimestamp : KwTimestamp {};
struct TypeSpec : sor<TBoolean, TInteger, TBigint, TDouble, TDecimal, TVarchar, TTimestamp> {
  static constexpr const char* Expected() { return "expected a type"; }
};

// ---------------------------------------------------------------------------------------------
// Expressions, from the lowest precedence to the highest.

struct Expr;
struct Select;
struct WindowBody;

struct ExprMust : must<Expr> {};
struct ExprList : pegtl::seq<Expr, star<Comma, must<Expr>>> {};

struct IntervalLit
    : pegtl::seq<KwInterval, must<StringLit>, must<TimeUnitTok>, opt<KwTo, must<TimeUnitTok>>> {
  static constexpr const char* Expected() { return "expected INTERVAL"; }
};
struct TimestampLit : pegtl::seq<KwTimestamp, StringLit> {};
struct TrueLit : KwTrue {};
struct FalseLit : KwFalse {};
struct NullLit : KwNull {};
struct UnknownLit : KwUnknown {};
struct Niladic : sor<KwCurrentRowTimestamp, KwCurrentTimestamp, KwLocalTimestamp> {};

struct ParenExpr : pegtl::seq<Nest<OpenParen, ExprMust>, must<CloseParen>> {};

struct CaseOperand : pegtl::seq<not_at<KwWhen>, Expr> {};
struct WhenClause : pegtl::seq<KwWhen, must<Expr>, must<KwThen>, must<Expr>> {
  static constexpr const char* Expected() { return "expected WHEN"; }
};
struct ElseClause : pegtl::seq<KwElse, must<Expr>> {};
struct CaseBody : pegtl::seq<opt<CaseOperand>, must<WhenClause>, star<WhenClause>, opt<ElseClause>,
                             must<KwEnd>> {};
struct CaseExpr : Nest<KwCase, CaseBody> {};
struct CastBody : pegtl::seq<must<Expr>, must<KwAs>, must<TypeSpec>> {};
struct CastExpr : pegtl::seq<KwCast, Nest<must<OpenParen>, CastBody>, must<CloseParen>> {};
struct SelectMust : must<Select> {};
struct CursorExpr : pegtl::seq<KwCursor, Nest<must<OpenParen>, SelectMust>, must<CloseParen>> {
};  // FLOOR(x [TO unit]) and CEIL(x [TO unit]).
struct RoundBody : pegtl::seq<must<Expr>, opt<KwTo, must<TimeUnitTok>>> {};
struct FloorCall : pegtl::seq<KwFloor, Nest<OpenParen, RoundBody>, must<CloseParen>> {};
struct CeilCall : pegtl::seq<sor<KwCeil, KwCeiling>, Nest<OpenParen, RoundBody>, must<CloseParen>> {
};
struct StepBody : pegtl::seq<must<Expr>, must<KwBy>, must<IntervalLit>> {};
struct StepCall : pegtl::seq<KwStep, Nest<OpenParen, StepBody>, must<CloseParen>> {};
struct SubstringFromFor : pegtl::seq<KwFrom, must<Expr>, opt<KwFor, must<Expr>>> {};
struct SubstringCommas : pegtl::seq<Comma, must<Expr>, opt<Comma, must<Expr>>> {};
struct SubstringRest : sor<SubstringFromFor, SubstringCommas> {
  static constexpr const char* Expected() { return "expected FROM or ','"; }
};
struct SubstringBody : pegtl::seq<must<Expr>, must<SubstringRest>> {};
struct SubstringCall : pegtl::seq<KwSubstring, Nest<OpenParen, SubstringBody>, must<CloseParen>> {};
// POSITION(a IN b): a is read above the comparisons, so that its IN is not an IN list.
struct Concat;
struct ConcatMust : must<Concat> {};
struct PositionBody : pegtl::seq<ConcatMust, must<KwIn>, must<Expr>> {};
struct PositionCall : pegtl::seq<KwPosition, Nest<OpenParen, PositionBody>, must<CloseParen>> {};
struct TrimSideKw : sor<KwBoth, KwLeading, KwTrailing> {};
struct TrimWithSide : pegtl::seq<TrimSideKw, opt<Expr>, must<KwFrom>, must<Expr>> {};
struct TrimPlain : pegtl::seq<must<Expr>, opt<KwFrom, must<Expr>>> {};
struct TrimBody : sor<TrimWithSide, TrimPlain> {};
struct TrimCall : pegtl::seq<KwTrim, Nest<OpenParen, TrimBody>, must<CloseParen>> {};
struct ExtractBody : pegtl::seq<must<TimeUnitTok>, must<KwFrom>, must<Expr>> {};
struct ExtractCall : pegtl::seq<KwExtract, Nest<OpenParen, ExtractBody>, must<CloseParen>> {};

struct InlineWindow : pegtl::seq<Nest<OpenParen, must<WindowBody>>, must<CloseParen>> {};
struct OverTarget : sor<InlineWindow, Name> {
  static constexpr const char* Expected() { return "expected a window name or '('"; }
};
struct OverClause : pegtl::seq<KwOver, must<OverTarget>> {};

struct DistinctKw : KwDistinct {};
struct CallArgs : opt<sor<StarMark, pegtl::seq<opt<sor<DistinctKw, KwAll>>, ExprList>>> {};
struct FunctionCall
    : pegtl::seq<Name, Nest<OpenParen, CallArgs>, must<CloseParen>, opt<OverClause>> {
  static constexpr const char* Expected() { return "expected a function call"; }
};

struct QualifiedTail : sor<StarMark, Name> {
  static constexpr const char* Expected() { return "expected a name or '*'"; }
};
struct ColumnRef : pegtl::seq<Name, opt<Dot, must<QualifiedTail>>> {};

struct Primary
    : sor<ParenExpr, CaseExpr, CastExpr, CursorExpr, IntervalLit, TimestampLit, NumberLit,
          StringLit, TrueLit, FalseLit, NullLit, UnknownLit, Niladic, FloorCall, CeilCall, StepCall,
          SubstringCall, PositionCall, TrimCall, ExtractCall, FunctionCall, ColumnRef> {};

struct SignOp : pegtl::seq<one<'-', '+'>, Skip> {};
struct Unary;
struct UnaryMust : must<Unary> {};
struct UnaryApply : Nest<SignOp, UnaryMust> {};
struct Unary : sor<UnaryApply, Primary> {
  static constexpr const char* Expected() { return "expected an expression"; }
};
struct MulOp : pegtl::seq<one<'*', '/', '%'>, Skip> {};
struct Mul : pegtl::seq<Unary, star<MulOp, must<Unary>>> {
  static constexpr const char* Expected() { return "expected an expression"; }
};
struct AddOp : pegtl::seq<one<'+', '-'>, Skip> {};
struct Add : pegtl::seq<Mul, star<AddOp, must<Mul>>> {
  static constexpr const char* Expected() { return "expected an expression"; }
};
struct ConcatOp : Sym<'|', '|'> {};
struct Concat : pegtl::seq<Add, star<ConcatOp, must<Add>>> {
  static constexpr const char* Expected() { return "expected an expression"; }
};

struct CompOp : pegtl::seq<sor<string<'<', '>'>, string<'<', '='>, string<'>', '='>,
                               string<'!', '='>, one<'<', '>', '='>>,
                           Skip> {};
struct Negation : KwNot {};
struct CmpTail : pegtl::seq<CompOp, must<Concat>> {};
struct IsNullTail : pegtl::seq<KwIs, opt<Negation>, must<KwNull>> {};
struct BetweenTail : pegtl::seq<opt<Negation>, KwBetween, must<Concat>, must<KwAnd>, must<Concat>> {
};
struct InList : pegtl::seq<must<Expr>, star<Comma, must<Expr>>> {};
struct InTail : pegtl::seq<opt<Negation>, KwIn, Nest<must<OpenParen>, InList>, must<CloseParen>> {};
struct LikeTail : pegtl::seq<opt<Negation>, KwLike, must<Concat>, opt<KwEscape, must<Concat>>> {};
struct Comparison
    : pegtl::seq<Concat, opt<sor<CmpTail, IsNullTail, BetweenTail, InTail, LikeTail>>> {};

struct NotExpr;
struct NotMust : must<NotExpr> {};
struct NotApply : Nest<KwNot, NotMust> {};
struct NotExpr : sor<NotApply, Comparison> {
  static constexpr const char* Expected() { return "expected an expression"; }
};
struct And : pegtl::seq<NotExpr, star<KwAnd, must<NotExpr>>> {};
struct Expr : pegtl::seq<And, star<KwOr, must<And>>> {
  static constexpr const char* Expected() { return "expected an expression"; }
};

// ---------------------------------------------------------------------------------------------
// Queries.

struct PartitionBy : pegtl::seq<KwPartition, must<KwBy>, must<Expr>, star<Comma, must<Expr>>> {};
struct RangeFrame : pegtl::seq<KwRange, must<IntervalLit>, must<KwPreceding>> {
  static constexpr const char* Expected() { return "expected RANGE"; }
};
struct RowsFrame : pegtl::seq<KwRows, must<UintLit>, must<KwPreceding>> {};
struct Frame : sor<RangeFrame, RowsFrame> {
  static constexpr const char* Expected() { return "expected RANGE or ROWS"; }
};
struct WindowBody : pegtl::seq<opt<PartitionBy>, must<Frame>> {
  static constexpr const char* Expected() { return "expected PARTITION BY, RANGE or ROWS"; }
};

struct Alias : sor<pegtl::seq<KwAs, must<Name>>, Name> {};

struct SelectStream : pegtl::seq<KwStream, not_at<sor<KwFrom, Comma>>> {};
struct SelectItem : sor<StarMark, pegtl::seq<Expr, opt<Alias>>> {
  static constexpr const char* Expected() { return "expected an expression"; }
};

struct TableWindow : pegtl::seq<KwOver, must<OpenParen>, must<RangeFrame>, must<CloseParen>> {};
struct NamedRef : pegtl::seq<Name, opt<TableWindow>, opt<Alias>> {};
struct FunctionRef
    : pegtl::seq<KwTable, Nest<must<OpenParen>, must<FunctionCall>>, must<CloseParen>, opt<Alias>> {
};
struct SubqueryRef : pegtl::seq<Nest<OpenParen, SelectMust>, must<CloseParen>, opt<Alias>> {};
struct TableRef : sor<FunctionRef, SubqueryRef, NamedRef> {
  static constexpr const char* Expected() {
    return "expected a stream name, TABLE(...) or a subquery";
  }
};

struct LeftJoin : pegtl::seq<KwLeft, opt<KwOuter>, must<KwJoin>> {};
struct InnerJoin : sor<pegtl::seq<KwInner, must<KwJoin>>, KwJoin> {};
struct JoinClause : pegtl::seq<sor<LeftJoin, InnerJoin>, must<TableRef>, must<KwOn>, must<Expr>> {};

struct WhereClause : pegtl::seq<KwWhere, must<Expr>> {};
struct GroupByClause : pegtl::seq<KwGroup, must<KwBy>, must<Expr>, star<Comma, must<Expr>>> {};
struct StaggerClause
    : pegtl::seq<KwWindowed, must<KwBy>, must<KwStagger>, must<OpenParen>, must<KwPartition>,
                 must<KwBy>, must<Expr>, star<Comma, must<Expr>>, must<KwRange>, must<IntervalLit>,
                 must<CloseParen>> {};
struct HavingClause : pegtl::seq<KwHaving, must<Expr>> {};
struct WindowDef
    : pegtl::seq<Name, must<KwAs>, must<OpenParen>, must<WindowBody>, must<CloseParen>> {
  static constexpr const char* Expected() { return "expected a window name"; }
};
struct WindowClause : pegtl::seq<KwWindow, must<WindowDef>, star<Comma, must<WindowDef>>> {};
struct DescKw : KwDesc {};
struct OrderItem : pegtl::seq<Expr, opt<sor<KwAsc, DescKw>>> {
  static constexpr const char* Expected() { return "expected an expression"; }
};
struct OrderByClause
    : pegtl::seq<KwOrder, must<KwBy>, must<OrderItem>, star<Comma, must<OrderItem>>> {};

struct Select
    : pegtl::seq<KwSelect, opt<SelectStream>, opt<sor<DistinctKw, KwAll>>, must<SelectItem>,
                 star<Comma, must<SelectItem>>, must<KwFrom>, must<TableRef>, star<JoinClause>,
                 opt<WhereClause>, opt<StaggerClause>, opt<GroupByClause>, opt<StaggerClause>,
                 opt<HavingClause>, opt<WindowClause>, opt<OrderByClause>> {
  static constexpr const char* Expected() { return "expected SELECT"; }
};

// ---------------------------------------------------------------------------------------------
// Statements.

struct ColumnDef : pegtl::seq<Name, must<TypeSpec>> {
  static constexpr const char* Expected() { return "expected a column name"; }
};
struct CreateStream : pegtl::seq<KwStream, must<Name>, must<OpenParen>, must<ColumnDef>,
                                 star<Comma, must<ColumnDef>>, must<CloseParen>,
                                 opt<KwDescription, must<StringLit>>> {};
struct TargetColumns
    : pegtl::seq<OpenParen, must<Name>, star<Comma, must<Name>>, must<CloseParen>> {};
struct CreatePump : pegtl::seq<KwPump, must<Name>, opt<KwStopped>, must<KwAs>, must<KwInsert>,
                               must<KwInto>, must<Name>, opt<TargetColumns>, must<Select>> {};
struct OrReplace : pegtl::seq<KwOr, must<KwReplace>> {};
struct CreateWhat : sor<CreateStream, CreatePump> {
  static constexpr const char* Expected() { return "expected STREAM or PUMP"; }
};
struct Statement : pegtl::seq<KwCreate, opt<OrReplace>, must<CreateWhat>> {};
struct StatementEnd : sor<Sym<';'>, at<eof>> {
  static constexpr const char* Expected() { return "expected ';'"; }
};
struct ScriptEnd : eof {
  static constexpr const char* Expected() { return "expected CREATE STREAM or CREATE PUMP"; }
};
struct Script : pegtl::seq<Skip, star<sor<Sym<';'>, pegtl::seq<Statement, must<StatementEnd>>>>,
                           must<ScriptEnd>> {};

struct ExpressionEnd : eof {
  static constexpr const char* Expected() { return "expected end of expression"; }
};
struct ExpressionOnly : pegtl::seq<Skip, must<Expr>, must<ExpressionEnd>> {};

// ---------------------------------------------------------------------------------------------
// Errors and the parse tree's selection.

template <typename Rule>
constexpr const char* ExpectedOf() {
  if constexpr (requires { Rule::Expected(); }) {
    return Rule::Expected();
  } else {
    return "unexpected input";
  }
}

template <typename Rule>
struct Control : pegtl::normal<Rule> {
  template <typename ParseInput, typename... States>
  [[noreturn]] static void raise(const ParseInput& in, States&&... /*st*/) {
    throw pegtl::parse_error(ExpectedOf<Rule>(), in);
  }
};

template <typename Rule>
struct Selector : std::false_type {};
#define RILL_SQL_SELECT(Rule) \
  template <>                 \
  struct Selector<Rule> : std::true_type {}
#define RILL_SQL_FOLD(Rule) \
  template <>               \
  struct Selector<Rule> : pegtl::parse_tree::fold_one {}

RILL_SQL_SELECT(UnquotedName);
RILL_SQL_SELECT(QuotedName);
RILL_SQL_SELECT(StringTok);
RILL_SQL_SELECT(Number);
RILL_SQL_SELECT(UintTok);
RILL_SQL_SELECT(StarMark);
RILL_SQL_SELECT(TimeUnitTok);
RILL_SQL_SELECT(TBoolean);
RILL_SQL_SELECT(TInteger);
RILL_SQL_SELECT(TBigint);
RILL_SQL_SELECT(TDouble);
RILL_SQL_SELECT(TDecimal);
RILL_SQL_SELECT(TVarchar);
RILL_SQL_SELECT(TTimestamp);
RILL_SQL_SELECT(IntervalLit);
RILL_SQL_SELECT(TimestampLit);
RILL_SQL_SELECT(TrueLit);
RILL_SQL_SELECT(FalseLit);
RILL_SQL_SELECT(NullLit);
RILL_SQL_SELECT(UnknownLit);
RILL_SQL_SELECT(Niladic);
RILL_SQL_SELECT(CaseExpr);
RILL_SQL_SELECT(CaseOperand);
RILL_SQL_SELECT(WhenClause);
RILL_SQL_SELECT(ElseClause);
RILL_SQL_SELECT(CastExpr);
RILL_SQL_SELECT(CursorExpr);
RILL_SQL_SELECT(FloorCall);
RILL_SQL_SELECT(CeilCall);
RILL_SQL_SELECT(StepCall);
RILL_SQL_SELECT(SubstringCall);
RILL_SQL_SELECT(PositionCall);
RILL_SQL_SELECT(TrimSideKw);
RILL_SQL_SELECT(TrimCall);
RILL_SQL_SELECT(ExtractCall);
RILL_SQL_SELECT(OverClause);
RILL_SQL_SELECT(DistinctKw);
RILL_SQL_SELECT(FunctionCall);
RILL_SQL_SELECT(ColumnRef);
RILL_SQL_SELECT(SignOp);
RILL_SQL_SELECT(UnaryApply);
RILL_SQL_SELECT(MulOp);
RILL_SQL_FOLD(Mul);
RILL_SQL_SELECT(AddOp);
RILL_SQL_FOLD(Add);
RILL_SQL_FOLD(Concat);
RILL_SQL_SELECT(CompOp);
RILL_SQL_SELECT(Negation);
RILL_SQL_SELECT(CmpTail);
RILL_SQL_SELECT(IsNullTail);
RILL_SQL_SELECT(BetweenTail);
RILL_SQL_SELECT(InTail);
RILL_SQL_SELECT(LikeTail);
RILL_SQL_FOLD(Comparison);
RILL_SQL_SELECT(NotApply);
RILL_SQL_FOLD(And);
RILL_SQL_FOLD(Expr);
RILL_SQL_SELECT(PartitionBy);
RILL_SQL_SELECT(RangeFrame);
RILL_SQL_SELECT(RowsFrame);
RILL_SQL_SELECT(WindowBody);
RILL_SQL_SELECT(Alias);
RILL_SQL_SELECT(SelectStream);
RILL_SQL_SELECT(SelectItem);
RILL_SQL_SELECT(TableWindow);
RILL_SQL_SELECT(NamedRef);
RILL_SQL_SELECT(FunctionRef);
RILL_SQL_SELECT(SubqueryRef);
RILL_SQL_SELECT(LeftJoin);
RILL_SQL_SELECT(JoinClause);
RILL_SQL_SELECT(WhereClause);
RILL_SQL_SELECT(GroupByClause);
RILL_SQL_SELECT(StaggerClause);
RILL_SQL_SELECT(HavingClause);
RILL_SQL_SELECT(WindowDef);
RILL_SQL_SELECT(WindowClause);
RILL_SQL_SELECT(DescKw);
RILL_SQL_SELECT(OrderItem);
RILL_SQL_SELECT(OrderByClause);
RILL_SQL_SELECT(Select);
RILL_SQL_SELECT(ColumnDef);
RILL_SQL_SELECT(CreateStream);
RILL_SQL_SELECT(TargetColumns);
RILL_SQL_SELECT(CreatePump);
RILL_SQL_SELECT(OrReplace);
RILL_SQL_SELECT(Statement);

#undef RILL_SQL_SELECT
#undef RILL_SQL_FOLD

// ---------------------------------------------------------------------------------------------
// From the parse tree to the syntax tree.

using Node = pegtl::parse_tree::node;
using NodePtr = std::unique_ptr<Node>;

// Debian's Abseil has its own string_view.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// A parse error raised while building the tree: same shape as the grammar's.
[[noreturn]] void Fail(const Node& n, const std::string& message) {
  throw pegtl::parse_error(message, n.begin());
}

ast::Position PositionOf(const Node& n) {
  const pegtl::position p = n.begin();
  constexpr size_t kMax = std::numeric_limits<uint32_t>::max();
  return {static_cast<uint32_t>(std::min(p.line, kMax)),
          static_cast<uint32_t>(std::min(p.column, kMax))};
}

// The text between a literal's quotes, with the doubled quote unescaped.
std::string Unquote(std::string_view token, char quote) {
  std::string out;
  if (token.size() < 2) return out;
  token = token.substr(1, token.size() - 2);
  out.reserve(token.size());
  for (size_t i = 0; i < token.size(); ++i) {
    out.push_back(token[i]);
    if (token[i] == quote) ++i;  // the grammar guarantees the pair
  }
  return out;
}

std::string NameOf(const Node& n) {
  if (n.is_type<QuotedName>()) {
    std::string name = Unquote(n.string_view(), '"');
    if (name.empty()) Fail(n, "a quoted identifier may not be empty");
    return name;
  }
  return absl::AsciiStrToUpper(Sv(n.string_view()));
}

// The first word of a node's text, upper case (for keywords, whose content ends in whitespace).
std::string FirstWord(const Node& n) {
  const std::string_view text = n.string_view();
  size_t end = 0;
  while (end < text.size() && IsIdentOther(text[end])) ++end;
  return absl::AsciiStrToUpper(Sv(text.substr(0, end)));
}

ast::TimeUnit TimeUnitOf(const Node& n) {
  std::string word = FirstWord(n);
  if (word.size() > 1 && word.back() == 'S' && word != "S") word.pop_back();
  if (word == "MILLISECOND") return ast::TimeUnit::kMillisecond;
  if (word == "SECOND") return ast::TimeUnit::kSecond;
  if (word == "MINUTE") return ast::TimeUnit::kMinute;
  if (word == "HOUR") return ast::TimeUnit::kHour;
  if (word == "DAY") return ast::TimeUnit::kDay;
  if (word == "WEEK") return ast::TimeUnit::kWeek;
  if (word == "MONTH") return ast::TimeUnit::kMonth;
  return ast::TimeUnit::kYear;
}

int64_t UnitMicros(ast::TimeUnit unit) {
  switch (unit) {
    case ast::TimeUnit::kMillisecond:
      return 1000;
    case ast::TimeUnit::kSecond:
      return 1000 * 1000;
    case ast::TimeUnit::kMinute:
      return int64_t{60} * 1000 * 1000;
    case ast::TimeUnit::kHour:
      return int64_t{3600} * 1000 * 1000;
    case ast::TimeUnit::kDay:
      return int64_t{86400} * 1000 * 1000;
    default:
      return int64_t{7} * 86400 * 1000 * 1000;  // kWeek (months and years are refused earlier)
  }
}

// Parses digits into `out` (no sign); false when empty, not all digits, or over int64.
bool ParseDigits(std::string_view digits, int64_t* out) {
  if (digits.empty()) return false;
  int64_t value = 0;
  for (char c : digits) {
    if (!absl::ascii_isdigit(c)) return false;
    if (__builtin_mul_overflow(value, 10, &value) ||
        __builtin_add_overflow(value, c - '0', &value)) {
      return false;
    }
  }
  *out = value;
  return true;
}

// The microseconds of one INTERVAL field: digits, with a fraction of a second when fractional.
bool FieldMicros(std::string_view field, ast::TimeUnit unit, bool fractional, int64_t* out) {
  std::string_view whole = field;
  std::string_view fraction;
  if (const size_t dot = field.find('.'); dot != std::string_view::npos) {
    if (!fractional) return false;
    whole = field.substr(0, dot);
    fraction = field.substr(dot + 1);
    if (fraction.empty() || fraction.size() > 6) return false;
  }
  int64_t value = 0;
  if (!ParseDigits(whole, &value)) return false;
  if (__builtin_mul_overflow(value, UnitMicros(unit), &value)) return false;
  if (!fraction.empty()) {
    int64_t frac = 0;
    if (!ParseDigits(fraction, &frac)) return false;
    for (size_t i = fraction.size(); i < 6; ++i) frac *= 10;
    frac = frac * UnitMicros(unit) / (1000 * 1000);
    if (__builtin_add_overflow(value, frac, &value)) return false;
  }
  *out = value;
  return true;
}

// INTERVAL 'text' unit [TO unit], in microseconds. A single unit takes an integer (SECOND also
// a fraction); DAY / HOUR / MINUTE TO HOUR / MINUTE / SECOND take fields separated by ' ' or ':'.
int64_t IntervalMicros(const Node& n) {
  const Node& text_node = *n.children[0];
  const ast::TimeUnit from = TimeUnitOf(*n.children[1]);
  const ast::TimeUnit to = n.children.size() > 2 ? TimeUnitOf(*n.children[2]) : from;
  for (ast::TimeUnit unit : {from, to}) {
    if (unit == ast::TimeUnit::kMonth || unit == ast::TimeUnit::kYear) {
      Fail(n, "INTERVAL in MONTH or YEAR is not supported: months have no fixed length");
    }
  }
  const std::string text = Unquote(text_node.string_view(), '\'');
  std::string_view body(text);
  while (!body.empty() && body.front() == ' ') body.remove_prefix(1);
  while (!body.empty() && body.back() == ' ') body.remove_suffix(1);
  bool negative = false;
  if (!body.empty() && (body.front() == '-' || body.front() == '+')) {
    negative = body.front() == '-';
    body.remove_prefix(1);
  }
  const std::string invalid = absl::StrCat("invalid INTERVAL value '", text, "'");
  int64_t total = 0;
  if (n.children.size() == 2) {
    if (!FieldMicros(body, from, from == ast::TimeUnit::kSecond, &total)) Fail(text_node, invalid);
  } else {
    // Day-time fields, from the largest unit down.
    constexpr ast::TimeUnit kFields[] = {ast::TimeUnit::kDay, ast::TimeUnit::kHour,
                                         ast::TimeUnit::kMinute, ast::TimeUnit::kSecond};
    int first = -1;
    int last = -1;
    for (int i = 0; i < 4; ++i) {
      if (kFields[i] == from) first = i;
      if (kFields[i] == to) last = i;
    }
    if (first < 0 || last <= first) {
      Fail(n,
           "INTERVAL ... TO ... takes DAY, HOUR or MINUTE TO a smaller one of HOUR, MINUTE "
           "or SECOND");
    }
    for (int i = first; i <= last; ++i) {
      size_t end = body.size();
      if (i < last) {
        end = body.find_first_of(" :");
        if (end == std::string_view::npos) Fail(text_node, invalid);
      }
      int64_t micros = 0;
      if (!FieldMicros(body.substr(0, end), kFields[i], kFields[i] == ast::TimeUnit::kSecond,
                       &micros) ||
          __builtin_add_overflow(total, micros, &total)) {
        Fail(text_node, invalid);
      }
      body.remove_prefix(i < last ? end + 1 : end);
    }
  }
  return negative ? -total : total;
}

Value NumberValue(const Node& n) {
  const std::string_view text = n.string_view();
  if (text.find_first_of("eE") != std::string_view::npos) {
    const double d = std::strtod(std::string(text).c_str(), nullptr);
    if (!std::isfinite(d)) Fail(n, absl::StrCat("numeric literal ", Sv(text), " is out of range"));
    return Value::Double(d);
  }
  if (const size_t dot = text.find('.'); dot != std::string_view::npos) {
    std::string digits = absl::StrCat(Sv(text.substr(0, dot)), Sv(text.substr(dot + 1)));
    const size_t scale = text.size() - dot - 1;
    const size_t significant = digits.find_first_not_of('0');
    const size_t precision = significant == std::string::npos ? 0 : digits.size() - significant;
    int64_t unscaled = 0;
    if (precision <= 18 && scale <= 18 &&
        ParseDigits(precision == 0 ? "0" : std::string_view(digits).substr(significant),
                    &unscaled)) {
      return Value::Decimal(unscaled, static_cast<uint8_t>(scale));
    }
    return Value::Double(std::strtod(std::string(text).c_str(), nullptr));
  }
  int64_t value = 0;
  if (!ParseDigits(text, &value)) {
    Fail(n, absl::StrCat("integer literal ", Sv(text.substr(0, 40)), text.size() > 40 ? "..." : "",
                         " is out of range (BIGINT)"));
  }
  if (value <= std::numeric_limits<int32_t>::max()) {
    return Value::Integer(static_cast<int32_t>(value));
  }
  return Value::Bigint(value);
}

int64_t UintValue(const Node& n) {
  int64_t value = 0;
  if (!ParseDigits(n.string_view(), &value)) Fail(n, "integer out of range");
  return value;
}

Value TimestampValue(const Node& n) {
  const std::string text = Unquote(n.string_view(), '\'');
  const absl::string_view input(text.data(), text.size());
  for (const char* format : {"%Y-%m-%d %H:%M:%E*S", "%Y-%m-%d %H:%M", "%Y-%m-%d"}) {
    absl::Time t;
    std::string err;
    if (absl::ParseTime(format, input, absl::UTCTimeZone(), &t, &err)) return Value::Timestamp(t);
  }
  Fail(n, absl::StrCat("invalid TIMESTAMP '", text, "' (expected 'yyyy-MM-dd HH:mm:ss[.fff]')"));
}

ColumnType TypeOf(const Node& n) {
  ColumnType type;
  if (n.is_type<TBoolean>()) {
    type.type = SqlType::kBoolean;
  } else if (n.is_type<TInteger>()) {
    type.type = SqlType::kInteger;
  } else if (n.is_type<TBigint>()) {
    type.type = SqlType::kBigint;
  } else if (n.is_type<TDouble>()) {
    type.type = SqlType::kDouble;
  } else if (n.is_type<TTimestamp>()) {
    type.type = SqlType::kTimestamp;
  } else if (n.is_type<TDecimal>()) {
    type.type = SqlType::kDecimal;
    int64_t precision = 18;
    int64_t scale = 0;
    if (!n.children.empty()) {
      precision = UintValue(*n.children[0]);
      if (precision < 1 || precision > 18) {
        Fail(*n.children[0], absl::StrCat("DECIMAL precision must be 1 to 18, not ", precision));
      }
    }
    if (n.children.size() > 1) {
      scale = UintValue(*n.children[1]);
      if (scale > precision) {
        Fail(*n.children[1], absl::StrCat("DECIMAL scale must be 0 to the precision (", precision,
                                          "), not ", scale));
      }
    }
    type.precision = static_cast<uint8_t>(precision);
    type.scale = static_cast<uint8_t>(scale);
  } else {  // TVarchar
    type.type = SqlType::kVarchar;
    if (n.children.empty()) {
      Fail(n, absl::StrCat(FirstWord(n), " needs a length, e.g. ", FirstWord(n), "(64)"));
    }
    const int64_t length = UintValue(*n.children[0]);
    if (length < 1 || length > 65535) {
      Fail(*n.children[0], absl::StrCat(FirstWord(n), " length must be 1 to 65535, not ", length));
    }
    type.length = static_cast<uint32_t>(length);
  }
  return type;
}

ast::ExprPtr BuildExpr(const Node& n);
ast::Select BuildSelect(const Node& n);

ast::ExprPtr NewExpr(ast::ExprKind kind, const Node& n) {
  auto e = std::make_unique<ast::Expr>();
  e->kind = kind;
  e->pos = PositionOf(n);
  return e;
}

ast::ExprPtr Binary(const Node& at, std::string op, ast::ExprPtr lhs, ast::ExprPtr rhs) {
  ast::ExprPtr e = NewExpr(ast::ExprKind::kBinary, at);
  e->op = std::move(op);
  e->args.push_back(std::move(lhs));
  e->args.push_back(std::move(rhs));
  return e;
}

// The depth of the expression being built. Chains (a + b + c ...) are loops in the grammar but
// as deep as they are long in the syntax tree, which its users (and its destructor) recurse
// over; so the tree's depth is bounded too.
constexpr int kMaxExprDepth = 4000;
thread_local int tls_expr_depth = 0;

class ExprDepthScope {
 public:
  ExprDepthScope(const Node& n, int levels) : levels_(levels) {
    if (tls_expr_depth + levels > kMaxExprDepth) {
      Fail(n, absl::StrCat("expression nested deeper than ", kMaxExprDepth,
                           " levels is not supported"));
    }
    tls_expr_depth += levels;
  }
  ~ExprDepthScope() { tls_expr_depth -= levels_; }
  ExprDepthScope(const ExprDepthScope&) = delete;
  ExprDepthScope& operator=(const ExprDepthScope&) = delete;

 private:
  const int levels_;
};

ast::ExprPtr BuildExprNode(const Node& n);

ast::ExprPtr BuildExpr(const Node& n) {
  const ExprDepthScope scope(n, 1);
  return BuildExprNode(n);
}

// a op b op c ... as ((a op b) op c): operands only (op given) or operands and operators.
ast::ExprPtr FoldLeft(const Node& n, const char* op) {
  const bool with_ops = *op == '\0';
  const int ops = static_cast<int>(with_ops ? n.children.size() / 2 : n.children.size() - 1);
  ast::ExprPtr acc;
  {
    const ExprDepthScope scope(n, ops - 1);  // the first operand is the deepest
    acc = BuildExpr(*n.children[0]);
  }
  int depth = ops;
  for (size_t i = 1; i < n.children.size(); ++i) {
    std::string this_op = op;
    if (with_ops) this_op = std::string(1, n.children[i++]->string_view()[0]);
    const ExprDepthScope scope(n, --depth);
    acc = Binary(n, std::move(this_op), std::move(acc), BuildExpr(*n.children[i]));
  }
  return acc;
}

ast::WindowSpec BuildWindowBody(const Node& n) {
  ast::WindowSpec spec;
  spec.pos = PositionOf(n);
  for (const NodePtr& c : n.children) {
    if (c->is_type<PartitionBy>()) {
      for (const NodePtr& e : c->children) spec.partition_by.push_back(BuildExpr(*e));
    } else if (c->is_type<RangeFrame>()) {
      spec.range_micros = IntervalMicros(*c->children[0]);
    } else {  // RowsFrame
      spec.rows = UintValue(*c->children[0]);
    }
  }
  return spec;
}

ast::ExprPtr BuildFunctionCall(const Node& n) {
  ast::ExprPtr e = NewExpr(ast::ExprKind::kFunction, n);
  e->name = NameOf(*n.children[0]);
  for (size_t i = 1; i < n.children.size(); ++i) {
    const Node& c = *n.children[i];
    if (c.is_type<StarMark>()) {
      e->star = true;
    } else if (c.is_type<DistinctKw>()) {
      e->distinct = true;
    } else if (c.is_type<OverClause>()) {
      const Node& target = *c.children[0];
      if (target.is_type<WindowBody>()) {
        e->over_window = std::make_unique<ast::WindowSpec>(BuildWindowBody(target));
      } else {
        e->over = NameOf(target);
      }
    } else {
      e->args.push_back(BuildExpr(c));
    }
  }
  return e;
}

ast::ExprPtr NamedFunction(const Node& n, const char* name) {
  ast::ExprPtr e = NewExpr(ast::ExprKind::kFunction, n);
  e->name = name;
  for (const NodePtr& c : n.children) {
    if (c->is_type<TimeUnitTok>()) {
      e->unit = TimeUnitOf(*c);
    } else if (c->is_type<TrimSideKw>()) {
      const std::string side = FirstWord(*c);
      e->trim_side = side == "LEADING"    ? ast::TrimSide::kLeading
                     : side == "TRAILING" ? ast::TrimSide::kTrailing
                                          : ast::TrimSide::kBoth;
    } else {
      e->args.push_back(BuildExpr(*c));
    }
  }
  return e;
}

ast::ExprPtr BuildExprNode(const Node& n) {
  if (n.is_type<Expr>()) return FoldLeft(n, "OR");
  if (n.is_type<And>()) return FoldLeft(n, "AND");
  if (n.is_type<Concat>()) return FoldLeft(n, "||");
  if (n.is_type<Add>() || n.is_type<Mul>()) return FoldLeft(n, "");
  if (n.is_type<NotApply>()) {
    ast::ExprPtr e = NewExpr(ast::ExprKind::kUnary, n);
    e->op = "NOT";
    e->args.push_back(BuildExpr(*n.children[0]));
    return e;
  }
  if (n.is_type<UnaryApply>()) {
    ast::ExprPtr e = NewExpr(ast::ExprKind::kUnary, n);
    e->op = std::string(1, n.children[0]->string_view()[0]);
    e->args.push_back(BuildExpr(*n.children[1]));
    return e;
  }
  if (n.is_type<Comparison>()) {
    const Node& tail = *n.children[1];
    ast::ExprPtr lhs = BuildExpr(*n.children[0]);
    if (tail.is_type<CmpTail>()) {
      // The operator's own characters, without the whitespace and comments after them.
      const std::string_view token = tail.children[0]->string_view();
      size_t length = 1;
      if (token.size() > 1 && (token[1] == '=' || token[1] == '>')) length = 2;
      std::string op(token.substr(0, length));
      if (op == "!=") op = "<>";
      return Binary(n, std::move(op), std::move(lhs), BuildExpr(*tail.children[1]));
    }
    ast::ExprKind kind = ast::ExprKind::kIsNull;
    if (tail.is_type<BetweenTail>()) kind = ast::ExprKind::kBetween;
    if (tail.is_type<InTail>()) kind = ast::ExprKind::kIn;
    if (tail.is_type<LikeTail>()) kind = ast::ExprKind::kLike;
    ast::ExprPtr e = NewExpr(kind, n);
    e->args.push_back(std::move(lhs));
    for (const NodePtr& c : tail.children) {
      if (c->is_type<Negation>()) {
        e->negated = true;
      } else {
        e->args.push_back(BuildExpr(*c));
      }
    }
    return e;
  }
  if (n.is_type<Number>()) {
    ast::ExprPtr e = NewExpr(ast::ExprKind::kLiteral, n);
    e->literal = NumberValue(n);
    return e;
  }
  if (n.is_type<StringTok>()) {
    ast::ExprPtr e = NewExpr(ast::ExprKind::kLiteral, n);
    e->literal = Value::Varchar(Unquote(n.string_view(), '\''));
    return e;
  }
  if (n.is_type<TrueLit>() || n.is_type<FalseLit>()) {
    ast::ExprPtr e = NewExpr(ast::ExprKind::kLiteral, n);
    e->literal = Value::Boolean(n.is_type<TrueLit>());
    return e;
  }
  if (n.is_type<NullLit>()) return NewExpr(ast::ExprKind::kLiteral, n);
  if (n.is_type<UnknownLit>()) {
    ast::ExprPtr e = NewExpr(ast::ExprKind::kLiteral, n);
    e->literal = Value::Null(SqlType::kBoolean);
    return e;
  }
  if (n.is_type<TimestampLit>()) {
    ast::ExprPtr e = NewExpr(ast::ExprKind::kLiteral, n);
    e->literal = TimestampValue(*n.children[0]);
    return e;
  }
  if (n.is_type<IntervalLit>()) {
    ast::ExprPtr e = NewExpr(ast::ExprKind::kLiteral, n);
    e->literal = Value::Interval(absl::Microseconds(IntervalMicros(n)));
    return e;
  }
  if (n.is_type<Niladic>()) {
    ast::ExprPtr e = NewExpr(ast::ExprKind::kFunction, n);
    e->name = FirstWord(n);
    return e;
  }
  if (n.is_type<ColumnRef>()) {
    const bool qualified = n.children.size() > 1;
    if (qualified && n.children[1]->is_type<StarMark>()) {
      ast::ExprPtr e = NewExpr(ast::ExprKind::kStar, n);
      e->qualifier = NameOf(*n.children[0]);
      return e;
    }
    ast::ExprPtr e = NewExpr(ast::ExprKind::kColumn, n);
    if (qualified) e->qualifier = NameOf(*n.children[0]);
    e->name = NameOf(*n.children[qualified ? 1 : 0]);
    return e;
  }
  if (n.is_type<FunctionCall>()) return BuildFunctionCall(n);
  if (n.is_type<FloorCall>()) return NamedFunction(n, "FLOOR");
  if (n.is_type<CeilCall>()) return NamedFunction(n, "CEIL");
  if (n.is_type<StepCall>()) return NamedFunction(n, "STEP");
  if (n.is_type<SubstringCall>()) return NamedFunction(n, "SUBSTRING");
  if (n.is_type<PositionCall>()) return NamedFunction(n, "POSITION");
  if (n.is_type<ExtractCall>()) return NamedFunction(n, "EXTRACT");
  if (n.is_type<TrimCall>()) {
    // TRIM([side] [c] FROM s) is TRIM(s[, c]): the grammar yields c before s.
    ast::ExprPtr e = NamedFunction(n, "TRIM");
    if (e->args.size() == 2) std::swap(e->args[0], e->args[1]);
    return e;
  }
  if (n.is_type<CastExpr>()) {
    ast::ExprPtr e = NewExpr(ast::ExprKind::kCast, n);
    e->args.push_back(BuildExpr(*n.children[0]));
    e->cast_type = TypeOf(*n.children[1]);
    return e;
  }
  if (n.is_type<CaseExpr>()) {
    ast::ExprPtr e = NewExpr(ast::ExprKind::kCase, n);
    for (const NodePtr& c : n.children) {
      if (c->is_type<CaseOperand>()) e->has_operand = true;
      if (c->is_type<ElseClause>()) e->has_else = true;
      for (const NodePtr& part : c->children) e->args.push_back(BuildExpr(*part));
    }
    return e;
  }
  if (n.is_type<CursorExpr>()) {
    ast::ExprPtr e = NewExpr(ast::ExprKind::kCursor, n);
    e->cursor = std::make_unique<ast::Select>(BuildSelect(*n.children[0]));
    return e;
  }
  if (n.is_type<StarMark>()) Fail(n, "'*' is only allowed in a select list or COUNT(*)");
  Fail(n, "unexpected input");
}

std::string AliasOf(const Node& n) { return NameOf(*n.children[0]); }

ast::TableRef BuildTableRef(const Node& n) {
  ast::TableRef ref;
  ref.pos = PositionOf(n);
  for (size_t i = 0; i < n.children.size(); ++i) {
    const Node& c = *n.children[i];
    if (c.is_type<Alias>()) {
      ref.alias = AliasOf(c);
    } else if (c.is_type<TableWindow>()) {
      ref.over = std::make_unique<ast::WindowSpec>();
      ref.over->pos = PositionOf(c);
      ref.over->range_micros = IntervalMicros(*c.children[0]->children[0]);
    } else if (n.is_type<NamedRef>()) {
      ref.kind = ast::TableRef::Kind::kNamed;
      ref.name = NameOf(c);
    } else if (n.is_type<FunctionRef>()) {
      ref.kind = ast::TableRef::Kind::kTableFunction;
      ref.function = BuildFunctionCall(c);
      if (ref.function->args.empty() || ref.function->args[0]->kind != ast::ExprKind::kCursor) {
        Fail(c, "a table function takes CURSOR(SELECT STREAM ...) as its first argument");
      }
    } else {
      ref.kind = ast::TableRef::Kind::kSubquery;
      ref.subquery = std::make_unique<ast::Select>(BuildSelect(c));
    }
  }
  return ref;
}

ast::Select BuildSelect(const Node& n) {
  ast::Select select;
  select.pos = PositionOf(n);
  bool from_seen = false;
  for (const NodePtr& c : n.children) {
    if (c->is_type<SelectStream>()) {
      select.stream = true;
    } else if (c->is_type<DistinctKw>()) {
      select.distinct = true;
    } else if (c->is_type<SelectItem>()) {
      ast::SelectItem item;
      if (c->children[0]->is_type<StarMark>()) {
        item.expr = NewExpr(ast::ExprKind::kStar, *c->children[0]);
      } else {
        item.expr = BuildExpr(*c->children[0]);
      }
      if (c->children.size() > 1) item.alias = AliasOf(*c->children[1]);
      select.items.push_back(std::move(item));
    } else if (!from_seen &&
               (c->is_type<NamedRef>() || c->is_type<FunctionRef>() || c->is_type<SubqueryRef>())) {
      select.from = BuildTableRef(*c);
      from_seen = true;
    } else if (c->is_type<JoinClause>()) {
      ast::Join join;
      join.pos = PositionOf(*c);
      size_t next = 0;
      if (c->children[0]->is_type<LeftJoin>()) {
        join.kind = ast::Join::Kind::kLeftOuter;
        next = 1;
      }
      join.table = BuildTableRef(*c->children[next]);
      join.on = BuildExpr(*c->children[next + 1]);
      select.joins.push_back(std::move(join));
    } else if (c->is_type<WhereClause>()) {
      select.where = BuildExpr(*c->children[0]);
    } else if (c->is_type<GroupByClause>()) {
      for (const NodePtr& e : c->children) select.group_by.push_back(BuildExpr(*e));
    } else if (c->is_type<StaggerClause>()) {
      if (select.stagger) Fail(*c, "WINDOWED BY may appear only once");
      select.stagger = std::make_unique<ast::Stagger>();
      select.stagger->pos = PositionOf(*c);
      for (size_t i = 0; i + 1 < c->children.size(); ++i) {
        select.stagger->partition_by.push_back(BuildExpr(*c->children[i]));
      }
      select.stagger->range_micros = IntervalMicros(*c->children.back());
    } else if (c->is_type<HavingClause>()) {
      select.having = BuildExpr(*c->children[0]);
    } else if (c->is_type<WindowClause>()) {
      for (const NodePtr& def : c->children) {
        ast::WindowSpec spec = BuildWindowBody(*def->children[1]);
        spec.pos = PositionOf(*def);
        spec.name = NameOf(*def->children[0]);
        select.windows.push_back(std::move(spec));
      }
    } else if (c->is_type<OrderByClause>()) {
      for (const NodePtr& item : c->children) {
        ast::OrderItem order;
        order.expr = BuildExpr(*item->children[0]);
        order.descending = item->children.size() > 1;
        select.order_by.push_back(std::move(order));
      }
    }
  }
  return select;
}

ast::Statement BuildStatement(const Node& n) {
  ast::Statement statement;
  const bool or_replace = n.children[0]->is_type<OrReplace>();
  const Node& body = *n.children.back();
  if (body.is_type<CreateStream>()) {
    statement.kind = ast::Statement::Kind::kCreateStream;
    ast::CreateStream& stream = statement.create_stream;
    stream.pos = PositionOf(n);
    stream.or_replace = or_replace;
    stream.name = NameOf(*body.children[0]);
    for (size_t i = 1; i < body.children.size(); ++i) {
      const Node& c = *body.children[i];
      if (c.is_type<StringTok>()) {
        stream.description = Unquote(c.string_view(), '\'');
        continue;
      }
      ast::ColumnDef column;
      column.pos = PositionOf(c);
      column.name = NameOf(*c.children[0]);
      column.type = TypeOf(*c.children[1]);
      stream.columns.push_back(std::move(column));
    }
  } else {
    statement.kind = ast::Statement::Kind::kCreatePump;
    ast::CreatePump& pump = statement.create_pump;
    pump.pos = PositionOf(n);
    pump.or_replace = or_replace;
    pump.name = NameOf(*body.children[0]);
    pump.target = NameOf(*body.children[1]);
    for (size_t i = 2; i < body.children.size(); ++i) {
      const Node& c = *body.children[i];
      if (c.is_type<TargetColumns>()) {
        for (const NodePtr& name : c.children) pump.target_columns.push_back(NameOf(*name));
      } else {
        pump.select = BuildSelect(c);
      }
    }
  }
  return statement;
}

// ---------------------------------------------------------------------------------------------
// Error messages.

// The token at `offset`, for "near '...'": a word, a number, a quoted literal, an operator or one
// character; at most 20 bytes, with anything unprintable escaped.
std::string TokenAt(std::string_view text, size_t offset) {
  if (offset >= text.size()) return "end of input";
  const std::string_view rest = text.substr(offset);
  size_t length = 1;
  const char c = rest[0];
  if (IsIdentOther(c)) {
    while (length < rest.size() && (IsIdentOther(rest[length]) || rest[length] == '.') &&
           !(rest[length] == '.' && !absl::ascii_isdigit(c))) {
      ++length;
    }
  } else if (c == '\'' || c == '"') {
    while (length < rest.size() && rest[length] != c) ++length;
    if (length < rest.size()) ++length;
  } else if (rest.size() > 1) {
    const std::string_view two_chars = rest.substr(0, 2);
    if (two_chars == "<>" || two_chars == "<=" || two_chars == ">=" || two_chars == "!=" ||
        two_chars == "||" || two_chars == "/*") {
      length = 2;
    }
  }
  constexpr size_t kMaxToken = 20;
  std::string out;
  for (char ch : rest.substr(0, std::min(length, kMaxToken))) {
    const auto byte = static_cast<unsigned char>(ch);
    if (byte < 0x20 || byte >= 0x7f) {
      absl::StrAppend(&out, "\\x", absl::Hex(byte, absl::kZeroPad2));
    } else {
      out.push_back(ch);
    }
  }
  if (length > kMaxToken) out += "...";
  return out;
}

absl::Status SyntaxError(std::string_view text, const pegtl::parse_error& e) {
  pegtl::position p(0, 1, 1, "");
  if (!e.positions().empty()) p = e.positions().front();
  return MakeError(ErrorCode::kCodeValidation,
                   absl::StrCat("SQL syntax error at line ", p.line, ", column ", p.column,
                                " near '", TokenAt(text, p.byte), "': ", Sv(e.message())));
}

}  // namespace

absl::StatusOr<ast::Script> ParseScript(std::string_view sql) {
  tls_expr_depth = 0;
  try {
    SqlInput in(sql, "sql");
    const std::unique_ptr<Node> root =
        pegtl::parse_tree::parse<Script, Node, Selector, pegtl::nothing, Control>(in);
    ast::Script script;
    if (root == nullptr) return script;  // unreachable: Script ends in must<>
    for (const NodePtr& statement : root->children) {
      script.statements.push_back(BuildStatement(*statement));
    }
    return script;
  } catch (const pegtl::parse_error& e) {
    return SyntaxError(sql, e);
  }
}

absl::StatusOr<ast::ExprPtr> ParseExpression(std::string_view text) {
  tls_expr_depth = 0;
  try {
    SqlInput in(text, "expression");
    const std::unique_ptr<Node> root =
        pegtl::parse_tree::parse<ExpressionOnly, Node, Selector, pegtl::nothing, Control>(in);
    if (root == nullptr || root->children.empty()) {
      return MakeError(ErrorCode::kCodeValidation, "SQL syntax error: expected an expression");
    }
    return BuildExpr(*root->children[0]);
  } catch (const pegtl::parse_error& e) {
    return SyntaxError(text, e);
  }
}

}  // namespace rill::sql
