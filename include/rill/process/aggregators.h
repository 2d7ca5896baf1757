// Aggregators: what a window computes over the values that fall into it.
//
// An aggregator is a small immutable object that describes a computation over a bag of values; the
// running value lives apart from it in a State. The split lets a pipeline keep one State per key
// and window (or per pane of a hopping window) and one aggregator for all of them:
//
//   Init()            -> an empty State
//   Add(state, value)    folds one value in
//   Merge(into, from)    folds another State in — associative and commutative, so a hopping
//                        window is the Merge of its panes, and parallel partial results combine
//   Finish(state)     -> the Result
//   Encode / Decode      a stable, versioned, little-endian snapshot of a State
//
// Built in (this header): Count(), Sum<T>(), Min<T>(), Max<T>(), Mean<T>(), and Aggregates(...)
// for several of them over the same values in one result. Sketches, in their own
// headers: DistinctCount<T>() (hyperloglog.h), Quantiles<T>() (quantiles.h), TopK<T>() (top_k.h).
//
// Example:
//   auto mean = rill::Mean<double>();
//   auto pane1 = mean.Init(), pane2 = mean.Init();
//   mean.Add(pane1, 1.0);
//   mean.Add(pane2, 2.0);
//   mean.Merge(pane1, pane2);
//   std::optional<double> m = mean.Finish(pane1);   // 1.5; nullopt for no values
//
// A user aggregator is any type satisfying rill::Aggregator (see the concept below); nothing to
// derive from, no virtual call.
//
// Thread safety: aggregator objects are immutable, so one may be used from any number of threads
// at once. A State is a plain value: not thread-safe; use one per thread, then Merge.
// Allocation: the built-ins in this header never allocate, except Encode (which appends to a
// string).
//
// Snapshots: Encode appends [format version][aggregator kind][value type][payload] to *out, all
// integers little-endian, floating point by its IEEE-754 bits. Decode takes exactly the bytes of
// one Encode, returns false for anything else (wrong kind or type, truncated, trailing bytes,
// invalid contents) and then leaves *state unchanged. It never crashes on garbage.
#ifndef RILL_PROCESS_AGGREGATORS_H_
#define RILL_PROCESS_AGGREGATORS_H_

#include <bit>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include "rill/process/internal/aggregator_encoding.h"

