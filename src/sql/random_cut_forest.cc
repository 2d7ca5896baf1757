#include "sql/random_cut_forest.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "rill/base/error.h"

namespace rill::sql {
namespace {

constexpr int32_t kNull = -1;
// Inputs are clamped to this magnitude so that a sum of ranges over 30,000 dimensions stays finite.
constexpr double kMaxMagnitude = 1e300;
// The sampler's priorities are kept relative to a base sequence number, moved when the decay
// since the base reaches this much, so that they keep their precision over endless streams.
constexpr double kRebaseDecay = 1 << 20;
// The largest number of doubles Create preallocates for bounding boxes (trees x sample x shingled
// dimensions x 2): 1 GiB.
constexpr double kMaxBoxDoubles = double{1 << 27};
constexpr char kMagic[4] = {'R', 'C', 'F', '1'};

// log2(mass + 1) for every mass a tree can have (at most 1000), computed once: the scores use it
// for every tree of every point.
double Log2MassPlusOne(int mass) {
  static const std::array<double, 1002> kTable = [] {
    std::array<double, 1002> table;
    for (size_t i = 0; i < table.size(); ++i) table[i] = std::log2(i + 1.0);
    return table;
  }();
  return kTable[mass];
}

// randomcutforest-java's CommonUtils defaults.
double ScoreSeen(int depth, int mass) { return 1.0 / (depth + Log2MassPlusOne(mass)); }
double ScoreUnseen(int depth) { return 1.0 / (depth + 1.0); }
double Damp(int leaf_mass, int tree_mass) { return 1.0 - leaf_mass / (2.0 * tree_mass); }
double Normalize(double value, int tree_mass) { return value * Log2MassPlusOne(tree_mass); }

uint64_t NextRandom(uint64_t& state) {  // splitmix64
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Uniform in [0, 1).
double NextUniform(uint64_t& state) {
  return static_cast<double>(NextRandom(state) >> 11) * 0x1.0p-53;
}

bool SamePoint(const double* a, const double* b, size_t dims) {
  for (size_t i = 0; i < dims; ++i) {
    if (a[i] != b[i]) return false;
  }
  return true;
}

class Reader;

// The shingled points, stored once for all trees and reference-counted (each reservoir entry and
// each leaf holds a reference).
class PointStore {
 public:
  explicit PointStore(size_t dims) : dims_(dims) {}

  const double* Point(int32_t slot) const { return values_.data() + slot * dims_; }
  size_t size() const { return refs_.size(); }
  int32_t refs(int32_t slot) const { return refs_[slot]; }

  // Returns a slot holding a copy of `point`, with no references yet.
  int32_t Add(const double* point) {
    if (free_.empty()) Grow(refs_.size() * 2);
    const int32_t slot = free_.back();
    free_.pop_back();
    std::copy(point, point + dims_, values_.data() + slot * dims_);
    return slot;
  }
  void Ref(int32_t slot) { ++refs_[slot]; }
  void Unref(int32_t slot) {
    if (--refs_[slot] == 0) free_.push_back(slot);
  }
  // Sets the capacity to at least `slots`, new slots free.
  void Grow(size_t slots) {
    const size_t old = refs_.size();
    slots = std::max<size_t>(slots, 16);
    if (slots <= old) return;
    values_.resize(slots * dims_);
    refs_.resize(slots, 0);
    free_.reserve(slots);
    // Descending, so that the lowest slot is reused first.
    for (size_t slot = slots; slot-- > old;) free_.push_back(static_cast<int32_t>(slot));
  }
  // After Decode filled slots [0, live) and set their references: frees the unreferenced ones.
  void CollectFree() {
    free_.clear();
    for (size_t slot = refs_.size(); slot-- > 0;) {
      if (refs_[slot] == 0) free_.push_back(static_cast<int32_t>(slot));
    }
  }
  double* MutablePoint(int32_t slot) { return values_.data() + slot * dims_; }

 private:
  size_t dims_;
  std::vector<double> values_;
  std::vector<int32_t> refs_;
  std::vector<int32_t> free_;
};

// Scratch space for one score traversal, allocated once per forest.
struct Scratch {
  explicit Scratch(size_t dims)
      : high(dims),
        low(dims),
        difference(2 * dims),
        coord_inside(dims),
        shadow_min(dims),
        shadow_max(dims) {}
  std::vector<double> high;
  std::vector<double> low;
  std::vector<double> difference;  // [2i]: the box grows up (high), [2i+1]: down (low)
  std::vector<char> coord_inside;
  std::vector<double> shadow_min;
  std::vector<double> shadow_max;
};

// One random cut tree and its reservoir. Internal nodes are ids [0, capacity), leaves
// [capacity, 2 capacity): at most `capacity` distinct points give at most capacity - 1 internal
// nodes.
class Tree {
 public:
  Tree(int capacity, size_t dims, uint64_t seed)
      : capacity_(capacity),
        dims_(dims),
        rng_(seed),
        nodes_(2 * capacity),
        box_(2 * capacity * dims, 0),
        heap_weight_(capacity, 0),
        heap_slot_(capacity, kNull) {
    free_internal_.reserve(capacity);
    free_leaf_.reserve(capacity);
    for (int i = capacity; i-- > 0;) {
      free_internal_.push_back(i);
      free_leaf_.push_back(capacity + i);
    }
  }

  // The sampler: offers a point whose age term is `decay` = (sequence number - base) * lambda.
  // Returns true if the reservoir takes it, with *weight its priority (to PushSample after the
  // insertion); *evicted is then the slot the reservoir gave up (already off the heap), or kNull.
  bool Accept(double decay, double* weight, int32_t* evicted) {
    double u = 0;
    while (u == 0) u = NextUniform(rng_);
    *weight = -decay + std::log(-std::log(u));
    *evicted = kNull;
    if (heap_size_ < capacity_) return true;
    if (*weight >= heap_weight_[0]) return false;
    *evicted = heap_slot_[0];
    --heap_size_;
    heap_weight_[0] = heap_weight_[heap_size_];
    heap_slot_[0] = heap_slot_[heap_size_];
    SiftDown(0);
    return true;
  }

  void PushSample(double weight, int32_t slot) {
    int current = heap_size_++;
    heap_weight_[current] = weight;
    heap_slot_[current] = slot;
    while (current > 0) {
      const int parent = (current - 1) / 2;
      if (heap_weight_[parent] >= heap_weight_[current]) break;
      std::swap(heap_weight_[parent], heap_weight_[current]);
      std::swap(heap_slot_[parent], heap_slot_[current]);
      current = parent;
    }
  }

  void SiftDown(int current) {
    while (2 * current + 1 < heap_size_) {
      int largest = 2 * current + 1;
      if (largest + 1 < heap_size_ && heap_weight_[largest + 1] > heap_weight_[largest]) ++largest;
      if (heap_weight_[largest] <= heap_weight_[current]) break;
      std::swap(heap_weight_[largest], heap_weight_[current]);
      std::swap(heap_slot_[largest], heap_slot_[current]);
      current = largest;
    }
  }

  void Rebase(double shift) {
    for (int i = 0; i < heap_size_; ++i) heap_weight_[i] += shift;
  }

  // Inserts `point` (stored at `slot`), taking a store reference if it makes a new leaf.
  void Insert(const double* point, int32_t slot, PointStore& store) {
    if (root_ == kNull) {
      root_ = NewLeaf(slot, store);
      return;
    }
    int32_t node = root_;
    while (true) {
      const double* min;
      const double* max;
      if (IsLeaf(node)) {
        min = max = store.Point(nodes_[node].slot);
        if (SamePoint(point, min, dims_)) {
          ++nodes_[node].mass;
          return;
        }
      } else {
        min = MinOf(node);
        max = MaxOf(node);
      }
      // A cut of the box grown by the point, with probability proportional to each range.
      double range = 0;
      for (size_t i = 0; i < dims_; ++i) {
        range += std::max(max[i], point[i]) - std::min(min[i], point[i]);
      }
      double offset = NextUniform(rng_) * range;
      size_t dim = dims_;
      double cut = 0;
      size_t last_positive = dims_;
      for (size_t i = 0; i < dims_; ++i) {
        const double low = std::min(min[i], point[i]);
        const double high = std::max(max[i], point[i]);
        const double gap = high - low;
        if (gap <= 0) continue;
        last_positive = i;
        if (offset < gap) {
          dim = i;
          cut = low + offset;
          // Cuts lie in [low, high) so that both sides are non-empty.
          if (cut >= high) cut = std::nextafter(high, low);
          break;
        }
        offset -= gap;
      }
      if (dim == dims_) {  // rounding ran past the last range
        dim = last_positive;
        cut = std::nextafter(std::max(max[dim], point[dim]), std::min(min[dim], point[dim]));
      }
      const bool separates = cut < min[dim] || cut >= max[dim];
      if (separates || IsLeaf(node)) {
        const int32_t joint = free_internal_.back();
        free_internal_.pop_back();
        const int32_t leaf = NewLeaf(slot, store);
        nodes_[joint].dim = static_cast<int32_t>(dim);
        nodes_[joint].cut = cut;
        double* joint_min = MinOf(joint);
        double* joint_max = MaxOf(joint);
        for (size_t i = 0; i < dims_; ++i) {
          joint_min[i] = std::min(min[i], point[i]);
          joint_max[i] = std::max(max[i], point[i]);
        }
        nodes_[joint].mass = nodes_[node].mass + 1;
        const int32_t parent = nodes_[node].parent;
        nodes_[joint].parent = parent;
        ReplaceChild(parent, node, joint);
        nodes_[node].parent = joint;
        nodes_[leaf].parent = joint;
        if (point[dim] <= cut) {
          nodes_[joint].left = leaf;
          nodes_[joint].right = node;
        } else {
          nodes_[joint].left = node;
          nodes_[joint].right = leaf;
        }
        return;
      }
      double* node_min = MinOf(node);
      double* node_max = MaxOf(node);
      for (size_t i = 0; i < dims_; ++i) {
        node_min[i] = std::min(node_min[i], point[i]);
        node_max[i] = std::max(node_max[i], point[i]);
      }
      ++nodes_[node].mass;
      node = point[nodes_[node].dim] <= nodes_[node].cut ? nodes_[node].left : nodes_[node].right;
    }
  }

  // Deletes one copy of `point` (which the tree holds), releasing the leaf's store reference when
  // the leaf goes.
  void Delete(const double* point, PointStore& store) {
    const int32_t leaf = FindLeaf(point);
    if (leaf == kNull || !SamePoint(point, store.Point(nodes_[leaf].slot), dims_)) {
      return;  // Not reachable: Decode verifies that every sampled point has its leaf.
    }
    for (int32_t node = leaf; node != kNull; node = nodes_[node].parent) --nodes_[node].mass;
    if (nodes_[leaf].mass > 0) return;
    const int32_t parent = nodes_[leaf].parent;
    store.Unref(nodes_[leaf].slot);
    free_leaf_.push_back(leaf);
    if (parent == kNull) {
      root_ = kNull;
      return;
    }
    const int32_t sibling =
        nodes_[parent].left == leaf ? nodes_[parent].right : nodes_[parent].left;
    const int32_t grandparent = nodes_[parent].parent;
    nodes_[sibling].parent = grandparent;
    ReplaceChild(grandparent, parent, sibling);
    free_internal_.push_back(parent);
    // The boxes above may shrink; a box that does not change leaves those above it as they are.
    for (int32_t node = grandparent; node != kNull; node = nodes_[node].parent) {
      if (!RecomputeBox(node, store)) break;
    }
  }

  int32_t root() const { return root_; }
  bool IsLeaf(int32_t node) const { return node >= capacity_; }
  // The child of internal `node` on `point`'s side of the cut; a leaf itself.
  int32_t Step(int32_t node, const double* point) const {
    const Node& n = nodes_[node];
    return point[n.dim] <= n.cut ? n.left : n.right;
  }

  // Starts loading what ScoreFromLeaf reads first: the leaf's point and its parent's box.
  void Prefetch(int32_t leaf, const PointStore& store) const {
    __builtin_prefetch(store.Point(nodes_[leaf].slot));
    const int32_t parent = nodes_[leaf].parent;
    if (parent != kNull) __builtin_prefetch(MinOf(parent));
  }

  // AnomalyScoreVisitor's score of `point`, normalised, given the leaf at `depth` where its descent
  // from the root (Step) ends.
  double ScoreFromLeaf(const double* point, const PointStore& store, int32_t node,
                       int depth) const {
    const int tree_mass = nodes_[root_].mass;
    if (SamePoint(point, store.Point(nodes_[node].slot), dims_)) {
      return Normalize(Damp(nodes_[node].mass, tree_mass) * ScoreSeen(depth, nodes_[node].mass),
                       tree_mass);
    }
    double score = ScoreUnseen(depth);
    for (node = nodes_[node].parent, --depth; node != kNull; node = nodes_[node].parent, --depth) {
      const double* min = MinOf(node);
      const double* max = MaxOf(node);
      double new_range = 0;
      double growth = 0;
      for (size_t i = 0; i < dims_; ++i) {
        const double low = std::min(min[i], point[i]);
        const double high = std::max(max[i], point[i]);
        new_range += high - low;
        growth += (high - low) - (max[i] - min[i]);
      }
      const double probability = new_range > 0 ? growth / new_range : 0;
      if (probability <= 0) break;  // inside this box and so inside every box above
      score = probability * ScoreUnseen(depth) + (1 - probability) * score;
    }
    return Normalize(score, tree_mass);
  }

  // AnomalyAttributionVisitor: adds this tree's normalised DiVector for `point` to *high, *low
  // (shingled dimensions). Returns the scalar score it sums to.
  double Attribute(const double* point, const PointStore& store, Scratch& scratch, double* high,
                   double* low) const {
    if (root_ == kNull) return 0;
    int depth = 0;
    int32_t node = root_;
    while (!IsLeaf(node)) {
      node = point[nodes_[node].dim] <= nodes_[node].cut ? nodes_[node].left : nodes_[node].right;
      ++depth;
    }
    const int tree_mass = nodes_[root_].mass;
    double* h = scratch.high.data();
    double* l = scratch.low.data();
    std::fill(scratch.coord_inside.begin(), scratch.coord_inside.end(), 0);
    const double* leaf_point = store.Point(nodes_[node].slot);
    double new_range = 0;
    double growth = 0;
    UpdateRanges(point, leaf_point, leaf_point, scratch, &new_range, &growth);
    const bool duplicate = new_range <= 0;
    double saved_score;
    if (duplicate) {
      saved_score = Damp(nodes_[node].mass, tree_mass) * ScoreSeen(depth, nodes_[node].mass);
      const double share = saved_score / (2.0 * dims_);
      std::fill(h, h + dims_, share);
      std::fill(l, l + dims_, share);
      // The point equals the leaf in every dimension; the shadow boxes above start afresh.
      std::fill(scratch.coord_inside.begin(), scratch.coord_inside.end(), 0);
    } else {
      saved_score = ScoreUnseen(depth);
      for (size_t i = 0; i < dims_; ++i) {
        h[i] = saved_score * scratch.difference[2 * i] / new_range;
        l[i] = saved_score * scratch.difference[2 * i + 1] / new_range;
      }
    }
    bool have_shadow = false;
    int32_t child = node;
    for (node = nodes_[node].parent, --depth; node != kNull;
         child = node, node = nodes_[node].parent, --depth) {
      const double* small_min;
      const double* small_max;
      if (duplicate) {
        // The counterfactual box without the duplicate leaf: the union of the siblings so far.
        const int32_t sibling = nodes_[node].left == child ? nodes_[node].right : nodes_[node].left;
        const double* sibling_min = BoxMin(sibling, store);
        const double* sibling_max = BoxMax(sibling, store);
        for (size_t i = 0; i < dims_; ++i) {
          scratch.shadow_min[i] =
              have_shadow ? std::min(scratch.shadow_min[i], sibling_min[i]) : sibling_min[i];
          scratch.shadow_max[i] =
              have_shadow ? std::max(scratch.shadow_max[i], sibling_max[i]) : sibling_max[i];
        }
        have_shadow = true;
        small_min = scratch.shadow_min.data();
        small_max = scratch.shadow_max.data();
      } else {
        small_min = MinOf(node);
        small_max = MaxOf(node);
      }
      UpdateRanges(point, small_min, small_max, scratch, &new_range, &growth);
      const double probability = new_range > 0 ? growth / new_range : 0;
      const bool inside = probability <= 0;
      if (!inside) {
        const double unseen = ScoreUnseen(depth);
        for (size_t i = 0; i < dims_; ++i) {
          h[i] = scratch.difference[2 * i] / new_range * unseen + (1 - probability) * h[i];
          l[i] = scratch.difference[2 * i + 1] / new_range * unseen + (1 - probability) * l[i];
        }
      }
      if (duplicate && (inside || depth == 0)) {
        // Rescale to the duplicate's score, as the scalar score stops at the leaf.
        double sum = 0;
        for (size_t i = 0; i < dims_; ++i) sum += h[i] + l[i];
        if (sum > 0) {
          const double scale = saved_score / sum;
          for (size_t i = 0; i < dims_; ++i) {
            h[i] *= scale;
            l[i] *= scale;
          }
        }
      }
      if (inside) break;
      if (!duplicate)
        saved_score = probability * ScoreUnseen(depth) + (1 - probability) * saved_score;
    }
    const double factor = Normalize(1.0, tree_mass);
    for (size_t i = 0; i < dims_; ++i) {
      high[i] += h[i] * factor;
      low[i] += l[i] * factor;
    }
    return saved_score * factor;
  }

  // --- Encode / Decode ---

  void Encode(const std::vector<int32_t>& slot_map, std::string* out) const;
  absl::Status Decode(Reader& reader, PointStore& store, size_t live_slots);

 private:
  double* MinOf(int32_t node) { return &box_[2 * dims_ * node]; }
  double* MaxOf(int32_t node) { return &box_[2 * dims_ * node + dims_]; }
  const double* MinOf(int32_t node) const { return &box_[2 * dims_ * node]; }
  const double* MaxOf(int32_t node) const { return &box_[2 * dims_ * node + dims_]; }

  const double* BoxMin(int32_t node, const PointStore& store) const {
    return IsLeaf(node) ? store.Point(nodes_[node].slot) : MinOf(node);
  }
  const double* BoxMax(int32_t node, const PointStore& store) const {
    return IsLeaf(node) ? store.Point(nodes_[node].slot) : MaxOf(node);
  }

  int32_t NewLeaf(int32_t slot, PointStore& store) {
    const int32_t leaf = free_leaf_.back();
    free_leaf_.pop_back();
    nodes_[leaf].slot = slot;
    nodes_[leaf].mass = 1;
    nodes_[leaf].left = nodes_[leaf].right = leaf;  // for Step
    nodes_[leaf].dim = 0;
    nodes_[leaf].parent = kNull;
    store.Ref(slot);
    return leaf;
  }

  void ReplaceChild(int32_t parent, int32_t old_child, int32_t new_child) {
    if (parent == kNull) {
      root_ = new_child;
    } else if (nodes_[parent].left == old_child) {
      nodes_[parent].left = new_child;
    } else {
      nodes_[parent].right = new_child;
    }
  }

  int32_t FindLeaf(const double* point) const {
    if (root_ == kNull) return kNull;
    int32_t node = root_;
    while (!IsLeaf(node)) {
      node = point[nodes_[node].dim] <= nodes_[node].cut ? nodes_[node].left : nodes_[node].right;
    }
    return node;
  }

  // Sets the box of internal `node` to the union of its children's; returns whether it changed.
  bool RecomputeBox(int32_t node, const PointStore& store) {
    const double* left_min = BoxMin(nodes_[node].left, store);
    const double* left_max = BoxMax(nodes_[node].left, store);
    const double* right_min = BoxMin(nodes_[node].right, store);
    const double* right_max = BoxMax(nodes_[node].right, store);
    double* min = MinOf(node);
    double* max = MaxOf(node);
    bool changed = false;
    for (size_t i = 0; i < dims_; ++i) {
      const double new_min = std::min(left_min[i], right_min[i]);
      const double new_max = std::max(left_max[i], right_max[i]);
      changed |= new_min != min[i] || new_max != max[i];
      min[i] = new_min;
      max[i] = new_max;
    }
    return changed;
  }

  // AbstractAttributionVisitor.updateRangesForScoring: the box [small_min, small_max] grown by
  // `point`; per dimension how far it grows up and down (0 once the point is inside in that
  // dimension, which then holds for every larger box).
  void UpdateRanges(const double* point, const double* small_min, const double* small_max,
                    Scratch& scratch, double* new_range, double* growth) const {
    *new_range = 0;
    *growth = 0;
    for (size_t i = 0; i < dims_; ++i) {
      const double large_min = std::min(small_min[i], point[i]);
      const double large_max = std::max(small_max[i], point[i]);
      *new_range += large_max - large_min;
      scratch.difference[2 * i] = 0;
      scratch.difference[2 * i + 1] = 0;
      if (scratch.coord_inside[i]) continue;
      const double up = std::max(large_max - small_max[i], 0.0);
      const double down = std::max(small_min[i] - large_min, 0.0);
      if (up + down > 0) {
        *growth += up + down;
        scratch.difference[2 * i] = up;
        scratch.difference[2 * i + 1] = down;
      } else {
        scratch.coord_inside[i] = 1;
      }
    }
  }

  int32_t ReadSubtree(Reader& reader, PointStore& store, size_t live_slots, int32_t parent,
                      absl::Status* status);

  int capacity_;
  size_t dims_;
  uint64_t rng_;
  int32_t root_ = kNull;
  // 32 bytes, so that a descent reads one cache line per level.
  struct Node {
    double cut = 0;         // internal: points with value <= cut go left
    int32_t left = kNull;   // internal; a leaf itself
    int32_t right = kNull;  // internal; a leaf itself
    int32_t parent = kNull;
    int32_t mass = 0;      // the number of sampled points below (a leaf's: its copies)
    int32_t dim = 0;       // internal: the cut's dimension
    int32_t slot = kNull;  // leaf: the point in the store
  };
  std::vector<Node> nodes_;
  // Internal node n's bounding box: dims minima, then dims maxima, at 2 * dims * n.
  std::vector<double> box_;
  std::vector<int32_t> free_internal_;
  std::vector<int32_t> free_leaf_;
  // The reservoir: a max-heap of priorities, so that the entry to evict is at the top.
  std::vector<double> heap_weight_;
  std::vector<int32_t> heap_slot_;
  int heap_size_ = 0;
};

// --- Encoding: little-endian fixed-width fields. ---

void PutU64(uint64_t value, std::string* out) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(value >> (8 * i)));
}
void PutU32(uint32_t value, std::string* out) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>(value >> (8 * i)));
}
void PutDouble(double value, std::string* out) { PutU64(std::bit_cast<uint64_t>(value), out); }

