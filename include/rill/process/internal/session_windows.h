// SessionWindows: the session engine under WindowOperator (window_operator.h). Not public API;
// the semantics are documented in window_operator.h.
//
// Why a separate engine: sessions are per key (a sorted run of disjoint sessions, merged as
// records bridge them) and close by per-key timers, unlike tumbling and hopping slots
// (slot_windows.h). The engine holds only state; the parameters come in as a WindowEnv and the
// watermark as an argument, both owned by the facade. Results go out as
// emit(key, start, end, state, is_update).
#ifndef RILL_PROCESS_INTERNAL_SESSION_WINDOWS_H_
#define RILL_PROCESS_INTERNAL_SESSION_WINDOWS_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <set>
#include <utility>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/time/time.h"
#include "rill/process/aggregators.h"
#include "rill/process/internal/key_table.h"
#include "rill/process/internal/window_common.h"
#include "rill/process/window.h"

namespace rill::internal {

// Keyed session windows of gap SessionWindow::gap(). Not thread-safe.
template <typename Key, typename Agg>
class SessionWindows {
 public:
  using State = typename Agg::State;
  using Input = typename Agg::Input;
  using Env = WindowEnv<Agg, SessionWindow>;

  // Adds a record at event time t (finite) under watermark wm; false if it is late. Emits the
  // session's updated result (is_update = true) in kOnUpdate mode or if the session is closed.
  template <typename Emit>
  bool Add(const Env& env, absl::Time wm, const Key& key, absl::Time t, const Input& value,
           Emit&& emit) {
    if (!env.assigner.valid()) return false;
    const WindowBounds fresh = env.assigner.WindowOf(t);
    auto k = sessions_.find(key);
    std::vector<Session>* list = k == sessions_.end() ? nullptr : &k->second.sessions;
    // The sessions the record touches form a contiguous run [first, last).
    size_t first = 0, last = 0;
    if (list != nullptr) {
      while (first < list->size() && (*list)[first].bounds.end < fresh.start) ++first;
      last = first;
      while (last < list->size() && SessionWindow::Mergeable((*list)[last].bounds, fresh)) ++last;
    }
    Session* session;
    if (first == last) {
      if (env.Expired(fresh.end, wm)) return false;
      if (list == nullptr) {
        k = sessions_.try_emplace(key, NewKeySessions()).first;
        list = &k->second.sessions;
        first = 0;
      }
      session = &*list->insert(list->begin() + static_cast<std::ptrdiff_t>(first),
                               Session{fresh, env.agg.Init()});
    } else {
      session = &(*list)[first];
      session->bounds = SessionWindow::Merge(session->bounds, fresh);
      for (size_t i = first + 1; i < last; ++i) {
        session->bounds = SessionWindow::Merge(session->bounds, (*list)[i].bounds);
        env.agg.Merge(session->state, (*list)[i].state);
      }
      list->erase(list->begin() + static_cast<std::ptrdiff_t>(first + 1),
                  list->begin() + static_cast<std::ptrdiff_t>(last));
    }
    env.agg.Add(session->state, value);
    const WindowBounds b = session->bounds;
    LowerTimer(k->first, k->second, b.end > wm ? b.end : b.end + env.allowed_lateness);
    if (env.on_update || b.end <= wm) {
      emit(key, b.start, b.end, session->state, /*is_update=*/true);
    }
    return true;
  }

  // The watermark moved from prev to wm (> prev): emits every session closing in (prev, wm] with
  // is_update = false in (end, key) order, then frees what expired.
  template <typename Emit>
  void Advance(const Env& env, absl::Time prev, absl::Time wm, Emit&& emit) {
    // The keys whose timers fired (each key has one timer), as iterators: erasing one entry of
    // the map invalidates no other.
    std::vector<typename Sessions::iterator> due;
    while (!timers_.empty() && timers_.begin()->first <= wm) {
      auto node = timers_.extract(timers_.begin());
      due.push_back(sessions_.find(node.value().second));
    }
    // Closings, in (end, key) order.
    std::vector<std::pair<absl::Time, const Entry*>> closing;
    for (const auto& k : due) {
      for (const Session& s : k->second.sessions) {
        if (s.bounds.end > prev && s.bounds.end <= wm) closing.emplace_back(s.bounds.end, &*k);
      }
    }
    std::sort(closing.begin(), closing.end(), [](const auto& a, const auto& b) {
      if (a.first != b.first) return a.first < b.first;
      return a.second->first < b.second->first;
    });
    for (const auto& [end, entry] : closing) {
      for (const Session& s : entry->second.sessions) {
        if (s.bounds.end == end) {
          emit(entry->first, s.bounds.start, s.bounds.end, s.state, /*is_update=*/false);
        }
      }
    }
    // Expiry, and re-arming the timers.
    for (const auto& k : due) {
      std::vector<Session>& list = k->second.sessions;
      list.erase(std::remove_if(list.begin(), list.end(),
                                [&](const Session& s) { return env.Expired(s.bounds.end, wm); }),
                 list.end());
      if (list.empty()) {
        sessions_.erase(k);
        continue;
      }
      k->second.timer = NextDue(env, k->second, wm);
      timers_.emplace(k->second.timer, k->first);
    }
    ShrinkIfSparse(sessions_);
  }