namespace rill {

// What every aggregator provides. Merge must be associative and commutative (sketches: up to
// their stated error), and Merge(Init(), s) must equal s.
template <typename A>
concept Aggregator = std::copy_constructible<A> && std::copyable<typename A::State> &&
    requires(const A& a, typename A::State& state, const typename A::State& other,
             const typename A::Input& input, std::string* out, std::string_view bytes,
             typename A::State* decoded) {
  typename A::Result;
  { a.Init() } -> std::same_as<typename A::State>;
  { a.Add(state, input) } -> std::same_as<void>;
  { a.Merge(state, other) } -> std::same_as<void>;
  { a.Finish(other) } -> std::same_as<typename A::Result>;
  { a.Encode(other, out) } -> std::same_as<void>;
  { a.Decode(bytes, decoded) } -> std::same_as<bool>;
};

// An aggregator that accepts values of type V (V converts to its Input).
template <typename A, typename V>
concept AggregatorFor = Aggregator<A> && std::convertible_to<const V&, const typename A::Input&>;

// The Input of aggregators that ignore the value (Count): every type converts to it for free.
struct AnyInput {
  template <typename T>
  constexpr AnyInput(const T&) noexcept {}  // NOLINT(google-explicit-constructor): on purpose
};

// Snapshot kinds, pinned forever (they are in every encoded State). User aggregators that reuse
// rill's encoding helpers should pick kinds >= 128.
enum class AggregatorKind : uint8_t {
  kCount = 1,
  kSum = 2,
  kMin = 3,
  kMax = 4,
  kMean = 5,
  kDistinctCount = 6,
  kQuantiles = 7,
  kTopK = 8,
  kMulti = 9,  // rill::Aggregates
};

// ---------------------------------------------------------------------------------------------
// Stable hashing: what DistinctCount and TopK hash values with. Fixed constants, so the same value
// gives the same hash on every run, build and platform (never absl::Hash or std::hash, which may
// change between runs). Equal values hash equally across integer types (int 5 and uint64_t 5);
// floating point hashes +0.0 and -0.0 alike and every NaN alike.
//
// To count or rank your own type, declare `uint64_t StableHash(const YourType&)` in YourType's
// namespace (found by argument-dependent lookup), e.g. by combining the hashes of its fields with
// rill::StableHashCombine. It must depend only on the value, never on addresses or on the run.

template <std::integral T>
constexpr uint64_t StableHash(T v) {
  return internal::Mix64(static_cast<uint64_t>(v));
}
template <std::floating_point T>
inline uint64_t StableHash(T v) {
  double d = static_cast<double>(v);
  if (d == 0.0) d = 0.0;                                            // -0.0 == +0.0
  if (std::isnan(d)) d = std::numeric_limits<double>::quiet_NaN();  // one NaN
  return internal::Mix64(std::bit_cast<uint64_t>(d) ^ 0x5851f42d4c957f2dULL);
}
inline uint64_t StableHash(std::string_view s) { return internal::HashBytes(s); }
inline uint64_t StableHash(const std::string& s) { return internal::HashBytes(s); }
// A null pointer hashes like the empty string.
inline uint64_t StableHash(const char* s) {
  return internal::HashBytes(s == nullptr ? std::string_view() : std::string_view(s));
}

// Combines two stable hashes (order matters), for user types with several fields.
constexpr uint64_t StableHashCombine(uint64_t seed, uint64_t h) {
  return internal::Mix64(seed ^ (h + 0x9e3779b97f4a7c15ULL + (seed << 6) + (seed >> 2)));
}

// A type rill can hash stably (built-in overloads above, or a user's StableHash found by ADL).
template <typename T>
concept StablyHashable = requires(const T& v) {
  { StableHash(v) } -> std::convertible_to<uint64_t>;
};

// ---------------------------------------------------------------------------------------------
// How values are written into snapshots (used by TopK, which stores values). Specialised for
// arithmetic types and std::string; specialise rill::ValueCodec<YourType> to snapshot TopK over
// your own type:
//   static uint8_t TypeCode();                                   // any value in [1, 0x1f]
//   static void Encode(const T& v, std::string* out);            // appends
//   static bool Decode(internal::ByteReader* in, T* v);          // false on garbage
template <typename T, typename Enable = void>
struct ValueCodec;

template <typename T>
struct ValueCodec<T, std::enable_if_t<std::is_arithmetic_v<T>>> {
  static constexpr uint8_t TypeCode() { return internal::ArithmeticTypeCode<T>(); }
  static void Encode(const T& v, std::string* out) { internal::PutArithmetic(out, v); }
  static bool Decode(internal::ByteReader* in, T* v) { return in->Arithmetic(v); }
};

template <>
struct ValueCodec<std::string> {
  static constexpr uint8_t TypeCode() { return 0x20; }
  static void Encode(const std::string& v, std::string* out) {
    internal::PutLittleEndian(out, static_cast<uint32_t>(v.size()));
    out->append(v);
  }
  static bool Decode(internal::ByteReader* in, std::string* v) {
    uint32_t n;
    std::string_view bytes;
    if (!in->LittleEndian(&n) || !in->Bytes(n, &bytes)) return false;
    v->assign(bytes);
    return true;
  }
};

// ---------------------------------------------------------------------------------------------
// Simple aggregators.

// The type Sum and Mean accumulate in: int64_t for signed integers, uint64_t for unsigned ones
// (both wrap around modulo 2^64 on overflow, never undefined behaviour), double for floating point.
template <typename T>
using SumType = std::conditional_t<std::is_floating_point_v<T>, double,
                                   std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>>;

namespace internal {
template <typename T>
constexpr SumType<T> WrappingAdd(SumType<T> a, SumType<T> b) {
  if constexpr (std::is_floating_point_v<T>) {
    return a + b;
  } else {
    // Unsigned arithmetic wraps; the conversion back to int64_t is modular in C++20.
    return static_cast<SumType<T>>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
  }
}
template <typename T>
constexpr bool IsNan(const T& v) {
  if constexpr (std::is_floating_point_v<T>) {
    return v != v;
  } else {
    return false;
  }
}
}  // namespace internal

// Counts values of any type. Result: uint64_t (0 for no values).
struct CountAggregator {
  using Input = AnyInput;
  using State = uint64_t;
  using Result = uint64_t;