class Reader {
 public:
  explicit Reader(std::string_view bytes) : bytes_(bytes) {}
  bool U8(uint8_t* value) {
    if (bytes_.size() < 1) return false;
    *value = static_cast<uint8_t>(bytes_[0]);
    bytes_.remove_prefix(1);
    return true;
  }
  bool U32(uint32_t* value) {
    if (bytes_.size() < 4) return false;
    *value = 0;
    for (int i = 0; i < 4; ++i) *value |= uint32_t{static_cast<uint8_t>(bytes_[i])} << (8 * i);
    bytes_.remove_prefix(4);
    return true;
  }
  bool U64(uint64_t* value) {
    if (bytes_.size() < 8) return false;
    *value = 0;
    for (int i = 0; i < 8; ++i) *value |= uint64_t{static_cast<uint8_t>(bytes_[i])} << (8 * i);
    bytes_.remove_prefix(8);
    return true;
  }
  // A finite double.
  bool Double(double* value) {
    uint64_t bits;
    if (!U64(&bits)) return false;
    *value = std::bit_cast<double>(bits);
    return std::isfinite(*value);
  }
  size_t remaining() const { return bytes_.size(); }

 private:
  std::string_view bytes_;
};

absl::Status Corrupt(std::string_view what) {
  return MakeError(
      ErrorCode::kInvalidArgument,
      absl::StrCat("RandomCutForest::Decode: malformed model (", std::string(what), ")"));
}