  size_t live_windows() const {
    size_t n = 0;
    for (const auto& e : sessions_) n += e.second.sessions.size();
    return n;
  }
  size_t live_keys() const { return sessions_.size(); }

  size_t state_bytes(const Env& env) const {
    size_t bytes = FootprintBytes(sessions_);
    for (const auto& e : sessions_) {
      bytes += KeyHeapBytes(e.first);
      bytes += sizeof(Key) + sizeof(absl::Time) + kMapNodeOverhead;  // timer
      bytes += e.second.sessions.capacity() * sizeof(Session);
      for (const Session& s : e.second.sessions) bytes += env.StateHeapBytes(s.state);
    }
    return bytes;
  }

  // put(key, start, end, state) for every session, in (key, start) order (whatever order the
  // hash map holds the keys in, so that equal states give equal snapshots).
  template <typename Put>
  void ForEachInOrder(Put&& put) const {
    for (const auto* e : SortedByKey(sessions_)) {
      for (const Session& s : e->second.sessions) {
        put(e->first, s.bounds.start, s.bounds.end, s.state);
      }
    }
  }

  // Restores one snapshot entry into this (fresh) engine; false if it does not fit: expired at
  // watermark wm, shorter than the gap, or not after (and apart from) the key's previous session.
  bool RestoreEntry(const Env& env, absl::Time wm, const Key& key, absl::Time start, absl::Time end,
                    State&& state) {
    if (env.Expired(end, wm)) return false;
    if (end - start < env.assigner.gap()) return false;
    KeySessions& ks = sessions_.try_emplace(key, NewKeySessions()).first->second;
    // Sorted, and apart (touching sessions would have been merged).
    if (!ks.sessions.empty() && !(ks.sessions.back().bounds.end < start)) return false;
    ks.sessions.push_back(Session{{start, end}, std::move(state)});
    return true;
  }

  // After the last RestoreEntry: arms every key's timer.
  void FinishRestore(const Env& env, absl::Time wm) {
    for (auto& [key, ks] : sessions_) {
      ks.timer = NextDue(env, ks, wm);
      timers_.emplace(ks.timer, key);
    }
  }

 private:
  struct Session {
    WindowBounds bounds;
    State state;
  };
  struct KeySessions {
    std::vector<Session> sessions;  // sorted by start, pairwise apart (not touching)
    absl::Time timer;               // <= the next close or expiry of any of them
  };
  using Sessions = KeyMap<Key, KeySessions>;
  using Entry = typename Sessions::value_type;
  using Timers = std::set<std::pair<absl::Time, Key>>;

  static KeySessions NewKeySessions() { return KeySessions{{}, absl::InfiniteFuture()}; }

  // When something next happens to the key's sessions after watermark `wm`: the earliest close
  // of an open session or expiry of a closed one.
  static absl::Time NextDue(const Env& env, const KeySessions& ks, absl::Time wm) {
    absl::Time due = absl::InfiniteFuture();
    for (const Session& s : ks.sessions) {
      due = std::min(due, s.bounds.end > wm ? s.bounds.end : s.bounds.end + env.allowed_lateness);
    }
    return due;
  }

  // Moves the key's timer earlier to `due` (never later: a timer that fires early is re-armed).
  void LowerTimer(const Key& key, KeySessions& ks, absl::Time due) {
    if (due < ks.timer) MoveTimer(key, ks, due);
  }
  ABSL_ATTRIBUTE_NOINLINE void MoveTimer(const Key& key, KeySessions& ks, absl::Time due) {
    auto node = timers_.extract(std::pair<absl::Time, Key>(ks.timer, key));
    ks.timer = due;
    if (node.empty()) {
      timers_.emplace(due, key);
    } else {
      node.value().first = due;
      timers_.insert(std::move(node));
    }
  }

  // Per key, its sessions; timers_ holds (ks.timer, key) for every key.
  Sessions sessions_;
  Timers timers_;
};

}  // namespace rill::internal

#endif  // RILL_PROCESS_INTERNAL_SESSION_WINDOWS_H_