  State Init() const { return 0; }
  void Add(State& state, const Input&) const { ++state; }
  void Merge(State& into, const State& from) const { into += from; }
  Result Finish(const State& state) const { return state; }
  void Encode(const State& state, std::string* out) const {
    internal::PutHeader(out, static_cast<uint8_t>(AggregatorKind::kCount), 0);
    internal::PutLittleEndian(out, state);
  }
  bool Decode(std::string_view bytes, State* state) const {
    internal::ByteReader in(bytes);
    uint64_t v;
    if (!internal::ReadHeader(&in, static_cast<uint8_t>(AggregatorKind::kCount), 0) ||
        !in.LittleEndian(&v) || !in.AtEnd()) {
      return false;
    }
    *state = v;
    return true;
  }
};

// Sums arithmetic values in SumType<T>. Result: SumType<T> (0 for no values). Floating point:
// Merge adds partial sums, so a merged result may differ from a sequential one in the last bits
// (as any re-association of floating-point addition does); NaN and infinities propagate.
template <typename T>
requires std::is_arithmetic_v<T>
struct SumAggregator {
  using Input = T;
  using State = SumType<T>;
  using Result = SumType<T>;

  State Init() const { return State{}; }
  void Add(State& state, const T& v) const {
    state = internal::WrappingAdd<T>(state, static_cast<State>(v));
  }
  void Merge(State& into, const State& from) const { into = internal::WrappingAdd<T>(into, from); }
  Result Finish(const State& state) const { return state; }
  void Encode(const State& state, std::string* out) const {
    internal::PutHeader(out, static_cast<uint8_t>(AggregatorKind::kSum),
                        internal::ArithmeticTypeCode<T>());
    internal::PutArithmetic(out, state);
  }
  bool Decode(std::string_view bytes, State* state) const {
    internal::ByteReader in(bytes);
    State v;
    if (!internal::ReadHeader(&in, static_cast<uint8_t>(AggregatorKind::kSum),
                              internal::ArithmeticTypeCode<T>()) ||
        !in.Arithmetic(&v) || !in.AtEnd()) {
      return false;
    }
    *state = v;
    return true;
  }
};

namespace internal {
// Min and Max share everything but the comparison. NaN inputs are ignored (they would make the
// result depend on the order of the input); -0.0 counts as less than +0.0, so that the result is
// the same in every order.
template <typename T, AggregatorKind kKind>
struct ExtremumAggregator {
  using Input = T;
  using State = std::optional<T>;
  using Result = std::optional<T>;

  static constexpr bool Better(const T& a, const T& b) {
    if constexpr (std::is_floating_point_v<T>) {
      if (a == b) {
        // Only zeros of different sign compare equal with different bits.
        return kKind == AggregatorKind::kMin ? (std::signbit(a) && !std::signbit(b))
                                             : (!std::signbit(a) && std::signbit(b));
      }
    }
    return kKind == AggregatorKind::kMin ? a < b : b < a;
  }

  State Init() const { return std::nullopt; }
  void Add(State& state, const T& v) const {
    if (IsNan(v)) return;
    if (!state.has_value() || Better(v, *state)) state = v;
  }
  void Merge(State& into, const State& from) const {
    if (from.has_value()) Add(into, *from);
  }
  Result Finish(const State& state) const { return state; }
  void Encode(const State& state, std::string* out) const {
    PutHeader(out, static_cast<uint8_t>(kKind), ArithmeticTypeCode<T>());
    PutU8(out, state.has_value() ? 1 : 0);
    if (state.has_value()) PutArithmetic(out, *state);
  }
  bool Decode(std::string_view bytes, State* state) const {
    ByteReader in(bytes);
    uint8_t has;
    if (!ReadHeader(&in, static_cast<uint8_t>(kKind), ArithmeticTypeCode<T>()) || !in.U8(&has) ||
        has > 1) {
      return false;
    }
    State decoded;
    if (has == 1) {
      T v;
      if (!in.Arithmetic(&v) || IsNan(v)) return false;
      decoded = v;
    }
    if (!in.AtEnd()) return false;
    *state = decoded;
    return true;
  }
};
}  // namespace internal

// The smallest value. Result: std::optional<T>, nullopt for no values. NaN inputs are ignored.
template <typename T>
requires std::is_arithmetic_v<T>
using MinAggregator = internal::ExtremumAggregator<T, AggregatorKind::kMin>;

// The largest value. Result: std::optional<T>, nullopt for no values. NaN inputs are ignored.
template <typename T>
requires std::is_arithmetic_v<T>
using MaxAggregator = internal::ExtremumAggregator<T, AggregatorKind::kMax>;

// The arithmetic mean, from a sum (in SumType<T>, see Sum) and a count.
// Result: std::optional<double> — sum / count, nullopt for no values (never NaN from emptiness).
template <typename T>
requires std::is_arithmetic_v<T>
struct MeanAggregator {
  using Input = T;
  struct State {
    SumType<T> sum{};
    uint64_t count = 0;
    friend bool operator==(const State&, const State&) = default;
  };
  using Result = std::optional<double>;