void Tree::Encode(const std::vector<int32_t>& slot_map, std::string* out) const {
  PutU64(rng_, out);
  PutU32(static_cast<uint32_t>(heap_size_), out);
  for (int i = 0; i < heap_size_; ++i) {
    PutDouble(heap_weight_[i], out);
    PutU32(static_cast<uint32_t>(slot_map[heap_slot_[i]]), out);
  }
  // 0 for an empty tree, else 1 and the nodes in preorder: 1 = leaf (slot, mass), 2 = internal
  // (dimension, cut, left, right).
  if (root_ == kNull) {
    out->push_back(0);
    return;
  }
  out->push_back(1);
  std::vector<int32_t> stack = {root_};
  while (!stack.empty()) {
    const int32_t node = stack.back();
    stack.pop_back();
    if (IsLeaf(node)) {
      out->push_back(1);
      PutU32(static_cast<uint32_t>(slot_map[nodes_[node].slot]), out);
      PutU32(static_cast<uint32_t>(nodes_[node].mass), out);
    } else {
      out->push_back(2);
      PutU32(static_cast<uint32_t>(nodes_[node].dim), out);
      PutDouble(nodes_[node].cut, out);
      stack.push_back(nodes_[node].right);
      stack.push_back(nodes_[node].left);
    }
  }
}

