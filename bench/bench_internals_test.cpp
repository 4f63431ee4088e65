// Tests of the benchmark's own machinery: the turns that time implementations against each other, and the helper
// process the PyTorch peer runs in. The contenders here report made-up times, so nothing waits.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "child_process.hpp"
#include "timing.hpp"

namespace bench {
namespace {

// A contender that takes `seconds` per run (as it reports) and logs its index in `order` each time it runs.
Contender fake(double seconds, int index, std::vector<int>& order) {
  return {[seconds, index, &order] {
            order.push_back(index);
            return seconds;
          },
          0};
}

int count(const std::vector<int>& order, int index) {
  int n = 0;
  for (int i : order) n += i == index ? 1 : 0;
  return n;
}

TEST(TimeInTurns, EachContenderGetsItsRunsAndSeconds) {
  std::vector<int> order;
  const TimingRule rule{5, 0.1, nullptr};
  const auto timings = time_in_turns({fake(0.001, 0, order), fake(0.004, 1, order), fake(0.05, 2, order)}, rule);
  ASSERT_EQ(timings.size(), 3u);
  for (const Timing& t : timings) {
    EXPECT_TRUE(t.error.empty());
    EXPECT_GE(t.times_ms.size(), 5u);
    double total = 0;
    for (double ms : t.times_ms) total += ms * 1e-3;
    EXPECT_GE(total, 0.1 - 1e-9);
  }
  EXPECT_DOUBLE_EQ(timings[0].median_ms, 1.0);
  EXPECT_DOUBLE_EQ(timings[1].median_ms, 4.0);
  EXPECT_DOUBLE_EQ(timings[2].median_ms, 50.0);
}

TEST(TimeInTurns, ContendersAccumulateTimeAtTheSamePace) {
  // 1 ms against 10 ms: the slow one runs about every tenth cycle, so both reach the minimum time together and
  // the fast one does not run 10 times its share while waiting for the slow one's runs.
  std::vector<int> order;
  const auto timings = time_in_turns({fake(0.001, 0, order), fake(0.01, 1, order)}, TimingRule{5, 0.2, nullptr});
  const int fast = count(order, 0) - 1;  // less the warm-up
  const int slow = count(order, 1) - 1;
  EXPECT_GE(slow, 20);
  EXPECT_LE(slow, 22);
  EXPECT_GE(fast, 200);
  EXPECT_LE(fast, 215);
  // Spread over the whole stretch: between two slow runs there are never more than 11 fast ones, and after the
  // slow one's last run (it finished first) the fast one makes up at most two slow runs' worth of time.
  int fast_in_a_row = 0;
  std::size_t last_slow = 0;
  for (std::size_t k = 2; k < order.size(); ++k) {
    if (order[k] == 1) {
      EXPECT_LE(fast_in_a_row, 11) << "before turn " << k;
      last_slow = k;
    }
    fast_in_a_row = order[k] == 0 ? fast_in_a_row + 1 : 0;
  }
  EXPECT_LE(order.size() - 1 - last_slow, 20u);
}

TEST(TimeInTurns, AFinishedContenderKeepsOneTurnPerCycleWhileASlowOneEnds) {
  // 1 ms against 100 ms, at least 5 runs and 0.05 s: the fast one has its 0.05 s when the slow one has 2 runs;
  // then each of the slow one's last 3 runs is timed in turns with one fast run, not 100.
  std::vector<int> order;
  time_in_turns({fake(0.001, 0, order), fake(0.1, 1, order)}, TimingRule{5, 0.05, nullptr});
  EXPECT_EQ(count(order, 1) - 1, 5);
  EXPECT_GE(count(order, 0) - 1, 50);
  EXPECT_LE(count(order, 0) - 1, 56);
  EXPECT_EQ(order.back() == 1 ? order[order.size() - 2] : order.back(), 0);  // the slow one's last run had company
}

TEST(TimeInTurns, EqualContendersAlternate) {
  std::vector<int> order;
  time_in_turns({fake(0.002, 0, order), fake(0.002, 1, order)}, TimingRule{5, 0.05, nullptr});
  for (std::size_t k = 2; k + 1 < order.size(); k += 2) {
    EXPECT_NE(order[k], order[k + 1]) << "at turn " << k;  // each cycle runs both
  }
}

TEST(TimeInTurns, AContenderThatThrowsIsLeftOutAndNamed) {
  std::vector<int> order;
  int calls = 0;
  Contender failing{[&calls]() -> double {
                      if (++calls == 3) throw std::runtime_error("peer died");
                      return 0.002;
                    },
                    0};
  const auto timings = time_in_turns({fake(0.002, 0, order), failing}, TimingRule{5, 0.05, nullptr});
  EXPECT_TRUE(timings[0].error.empty());
  EXPECT_GE(timings[0].times_ms.size(), 25u);
  EXPECT_EQ(timings[1].error, "peer died");
  EXPECT_EQ(timings[1].times_ms.size(), 1u);  // the warm-up, one timed run, then the failure
  EXPECT_EQ(calls, 3);
}

// A machine whose cores run at full speed or at half, as its speed check (TimingRule::full_speed) sees it; each
// contender reports `fast` seconds per run at full speed and twice that otherwise.
struct ScriptedMachine {
  std::vector<bool> script;  // check k sees script[k % size]
  std::size_t checks = 0;
  bool slow = false;  // as the last check found it
  bool check() {
    slow = !script[checks++ % script.size()];
    return !slow;
  }
  Contender contender(double fast) {
    return {[this, fast] { return slow ? 2 * fast : fast; }, 0};
  }
};

TEST(TimeInTurns, MediansAreOverTheRunsAtFullSpeed) {
  // Two checks per run, so runs at full speed and slow ones come 2 : 3, taken in turns: most runs are slow, and
  // the median of every run would be a slow one's.
  ScriptedMachine machine{{true, true, true, true, false, false, false, false, false, false}};
  const TimingRule rule{5, 0.001, [&machine] { return machine.check(); }};
  const auto timings = time_in_turns({machine.contender(0.001), machine.contender(0.001)}, rule);
  for (const Timing& t : timings) {
    ASSERT_EQ(t.full_speed.size(), t.times_ms.size());
    EXPECT_GE(t.full_speed_runs(), 5);
    EXPECT_GT(t.times_ms.size(), 10u);
    EXPECT_TRUE(t.from_full_speed_runs);
    EXPECT_DOUBLE_EQ(t.median_ms, 1.0);
    EXPECT_DOUBLE_EQ(t.median_all_ms, 2.0);
  }
}

TEST(TimeInTurns, TooFewRunsAtFullSpeedForOneMeansEveryRunForAll) {
  // Contender 1 never passes its check after a run; contender 0 passes every other one. Contender 1 stops at 3x
  // the minimums, and both medians are then over every run (0's fast runs alone would make it look 1.5x faster).
  int current = 0, runs0 = 0;
  Contender first{[&] {
                    current = 0;
                    return ++runs0 % 2 ? 0.001 : 0.002;
                  },
                  0};
  Contender second{[&] {
                     current = 1;
                     return 0.002;
                   },
                   0};
  bool after = false;  // checks alternate: before a run, after it
  int checks0 = 0;
  const TimingRule rule{5, 0.01, [&] {
                          after = !after;
                          if (!after) return true;
                          return current == 0 && ++checks0 % 2 == 0;
                        }};
  const auto timings = time_in_turns({first, second}, rule);
  EXPECT_EQ(timings[1].full_speed_runs(), 0);
  EXPECT_EQ(static_cast<int>(timings[1].times_ms.size()), kGiveUpFactor * 5);
  EXPECT_GE(timings[0].full_speed_runs(), 5);
  for (const Timing& t : timings) {
    EXPECT_FALSE(t.from_full_speed_runs);
    EXPECT_DOUBLE_EQ(t.median_ms, t.median_all_ms);
  }
  EXPECT_GT(timings[0].median_ms, 1.0);
}

TEST(ChildProcess, AnswersLineByLine) {
  ChildProcess cat({"cat"});
  EXPECT_TRUE(cat.alive());
  EXPECT_GT(cat.pid(), 0);
  EXPECT_EQ(cat.ask("{\"cmd\": \"run\"}"), "{\"cmd\": \"run\"}");
  EXPECT_EQ(cat.ask(""), "");
  EXPECT_EQ(cat.ask(std::string(20000, 'x')), std::string(20000, 'x'));  // longer than one atomic pipe write
}

TEST(ChildProcess, OneThatEndsIsReportedNotFatal) {
  ChildProcess quiet({"true"});
  EXPECT_THROW(quiet.read_line(), std::runtime_error);
  EXPECT_FALSE(quiet.alive());
  EXPECT_THROW(quiet.ask("hello"), std::runtime_error);
}

TEST(ChildProcess, AMissingProgramIsAnError) {
  EXPECT_THROW(ChildProcess({"/nonexistent/tdconv-peer"}), std::runtime_error);
}

}  // namespace
}  // namespace bench