  State Init() const { return State{}; }
  void Add(State& state, const T& v) const {
    state.sum = internal::WrappingAdd<T>(state.sum, static_cast<SumType<T>>(v));
    ++state.count;
  }
  void Merge(State& into, const State& from) const {
    into.sum = internal::WrappingAdd<T>(into.sum, from.sum);
    into.count += from.count;
  }
  Result Finish(const State& state) const {
    if (state.count == 0) return std::nullopt;
    return static_cast<double>(state.sum) / static_cast<double>(state.count);
  }
  void Encode(const State& state, std::string* out) const {
    internal::PutHeader(out, static_cast<uint8_t>(AggregatorKind::kMean),
                        internal::ArithmeticTypeCode<T>());
    internal::PutArithmetic(out, state.sum);
    internal::PutLittleEndian(out, state.count);
  }
  bool Decode(std::string_view bytes, State* state) const {
    internal::ByteReader in(bytes);
    State v;
    if (!internal::ReadHeader(&in, static_cast<uint8_t>(AggregatorKind::kMean),
                              internal::ArithmeticTypeCode<T>()) ||
        !in.Arithmetic(&v.sum) || !in.LittleEndian(&v.count) || !in.AtEnd()) {
      return false;
    }
    if (v.count == 0 && v.sum != SumType<T>{}) return false;  // an empty mean has no sum
    *state = v;
    return true;
  }
};

// Factories (the names pipelines use: `.Aggregate(rill::Count())`).
inline CountAggregator Count() { return {}; }
template <typename T>
SumAggregator<T> Sum() {
  return {};
}
template <typename T>
MinAggregator<T> Min() {
  return {};
}
template <typename T>
MaxAggregator<T> Max() {
  return {};
}
template <typename T>
MeanAggregator<T> Mean() {
  return {};
}

static_assert(Aggregator<CountAggregator>);
static_assert(Aggregator<SumAggregator<int>>);
static_assert(Aggregator<MinAggregator<double>>);
static_assert(Aggregator<MeanAggregator<float>>);

// ---------------------------------------------------------------------------------------------
// Several aggregates of the same values in one window: one State (a tuple of the parts' States)
// and one Result (a tuple of their Results), computed in one pass.
//
//   .Aggregate(rill::Aggregates(rill::Count(), rill::Sum<int64_t>(), rill::Min<int64_t>(),
//                               rill::Max<int64_t>()),
//              [](const Order& o) { return o.cents; })
//   ...
//   auto [count, sum, min, max] = result.value;   // uint64_t, int64_t, optional, optional
//
// Every part gets the same value: Input is the first part's Input that is not AnyInput (Count
// takes anything), and every part's Input must be constructible from it. Merge, Finish and the
// snapshot go part by part; the snapshot is [version][kind kMulti][number of parts], then each
// part's own encoding as a u32-length blob (so a multi-aggregate pipeline's snapshot holds
// exactly what its parts' single-aggregate snapshots would). Allocation: as its parts.

namespace internal {
template <typename... Inputs>
struct FirstTypedInput {
  using type = AnyInput;
};
template <typename First, typename... Rest>
struct FirstTypedInput<First, Rest...> {
  using type = std::conditional_t<std::is_same_v<First, AnyInput>,
                                  typename FirstTypedInput<Rest...>::type, First>;
};
}  // namespace internal

template <typename... Parts>
struct MultiAggregator {
  static_assert(sizeof...(Parts) >= 1 && sizeof...(Parts) <= 255,
                "rill::Aggregates takes 1 to 255 aggregators");
  static_assert((Aggregator<Parts> && ...),
                "rill::Aggregates: every argument must be an aggregator (rill::Count(), "
                "rill::Sum<T>(), rill::Min<T>(), ... see rill/process/aggregators.h)");