// Reads a subtree under `parent`; derives masses and boxes and checks that the cut separates the
// children's boxes. Recursion depth is bounded by the internal node pool (at most 999).
int32_t Tree::ReadSubtree(Reader& reader, PointStore& store, size_t live_slots, int32_t parent,
                          absl::Status* status) {
  uint8_t tag;
  if (!reader.U8(&tag) || (tag != 1 && tag != 2)) {
    *status = Corrupt("tree node");
    return kNull;
  }
  if (tag == 1) {
    uint32_t slot;
    uint32_t mass;
    if (!reader.U32(&slot) || !reader.U32(&mass) || slot >= live_slots || mass == 0 ||
        mass > static_cast<uint32_t>(capacity_) || free_leaf_.empty()) {
      *status = Corrupt("leaf");
      return kNull;
    }
    const int32_t leaf = NewLeaf(static_cast<int32_t>(slot), store);
    nodes_[leaf].mass = static_cast<int32_t>(mass);
    nodes_[leaf].parent = parent;
    return leaf;
  }
  uint32_t dim;
  double cut;
  if (!reader.U32(&dim) || !reader.Double(&cut) || dim >= dims_ || free_internal_.empty()) {
    *status = Corrupt("internal node");
    return kNull;
  }
  const int32_t node = free_internal_.back();
  free_internal_.pop_back();
  nodes_[node].parent = parent;
  nodes_[node].dim = static_cast<int32_t>(dim);
  nodes_[node].cut = cut;
  nodes_[node].left = ReadSubtree(reader, store, live_slots, node, status);
  if (nodes_[node].left == kNull) return kNull;
  nodes_[node].right = ReadSubtree(reader, store, live_slots, node, status);
  if (nodes_[node].right == kNull) return kNull;
  if (!(BoxMax(nodes_[node].left, store)[dim] <= cut &&
        cut < BoxMin(nodes_[node].right, store)[dim])) {
    *status = Corrupt("cut does not separate its children");
    return kNull;
  }
  const int64_t mass = int64_t{nodes_[nodes_[node].left].mass} + nodes_[nodes_[node].right].mass;
  if (mass > capacity_) {
    *status = Corrupt("tree mass");
    return kNull;
  }
  nodes_[node].mass = static_cast<int32_t>(mass);
  RecomputeBox(node, store);
  return node;
}

absl::Status Tree::Decode(Reader& reader, PointStore& store, size_t live_slots) {
  uint32_t heap_size;
  if (!reader.U64(&rng_) || !reader.U32(&heap_size) ||
      heap_size > static_cast<uint32_t>(capacity_)) {
    return Corrupt("reservoir");
  }
  heap_size_ = static_cast<int>(heap_size);
  for (int i = 0; i < heap_size_; ++i) {
    uint32_t slot;
    if (!reader.Double(&heap_weight_[i]) || !reader.U32(&slot) || slot >= live_slots) {
      return Corrupt("reservoir entry");
    }
    heap_slot_[i] = static_cast<int32_t>(slot);
    store.Ref(heap_slot_[i]);
    if (i > 0 && heap_weight_[(i - 1) / 2] < heap_weight_[i]) return Corrupt("reservoir order");
  }
  uint8_t present;
  if (!reader.U8(&present) || present > 1) return Corrupt("tree");
  if (present == 0) {
    return heap_size_ == 0 ? absl::OkStatus() : Corrupt("sampled points without a tree");
  }
  absl::Status status;
  root_ = ReadSubtree(reader, store, live_slots, kNull, &status);
  if (root_ == kNull) return status;
  // Every sampled point must lead to a leaf holding it, as many times as the leaf's mass says:
  // deletion relies on it.
  if (nodes_[root_].mass != heap_size_) return Corrupt("tree mass differs from the reservoir");
  std::vector<int32_t> found(capacity_, 0);
  for (int i = 0; i < heap_size_; ++i) {
    const double* point = store.Point(heap_slot_[i]);
    const int32_t leaf = FindLeaf(point);
    if (!SamePoint(point, store.Point(nodes_[leaf].slot), dims_)) {
      return Corrupt("a sampled point is not in its tree");
    }
    // The masses of the leaves sum to heap_size_, so no leaf found more often than its mass
    // means every leaf found exactly that often.
    if (++found[leaf - capacity_] > nodes_[leaf].mass) {
      return Corrupt("leaf mass differs from the reservoir");
    }
  }
  return absl::OkStatus();
}

}  // namespace