  using Input = typename internal::FirstTypedInput<typename Parts::Input...>::type;
  using State = std::tuple<typename Parts::State...>;
  using Result = std::tuple<typename Parts::Result...>;

  static_assert(
      (std::is_convertible_v<const Input&, const typename Parts::Input&> && ...),
      "rill::Aggregates: every aggregator gets the same value, so their Input types "
      "must agree (e.g. Sum<int64_t>() with Max<int64_t>(), not with Max<std::string>())");

  std::tuple<Parts...> parts;

  State Init() const {
    return std::apply([](const Parts&... p) { return State(p.Init()...); }, parts);
  }
  void Add(State& state, const Input& v) const {
    Each([&](const auto& part, auto& s) { part.Add(s, v); }, state);
  }
  void Merge(State& into, const State& from) const {
    [&]<size_t... I>(std::index_sequence<I...>) {
      (std::get<I>(parts).Merge(std::get<I>(into), std::get<I>(from)), ...);
    }
    (std::index_sequence_for<Parts...>());
  }
  Result Finish(const State& state) const {
    return [&]<size_t... I>(std::index_sequence<I...>) {
      return Result(std::get<I>(parts).Finish(std::get<I>(state))...);
    }
    (std::index_sequence_for<Parts...>());
  }
  void Encode(const State& state, std::string* out) const {
    internal::PutHeader(out, static_cast<uint8_t>(AggregatorKind::kMulti),
                        static_cast<uint8_t>(sizeof...(Parts)));
    std::string part;
    [&]<size_t... I>(std::index_sequence<I...>) {
      ((part.clear(), std::get<I>(parts).Encode(std::get<I>(state), &part),
        internal::PutLittleEndian(out, static_cast<uint32_t>(part.size())), out->append(part)),
       ...);
    }
    (std::index_sequence_for<Parts...>());
  }
  bool Decode(std::string_view bytes, State* state) const {
    internal::ByteReader in(bytes);
    if (!internal::ReadHeader(&in, static_cast<uint8_t>(AggregatorKind::kMulti),
                              static_cast<uint8_t>(sizeof...(Parts)))) {
      return false;
    }
    State decoded = Init();
    const bool ok = [&]<size_t... I>(std::index_sequence<I...>) {
      auto one = [&](const auto& part, auto* s) {
        uint32_t n;
        std::string_view blob;
        return in.LittleEndian(&n) && in.Bytes(n, &blob) && part.Decode(blob, s);
      };
      return (one(std::get<I>(parts), &std::get<I>(decoded)) && ...);
    }
    (std::index_sequence_for<Parts...>());
    if (!ok || !in.AtEnd()) return false;
    *state = std::move(decoded);
    return true;
  }
  // The parts' sizes (their StateBytes where they have one), for state_bytes().
  size_t StateBytes(const State& state) const {
    size_t bytes = sizeof(State);
    [&]<size_t... I>(std::index_sequence<I...>) {
      ((bytes += ExtraBytes(std::get<I>(parts), std::get<I>(state))), ...);
    }
    (std::index_sequence_for<Parts...>());
    return bytes;
  }

 private:
  template <typename F>
  void Each(F&& f, State& state) const {
    [&]<size_t... I>(std::index_sequence<I...>) {
      (f(std::get<I>(parts), std::get<I>(state)), ...);
    }
    (std::index_sequence_for<Parts...>());
  }
  template <typename P>
  static size_t ExtraBytes(const P& part, const typename P::State& s) {
    if constexpr (requires {
                    { part.StateBytes(s) } -> std::convertible_to<size_t>;
                  }) {
      const size_t size = part.StateBytes(s);
      return size > sizeof(s) ? size - sizeof(s) : 0;
    } else {
      return 0;
    }
  }
};

// Several aggregators over the same values, one result tuple (see MultiAggregator).
template <typename... Parts>
MultiAggregator<Parts...> Aggregates(Parts... parts) {
  return MultiAggregator<Parts...>{std::tuple<Parts...>(std::move(parts)...)};
}

static_assert(Aggregator<MultiAggregator<CountAggregator, SumAggregator<int>>>);

}  // namespace rill

#endif  // RILL_PROCESS_AGGREGATORS_H_