struct RandomCutForest::Impl {
  Impl(const RandomCutForestOptions& options, size_t dims)
      : options(options),
        input_dims(dims),
        dims(dims * options.shingle_size),
        lambda(1.0 / static_cast<double>(options.time_decay)),
        output_after(std::max(1, options.sub_sample_size / 4)),
        shingle(dims * options.shingle_size, 0),
        store(dims * options.shingle_size),
        scratch(dims * options.shingle_size),
        high(dims * options.shingle_size),
        low(dims * options.shingle_size) {
    uint64_t seeder = options.seed;
    trees.reserve(options.number_of_trees);
    for (int i = 0; i < options.number_of_trees; ++i) {
      trees.emplace_back(options.sub_sample_size, this->dims, NextRandom(seeder));
    }
  }

  double ScoreAndUpdate(absl::Span<const double> input, std::vector<Attribution>* attribution);
  double Score(const double* point) const;
  void Update(const double* point);

  RandomCutForestOptions options;
  size_t input_dims;
  size_t dims;  // shingled
  double lambda;
  int output_after;
  uint64_t updates = 0;         // shingled points inserted so far (each tree's sequence numbers)
  uint64_t base_seq = 0;        // the sequence number the sampler priorities are relative to
  uint32_t inputs_seen = 0;     // up to shingle_size
  std::vector<double> shingle;  // the last shingle_size inputs, oldest first
  PointStore store;
  Scratch scratch;
  std::vector<double> high;
  std::vector<double> low;
  std::vector<Tree> trees;
};

namespace {

absl::Status Validate(const RandomCutForestOptions& options, size_t dimensions) {
  auto invalid = [](std::string message) {
    return MakeError(ErrorCode::kInvalidArgument, absl::StrCat("RANDOM_CUT_FOREST: ", message));
  };
  if (options.number_of_trees < 1 || options.number_of_trees > 1000) {
    return invalid(absl::StrCat("numberOfTrees must be in 1..1000, got ", options.number_of_trees));
  }
  if (options.sub_sample_size < 10 || options.sub_sample_size > 1000) {
    return invalid(
        absl::StrCat("subSampleSize must be in 10..1000, got ", options.sub_sample_size));
  }
  if (options.time_decay < 1 || options.time_decay > 2147483647) {
    return invalid(absl::StrCat("timeDecay must be in 1..2147483647, got ", options.time_decay));
  }
  if (options.shingle_size < 1 || options.shingle_size > 30) {
    return invalid(absl::StrCat("shingleSize must be in 1..30, got ", options.shingle_size));
  }
  if (dimensions < 1 || dimensions > 1000) {
    return invalid(
        absl::StrCat("the number of numeric columns must be in 1..1000, got ", dimensions));
  }
  const double box_doubles = 2.0 * options.number_of_trees * options.sub_sample_size *
                             static_cast<double>(dimensions) * options.shingle_size;
  if (box_doubles > kMaxBoxDoubles) {
    return invalid(absl::StrCat(
        "the model is too large: numberOfTrees x subSampleSize x columns x shingleSize = ",
        options.number_of_trees, " x ", options.sub_sample_size, " x ", dimensions, " x ",
        options.shingle_size, " exceeds ", kMaxBoxDoubles / 2));
  }
  return absl::OkStatus();
}

}  // namespace

double RandomCutForest::Impl::ScoreAndUpdate(absl::Span<const double> input,
                                             std::vector<Attribution>* attribution) {
  const size_t shingle_size = static_cast<size_t>(options.shingle_size);
  if (shingle_size > 1) std::copy(shingle.begin() + input_dims, shingle.end(), shingle.begin());
  double* newest = shingle.data() + dims - input_dims;
  for (size_t i = 0; i < input_dims; ++i) {
    const double value = i < input.size() && !std::isnan(input[i]) ? input[i] : 0.0;
    newest[i] = std::clamp(value, -kMaxMagnitude, kMaxMagnitude);
  }
  if (attribution != nullptr) attribution->assign(input_dims, Attribution{});
  if (inputs_seen < shingle_size) ++inputs_seen;
  if (inputs_seen < shingle_size) return 0;

  double score = 0;
  if (updates >= static_cast<uint64_t>(output_after)) {
    const double tree_count = static_cast<double>(trees.size());
    score = Score(shingle.data());
    if (attribution != nullptr) {
      std::fill(high.begin(), high.end(), 0.0);
      std::fill(low.begin(), low.end(), 0.0);
      for (const Tree& tree : trees) {
        tree.Attribute(shingle.data(), store, scratch, high.data(), low.data());
      }
      for (size_t i = 0; i < dims; ++i) {
        (*attribution)[i % input_dims].high += high[i] / tree_count;
        (*attribution)[i % input_dims].low += low[i] / tree_count;
      }
    }
  }
  Update(shingle.data());
  return score;
}

double RandomCutForest::Impl::Score(const double* point) const {
  // Descents are chains of dependent loads over a few MB of trees: taking several trees in
  // lockstep lets their cache misses overlap.
  constexpr size_t kLanes = 8;
  double total = 0;
  for (size_t first = 0; first < trees.size(); first += kLanes) {
    const size_t lanes = std::min(kLanes, trees.size() - first);
    int32_t node[kLanes];
    int depth[kLanes] = {};
    for (size_t lane = 0; lane < lanes; ++lane) node[lane] = trees[first + lane].root();
    for (bool moving = true; moving;) {
      moving = false;
      for (size_t lane = 0; lane < lanes; ++lane) {
        if (node[lane] == kNull) continue;  // an empty tree
        // Branch-free: a leaf steps to itself, so mispredictions do not serialise the lanes.
        const bool internal = !trees[first + lane].IsLeaf(node[lane]);
        node[lane] = trees[first + lane].Step(node[lane], point);
        depth[lane] += internal;
        moving |= internal;
      }
    }
    for (size_t lane = 0; lane < lanes; ++lane) {
      if (node[lane] != kNull) trees[first + lane].Prefetch(node[lane], store);
    }
    for (size_t lane = 0; lane < lanes; ++lane) {
      if (node[lane] == kNull) continue;
      total += trees[first + lane].ScoreFromLeaf(point, store, node[lane], depth[lane]);
    }
  }
  return total / static_cast<double>(trees.size());
}

void RandomCutForest::Impl::Update(const double* point) {
  double decay = static_cast<double>(updates - base_seq) * lambda;
  if (decay >= kRebaseDecay) {
    // Priorities relative to the new base: the order of every reservoir stays the same.
    for (Tree& tree : trees) tree.Rebase(decay);
    base_seq = updates;
    decay = 0;
  }
  int32_t slot = kNull;  // stored on the first tree that takes the point
  for (Tree& tree : trees) {
    double weight;
    int32_t evicted;
    if (!tree.Accept(decay, &weight, &evicted)) continue;
    if (evicted != kNull) {
      tree.Delete(store.Point(evicted), store);
      store.Unref(evicted);
    }
    if (slot == kNull) slot = store.Add(point);
    tree.Insert(point, slot, store);
    tree.PushSample(weight, slot);
    store.Ref(slot);
  }
  ++updates;
}

RandomCutForest::RandomCutForest(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RandomCutForest::RandomCutForest(RandomCutForest&& other) noexcept = default;
RandomCutForest& RandomCutForest::operator=(RandomCutForest&& other) noexcept = default;
RandomCutForest::~RandomCutForest() = default;

absl::StatusOr<RandomCutForest> RandomCutForest::Create(const RandomCutForestOptions& options,
                                                        size_t dimensions) {
  if (absl::Status status = Validate(options, dimensions); !status.ok()) return status;
  return RandomCutForest(std::make_unique<Impl>(options, dimensions));
}

double RandomCutForest::ScoreAndUpdate(absl::Span<const double> input) {
  return impl_->ScoreAndUpdate(input, nullptr);
}

double RandomCutForest::ScoreAndUpdate(absl::Span<const double> input,
                                       std::vector<Attribution>* attribution) {
  return impl_->ScoreAndUpdate(input, attribution);
}

size_t RandomCutForest::dimensions() const { return impl_->input_dims; }

const RandomCutForestOptions& RandomCutForest::options() const { return impl_->options; }

void RandomCutForest::Encode(std::string* out) const {
  const Impl& impl = *impl_;
  out->append(kMagic, sizeof(kMagic));
  PutU32(static_cast<uint32_t>(impl.options.number_of_trees), out);
  PutU32(static_cast<uint32_t>(impl.options.sub_sample_size), out);
  PutU64(static_cast<uint64_t>(impl.options.time_decay), out);
  PutU32(static_cast<uint32_t>(impl.options.shingle_size), out);
  PutU64(impl.options.seed, out);
  PutU64(impl.input_dims, out);
  PutU64(impl.updates, out);
  PutU64(impl.base_seq, out);
  PutU32(impl.inputs_seen, out);
  for (double value : impl.shingle) PutDouble(value, out);
  // Only the referenced points, renumbered densely.
  std::vector<int32_t> slot_map(impl.store.size(), kNull);
  uint32_t live = 0;
  for (size_t slot = 0; slot < impl.store.size(); ++slot) {
    if (impl.store.refs(static_cast<int32_t>(slot)) > 0)
      slot_map[slot] = static_cast<int32_t>(live++);
  }
  PutU32(live, out);
  for (size_t slot = 0; slot < impl.store.size(); ++slot) {
    if (slot_map[slot] == kNull) continue;
    const double* point = impl.store.Point(static_cast<int32_t>(slot));
    for (size_t i = 0; i < impl.dims; ++i) PutDouble(point[i], out);
  }
  for (const Tree& tree : impl.trees) tree.Encode(slot_map, out);
}

absl::StatusOr<RandomCutForest> RandomCutForest::Decode(std::string_view bytes) {
  Reader reader(bytes);
  for (char expected : kMagic) {
    uint8_t byte;
    if (!reader.U8(&byte) || static_cast<char>(byte) != expected) return Corrupt("magic");
  }
  uint32_t trees, sample, shingle_size;
  uint64_t time_decay, seed, dims;
  if (!reader.U32(&trees) || !reader.U32(&sample) || !reader.U64(&time_decay) ||
      !reader.U32(&shingle_size) || !reader.U64(&seed) || !reader.U64(&dims) || trees > 1000 ||
      sample > 1000 || time_decay > 2147483647 || shingle_size > 30 || dims > 1000) {
    return Corrupt("header");
  }
  RandomCutForestOptions options;
  options.number_of_trees = static_cast<int>(trees);
  options.sub_sample_size = static_cast<int>(sample);
  options.time_decay = static_cast<int64_t>(time_decay);
  options.shingle_size = static_cast<int>(shingle_size);
  options.seed = seed;
  if (!Validate(options, dims).ok()) return Corrupt("options");
  // Every tree takes at least 13 bytes: refuse to allocate trees for bytes that cannot hold them.
  if (reader.remaining() / 13 < trees) return Corrupt("truncated");
  auto impl = std::make_unique<Impl>(options, dims);
  if (!reader.U64(&impl->updates) || !reader.U64(&impl->base_seq) ||
      !reader.U32(&impl->inputs_seen) || impl->base_seq > impl->updates ||
      impl->inputs_seen > shingle_size) {
    return Corrupt("counters");
  }
  auto read_value = [&reader](double* value) {
    return reader.Double(value) && std::abs(*value) <= kMaxMagnitude;
  };
  for (double& value : impl->shingle) {
    if (!read_value(&value)) return Corrupt("shingle");
  }
  uint32_t live;
  if (!reader.U32(&live) || reader.remaining() / (impl->dims * 8) < live) {
    return Corrupt("point store");
  }
  impl->store.Grow(live);
  for (uint32_t slot = 0; slot < live; ++slot) {
    double* point = impl->store.MutablePoint(static_cast<int32_t>(slot));
    for (size_t i = 0; i < impl->dims; ++i) {
      if (!read_value(&point[i])) return Corrupt("point");
    }
  }
  for (Tree& tree : impl->trees) {
    if (absl::Status status = tree.Decode(reader, impl->store, live); !status.ok()) return status;
  }
  if (reader.remaining() != 0) return Corrupt("trailing bytes");
  impl->store.CollectFree();
  return RandomCutForest(std::move(impl));
}

}  // namespace rill::sql
